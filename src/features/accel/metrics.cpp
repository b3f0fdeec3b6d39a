#include "features/accel/metrics.hpp"

namespace bpfgate::agent::accel {

namespace {

using core::prom::Writer;

// The sends that took the normal TCP path, and why (the reason label).
struct Fallback {
  bg_accel_event event;
  const char *reason;
};
constexpr Fallback kFallbacks[] = {
    {BG_ACCEL_MSG_NO_PEER, "no_peer"},   {BG_ACCEL_MSG_FALLBACK, "earlier"},
    {BG_ACCEL_MSG_DRAINING, "draining"}, {BG_ACCEL_MSG_NO_STATE, "no_state"},
    {BG_ACCEL_MSG_BACKLOG, "backlog"},
};

void write_state(Writer &w, const AccelStatus *s) {
  w.family("bpfgate_accel_enabled", "gauge",
           "1 when socket acceleration is enabled, 0.5 while it drains, 0 when off");
  w.sample("bpfgate_accel_enabled", {}, !s ? 0 : (s->state == State::kEnabled ? 1 : 0.5));
  w.family("bpfgate_accel_sockets", "gauge", "Sockets in the acceleration sockhash");
  if (s)
    w.sample("bpfgate_accel_sockets", {}, static_cast<double>(s->sockets));
  w.family("bpfgate_accel_congested_sockets", "gauge",
           "Sockets marked by the housekeeper for holding too many unread redirected bytes");
  if (s)
    w.sample("bpfgate_accel_congested_sockets", {}, static_cast<double>(s->congested));
}

void write_events(Writer &w, const AccelStatus *s) {
  w.family("bpfgate_accel_messages_total", "counter",
           "Sends seen by the sk_msg program and sockets seen by sock_ops, by what happened");
  for (uint32_t e = 0; s && e < BG_ACCEL_EVENT_NR; e++)
    w.sample("bpfgate_accel_messages_total",
             {{"event", event_name(static_cast<bg_accel_event>(e))}},
             static_cast<double>(s->counters[e].count));
  w.family("bpfgate_accel_bytes_total", "counter", "Bytes of those sends, by what happened");
  for (uint32_t e = 0; s && e < BG_ACCEL_EVENT_NR; e++)
    w.sample("bpfgate_accel_bytes_total", {{"event", event_name(static_cast<bg_accel_event>(e))}},
             static_cast<double>(s->counters[e].bytes));
}

// What did not go through the sockhash: sends on the normal TCP path, by
// reason, and sockets it refused.
void write_fallbacks(Writer &w, const AccelStatus *s) {
  w.family("bpfgate_accel_max_sockets", "gauge",
           "Capacity of the acceleration sockhash (accel.max_sockets); past it sockets are "
           "refused");
  if (s)
    w.sample("bpfgate_accel_max_sockets", {}, s->max_sockets);
  w.family("bpfgate_accel_fallbacks_total", "counter",
           "Sends that took the normal TCP path instead of a redirect, by reason: no_peer (the "
           "peer socket is not in the sockhash), earlier (the socket fell back before), draining "
           "(acceleration being disabled), no_state (a socket bpfgate did not add), backlog (the "
           "peer held too many unread bytes)");
  for (const auto &f : kFallbacks)
    if (s)
      w.sample("bpfgate_accel_fallbacks_total", {{"reason", f.reason}},
               static_cast<double>(s->counters[f.event].count));
  w.family("bpfgate_accel_fallback_bytes_total", "counter",
           "Bytes of the sends that took the normal TCP path, by reason");
  for (const auto &f : kFallbacks)
    if (s)
      w.sample("bpfgate_accel_fallback_bytes_total", {{"reason", f.reason}},
               static_cast<double>(s->counters[f.event].bytes));
  w.family("bpfgate_accel_sockets_refused_total", "counter",
           "Sockets acceleration could not add: the sockhash was full (max_sockets) or the "
           "kernel refused the socket (kTLS, no socket storage); they use the normal TCP path");
  if (s)
    w.sample("bpfgate_accel_sockets_refused_total", {},
             static_cast<double>(s->counters[BG_ACCEL_SOCK_ADD_FAILED].count));
}

}  // namespace

void write_metrics(Writer &w, const AccelStatus *status) {
  const AccelStatus *s = status && status->state != State::kOff ? status : nullptr;
  write_state(w, s);
  write_events(w, s);
  write_fallbacks(w, s);
}

void write_metrics(Writer &w, const std::string &bpffs) {
  auto s = status(bpffs);
  write_metrics(w, s ? &*s : nullptr);
}

}  // namespace bpfgate::agent::accel
