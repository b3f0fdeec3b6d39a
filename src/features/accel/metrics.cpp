#include "features/accel/metrics.hpp"

namespace bpfgate::agent::accel {

namespace {

using core::prom::Writer;

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

}  // namespace

void write_metrics(Writer &w, const AccelStatus *status) {
  const AccelStatus *s = status && status->state != State::kOff ? status : nullptr;
  write_state(w, s);
  write_events(w, s);
}

void write_metrics(Writer &w, const std::string &bpffs) {
  auto s = status(bpffs);
  write_metrics(w, s ? &*s : nullptr);
}

}  // namespace bpfgate::agent::accel
