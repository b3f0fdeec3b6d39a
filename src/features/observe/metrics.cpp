#include "features/observe/metrics.hpp"

namespace bpfgate::agent {

namespace {

using core::prom::Labels;
using core::prom::Writer;

const char *kClassNames[] = {"1xx", "2xx", "3xx", "4xx", "5xx", "other"};

std::vector<double> latency_bounds() {
  std::vector<double> b;
  for (uint32_t i = 0; i + 1 < BG_OBS_HIST_BUCKETS; i++)
    b.push_back(bucket_upper_seconds(i));
  return b;
}

void histogram(Writer &w, const char *name, const Labels &l, const __u64 *hist, uint64_t sum_ns) {
  static const std::vector<double> bounds = latency_bounds();
  std::vector<uint64_t> counts(hist, hist + BG_OBS_HIST_BUCKETS);
  w.histogram(name, l, bounds, counts, sum_ns / 1e9);
}

Labels service_labels(const ServiceStats &s) {
  return Labels{{"service", s.name}, {"port", std::to_string(s.port)}};
}

Labels with(Labels l, const char *k, const std::string &v) {
  l.emplace_back(k, v);
  return l;
}

// Requests, responses and HTTP status classes, from the tc probes.
void write_requests(Writer &w, const std::vector<ServiceStats> &services) {
  w.family("bpfgate_service_requests_total", "counter",
           "Requests to a service (first payload from a client on an idle connection)");
  for (const auto &s : services)
    w.sample("bpfgate_service_requests_total", service_labels(s),
             static_cast<double>(s.total.requests));
  w.family("bpfgate_service_responses_total", "counter",
           "Responses of a service (first payload back after a request)");
  for (const auto &s : services)
    w.sample("bpfgate_service_responses_total", service_labels(s),
             static_cast<double>(s.total.responses));
  w.family("bpfgate_service_http_responses_total", "counter",
           "HTTP/1.x responses by status class (other: no HTTP/1.x status line)");
  for (const auto &s : services)
    for (uint32_t c = 0; s.http && c < BG_HTTP_NR; c++)
      w.sample("bpfgate_service_http_responses_total",
               with(service_labels(s), "class", kClassNames[c]),
               static_cast<double>(s.total.status[c]));
}

void write_durations(Writer &w, const std::vector<ServiceStats> &services) {
  w.family("bpfgate_service_request_duration_seconds", "histogram",
           "Time from a request's first byte in to the response's first byte out (log2 "
           "buckets kept in BPF)");
  for (const auto &s : services)
    histogram(w, "bpfgate_service_request_duration_seconds", service_labels(s),
              s.total.latency_hist, s.total.latency_sum_ns);
  w.family("bpfgate_service_tcp_handshake_duration_seconds", "histogram",
           "Time from a client's SYN to its ACK of the SYN-ACK");
  for (const auto &s : services)
    histogram(w, "bpfgate_service_tcp_handshake_duration_seconds", service_labels(s),
              s.total.handshake_hist, s.total.handshake_sum_ns);
}

// Resets, retransmits and connections, from the TCP probes.
void write_tcp(Writer &w, const std::vector<ServiceStats> &services) {
  w.family("bpfgate_service_tcp_resets_total", "counter",
           "TCP resets on a service's connections (received: from clients, sent: by the service)");
  for (const auto &s : services) {
    w.sample("bpfgate_service_tcp_resets_total", with(service_labels(s), "direction", "received"),
             static_cast<double>(s.total.resets_rx));
    w.sample("bpfgate_service_tcp_resets_total", with(service_labels(s), "direction", "sent"),
             static_cast<double>(s.total.resets_tx));
  }
  w.family("bpfgate_service_tcp_retransmits_total", "counter",
           "Segments a service's sockets retransmitted (TCP probes)");
  for (const auto &s : services)
    w.sample("bpfgate_service_tcp_retransmits_total", service_labels(s),
             static_cast<double>(s.total.retransmits));
  w.family("bpfgate_service_tcp_connections_total", "counter",
           "Connections to a service that became established (TCP probes)");
  for (const auto &s : services)
    w.sample("bpfgate_service_tcp_connections_total", service_labels(s),
             static_cast<double>(s.total.accepted));
}

}  // namespace

void write_services(Writer &w, const std::vector<ServiceStats> &services) {
  write_requests(w, services);
  write_durations(w, services);
  write_tcp(w, services);
}

void write_service_metrics(Writer &w, const std::string &bpffs, bool services) {
  std::vector<ServiceStats> stats;
  if (services)
    if (auto s = read_services(bpffs))
      stats = std::move(*s);
  write_services(w, stats);
}

}  // namespace bpfgate::agent
