// The observability sections of the config: metrics: (the Prometheus
// endpoint), events: (the filters' event buffer and drop samples), services:
// (ports whose requests are measured, features/observe/probes.hpp) and
// tcp_probes:. The model and their parser in the schema idiom
// (core/schema.hpp). Pure logic: no kernel.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace YAML {
class Node;
}

namespace bpfgate::core {

class Diag;

// A TCP port of this host whose requests are measured (features/observe/probes.hpp).
struct ServiceConfig {
  std::string name;
  uint16_t port = 0;
  bool http = true;  // read HTTP/1.x status lines
  int line = 0;
};

// The Prometheus endpoint; `listen: off` turns it off.
struct MetricsConfig {
  bool enabled = true;
  std::string address = "127.0.0.1";  // numeric IPv4 or IPv6
  uint16_t port = 9477;
  int line = 0;
};

// events.buffer: a ring buffer where the kernel has them (auto), or the one named.
enum class EventBufferChoice { kAuto, kRingbuf, kPerf };
// "auto", "ringbuf", "perf" (or "perfbuf").
std::optional<EventBufferChoice> parse_event_buffer(const std::string &s);
const char *event_buffer_name(EventBufferChoice c);

struct EventsConfig {
  std::string buffer = "auto";                                 // auto|ringbuf|perf
  EventBufferChoice buffer_choice = EventBufferChoice::kAuto;  // `buffer`, parsed
  uint64_t drop_sample_interval_ns = 100'000'000ULL;           // per CPU; 0: no drop samples
};

// metrics: {listen: 127.0.0.1:9477 | "[::1]:9477" | off}
void parse_metrics(Diag &d, const YAML::Node &n, MetricsConfig &out);
// events: {buffer: auto|ringbuf|perf, drop_samples: N per second per CPU (0: none)}
void parse_events(Diag &d, const YAML::Node &n, EventsConfig &out);
// services: [{name: web, port: 80, protocol: http|tcp}]
void parse_services(Diag &d, const YAML::Node &n, std::vector<ServiceConfig> &out);
// tcp_probes: auto|fexit|tp_btf|tracepoint|off
void parse_tcp_probes(Diag &d, const YAML::Node &n, std::string &out);

}  // namespace bpfgate::core
