#include "features/lb/metrics.hpp"

#include <functional>

namespace bpfgate::agent::lb {

namespace {

using core::prom::Labels;
using core::prom::Writer;

struct PerBackend {
  const char *name, *type, *help;
  std::function<double(const BackendView &)> value;
};

const PerBackend kBackendFamilies[] = {
    {"bpfgate_lb_backend_packets_total", "counter", "Frames the balancer sent to the backend",
     [](const BackendView &b) { return double(b.stats.packets); }},
    {"bpfgate_lb_backend_bytes_total", "counter", "Bytes the balancer sent to the backend",
     [](const BackendView &b) { return double(b.stats.bytes); }},
    {"bpfgate_lb_backend_reply_packets_total", "counter",
     "The backend's replies the balancer gave the VIP back",
     [](const BackendView &b) { return double(b.stats.rx_packets); }},
    {"bpfgate_lb_backend_reply_bytes_total", "counter", "Bytes of those replies",
     [](const BackendView &b) { return double(b.stats.rx_bytes); }},
    {"bpfgate_lb_backend_new_flows_total", "counter", "Flows the Maglev ring placed on the backend",
     [](const BackendView &b) { return double(b.stats.new_flows); }},
    {"bpfgate_lb_backend_resets_total", "counter", "TCP resets from the backend",
     [](const BackendView &b) { return double(b.stats.resets); }},
    {"bpfgate_lb_backend_active_flows", "gauge",
     "Connection-table entries of the backend used within lb.idle_timeout",
     [](const BackendView &b) { return double(b.active_flows); }},
    {"bpfgate_lb_backend_up", "gauge", "1 unless the backend failed its health checks",
     [](const BackendView &b) { return b.flags & BG_LB_BACKEND_DOWN ? 0.0 : 1.0; }},
    {"bpfgate_lb_backend_draining", "gauge", "1 while the backend drains (out of the ring)",
     [](const BackendView &b) { return b.flags & BG_LB_BACKEND_DRAINING ? 1.0 : 0.0; }},
    {"bpfgate_lb_backend_ring_entries", "gauge",
     "Entries of the service's Maglev ring that name the backend",
     [](const BackendView &b) { return double(b.ring_entries); }},
};

Labels labels_of(const ServiceView &s, const BackendView &b) {
  return {{"service", s.name}, {"backend", b.address}, {"id", std::to_string(b.id)}};
}

void write_backends(Writer &w, const LbView *v) {
  for (const auto &f : kBackendFamilies) {
    w.family(f.name, f.type, f.help);
    for (const auto &s : v ? v->services : std::vector<ServiceView>{})
      for (const auto &b : s.backends)
        w.sample(f.name, labels_of(s, b), f.value(b));
  }
  w.family("bpfgate_lb_backend_weight", "gauge",
           "The backend's weight: configured (the config's or set at run time) and effective "
           "(what its ring share follows: dynamic weights)");
  for (const auto &s : v ? v->services : std::vector<ServiceView>{})
    for (const auto &b : s.backends)
      if (b.cat)
        for (auto [kind, value] :
             {std::pair{"configured", b.cat->weight}, std::pair{"effective", b.cat->effective}}) {
          Labels l = labels_of(s, b);
          l.emplace_back("kind", kind);
          w.sample("bpfgate_lb_backend_weight", l, value);
        }
}

void write_latency(Writer &w, const LbView *v) {
  w.family("bpfgate_lb_backend_connect_seconds", "histogram",
           "SYN to SYN-ACK of the flows the balancer forwarded (one bucket: _sum / _count is the "
           "mean)");
  for (const auto &s : v ? v->services : std::vector<ServiceView>{})
    for (const auto &b : s.backends)
      w.histogram("bpfgate_lb_backend_connect_seconds", labels_of(s, b), {}, {b.stats.connects},
                  double(b.stats.connect_ns) / 1e9);
  w.family("bpfgate_lb_backend_response_seconds", "histogram",
           "A flow's first request payload to the backend's first response payload");
  for (const auto &s : v ? v->services : std::vector<ServiceView>{})
    for (const auto &b : s.backends)
      w.histogram("bpfgate_lb_backend_response_seconds", labels_of(s, b), {}, {b.stats.responses},
                  double(b.stats.response_ns) / 1e9);
}

void write_totals(Writer &w, const LbView *v) {
  w.family("bpfgate_lb_packets_total", "counter",
           "Frames the balancer saw, by what it did (reason)");
  for (uint32_t c = 0; v && c < BG_LB_COUNTER_NR; c++)
    w.sample("bpfgate_lb_packets_total", {{"reason", counter_name(static_cast<bg_lb_counter>(c))}},
             double(v->counters[c].packets));
  w.family("bpfgate_lb_bytes_total", "counter", "Bytes of those frames, by reason");
  for (uint32_t c = 0; v && c < BG_LB_COUNTER_NR; c++)
    w.sample("bpfgate_lb_bytes_total", {{"reason", counter_name(static_cast<bg_lb_counter>(c))}},
             double(v->counters[c].bytes));
  w.family("bpfgate_lb_connections", "gauge", "Entries in the balancer's connection table");
  if (v)
    w.sample("bpfgate_lb_connections", {}, double(v->conns));
  w.family("bpfgate_lb_max_connections", "gauge", "Its capacity (lb.connections)");
  if (v)
    w.sample("bpfgate_lb_max_connections", {}, double(v->connections));
}

}  // namespace

void write_metrics(Writer &w, const LbView *v) {
  write_backends(w, v);
  write_latency(w, v);
  write_totals(w, v);
}

void write_metrics(Writer &w, const std::string &bpffs) {
  auto v = read_view(bpffs, published_catalog());
  write_metrics(w, v ? &*v : nullptr);
}

}  // namespace bpfgate::agent::lb
