#include "features/observe/observe_config.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cctype>
#include <map>

#include <fmt/format.h>

#include "bpfgate/abi/observe.h"
#include "core/schema.hpp"

namespace bpfgate::core {

namespace {

// "ADDRESS:PORT" with a numeric IPv4 address or a bracketed IPv6 one.
bool parse_listen(const std::string &s, MetricsConfig &m) {
  auto colon = s.rfind(':');
  if (colon == std::string::npos)
    return false;
  std::string host = s.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']')
    host = host.substr(1, host.size() - 2);
  auto port = parse_whole(std::string_view(s).substr(colon + 1));
  unsigned char buf[16];
  bool host_ok =
      inet_pton(AF_INET, host.c_str(), buf) == 1 || inet_pton(AF_INET6, host.c_str(), buf) == 1;
  if (!port || *port < 1 || *port > 65535 || !host_ok)
    return false;
  m.address = host;
  m.port = static_cast<uint16_t>(*port);
  return true;
}

bool service_name_ok(const std::string &name) {
  return !name.empty() && name.size() < BG_OBS_NAME_MAX &&
         std::all_of(name.begin(), name.end(), [](char ch) {
           return std::isalnum(static_cast<unsigned char>(ch)) || ch == '_' || ch == '-' ||
                  ch == '.';
         });
}

// Where each service's name and port were first given, for the duplicates.
struct ServicesSeen {
  std::map<std::string, int> names;
  std::map<uint16_t, int> ports;
};

void parse_service(Diag &d, const YAML::Node &n, ServicesSeen &seen,
                   std::vector<ServiceConfig> &out) {
  Section s(d, n, "a service", {"name", "port", "protocol"});
  if (!s)
    return;
  ServiceConfig sc;
  sc.line = s.line();
  if (!s.has("name") || !s.has("port")) {
    d.at(n, "a service needs a name and a port, e.g. `{name: web, port: 80}`");
    return;
  }
  s.text("name", sc.name);
  bool name_ok = service_name_ok(sc.name);
  if (!name_ok)
    d.at(s["name"], fmt::format("service name '{}' must be 1 to {} letters, digits, '_', '-' "
                                "or '.'",
                                sc.name, BG_OBS_NAME_MAX - 1));
  s.number("port", sc.port, 1, 65535);
  if (s.has("protocol"))
    if (auto p = read_choice(d, s["protocol"], "protocol", {"http", "tcp"},
                             "http (HTTP/1.x, status classes) or tcp (requests and latency only)"))
      sc.http = *p == "http";
  if (name_ok && !seen.names.emplace(sc.name, sc.line).second)
    d.at(s["name"],
         fmt::format("service {} is already defined on line {}", sc.name, seen.names[sc.name]));
  if (sc.port && !seen.ports.emplace(sc.port, sc.line).second)
    d.at(s["port"], fmt::format("port {} already belongs to the service on line {}", sc.port,
                                seen.ports[sc.port]));
  out.push_back(sc);
}

}  // namespace

std::optional<EventBufferChoice> parse_event_buffer(const std::string &s) {
  if (s == "auto")
    return EventBufferChoice::kAuto;
  if (s == "ringbuf")
    return EventBufferChoice::kRingbuf;
  if (s == "perf" || s == "perfbuf")
    return EventBufferChoice::kPerf;
  return std::nullopt;
}

const char *event_buffer_name(EventBufferChoice c) {
  switch (c) {
    case EventBufferChoice::kAuto:
      return "auto";
    case EventBufferChoice::kRingbuf:
      return "ringbuf";
    case EventBufferChoice::kPerf:
      return "perf";
  }
  return "?";
}

void parse_metrics(Diag &d, const YAML::Node &n, MetricsConfig &out) {
  Section s(d, n, "metrics", {"listen"});
  if (!s)
    return;
  out.line = s.line();
  std::string listen;
  if (!s.text("listen", listen, "metrics.listen"))
    return;
  if (listen == "off" || listen == "false" || listen == "no") {
    out.enabled = false;
    return;
  }
  if (!parse_listen(listen, out))
    d.at(s["listen"], fmt::format("metrics.listen '{}' is not ADDRESS:PORT with a numeric "
                                  "address (e.g. 127.0.0.1:9477, [::1]:9477, 0.0.0.0:9477) or off",
                                  listen));
}

void parse_events(Diag &d, const YAML::Node &n, EventsConfig &out) {
  Section s(d, n, "events", {"buffer", "drop_samples"});
  if (!s)
    return;
  std::string buffer;
  if (s.text("buffer", buffer, "events.buffer")) {
    if (auto b = parse_event_buffer(buffer)) {
      out.buffer_choice = *b;
      out.buffer = event_buffer_name(*b);
    } else {
      d.at(s["buffer"],
           fmt::format("events.buffer '{}' is unknown: use auto, ringbuf or perf", buffer));
    }
  }
  uint64_t per_second = 0;
  if (s.number("drop_samples", per_second, 0, 1000, "events.drop_samples (per second per CPU)"))
    out.drop_sample_interval_ns = per_second ? 1'000'000'000ULL / per_second : 0;
}

void parse_services(Diag &d, const YAML::Node &n, std::vector<ServiceConfig> &out) {
  if (!n.IsSequence()) {
    d.at(n, "services must be a list, e.g. `- {name: web, port: 80}`");
    return;
  }
  ServicesSeen seen;
  for (const auto &s : n)
    parse_service(d, s, seen, out);
  if (out.size() >= BG_OBS_SERVICES_MAX)
    d.at(n, fmt::format("{} services: at most {}", out.size(), BG_OBS_SERVICES_MAX - 1));
}

void parse_tcp_probes(Diag &d, const YAML::Node &n, std::string &out) {
  if (auto s = read_choice(d, n, "tcp_probes", {"auto", "fexit", "tp_btf", "tracepoint", "off"}))
    out = *s;
}

}  // namespace bpfgate::core
