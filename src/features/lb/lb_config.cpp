#include "features/lb/lb_config.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <yaml-cpp/yaml.h>

#include <cstring>
#include <set>

#include <fmt/format.h>

#include "bpfgate/abi/lb.h"
#include "core/input_guard.hpp"
#include "core/schema.hpp"
#include "features/lb/maglev.hpp"
#include "util/text.hpp"

namespace bpfgate::core {

namespace {

bool parse_ip(const std::string &text, LbEndpoint &e) {
  in6_addr a6{};
  in_addr a4{};
  if (inet_pton(AF_INET, text.c_str(), &a4) == 1) {
    e.addr = {};
    e.addr[10] = e.addr[11] = 0xff;
    std::memcpy(e.addr.data() + 12, &a4, 4);
    e.v6 = false;
    return true;
  }
  if (inet_pton(AF_INET6, text.c_str(), &a6) == 1) {
    std::memcpy(e.addr.data(), &a6, 16);
    e.v6 = true;
    return true;
  }
  return false;
}

// "[v6]:port", "v6", "v4:port", "v4": the address part and the port part.
std::pair<std::string, std::string> split_host_port(const std::string &t) {
  if (!t.empty() && t[0] == '[') {
    size_t close = t.find(']');
    if (close == std::string::npos)
      return {t, ""};
    std::string rest = t.substr(close + 1);
    return {t.substr(1, close - 1), rest.empty() ? "" : rest.substr(rest[0] == ':')};
  }
  size_t colon = t.find(':');
  if (colon != std::string::npos && t.find(':', colon + 1) == std::string::npos)
    return {t.substr(0, colon), t.substr(colon + 1)};
  return {t, ""};  // no port, or a bare IPv6 address
}

}  // namespace

Result<LbEndpoint> parse_lb_endpoint(const std::string &text, bool need_port) {
  auto [host, port] = split_host_port(text);
  LbEndpoint e;
  if (!parse_ip(host, e))
    return make_error(EINVAL, "'{}' is not an address (198.18.2.2:8080, [2001:db8::2]:8080)",
                      util::excerpt(text));
  bool has_port = !port.empty() || text.back() == ':';
  if (has_port) {
    auto p = parse_whole(port);
    if (!p || *p < 1 || *p > 65535)
      return make_error(EINVAL, "'{}': the port must be 1-65535", util::excerpt(text));
    e.port = static_cast<uint16_t>(*p);
  } else if (need_port) {
    return make_error(EINVAL, "'{}' has no port (198.18.1.1:80, [2001:db8::1]:80)",
                      util::excerpt(text));
  }
  return e;
}

Result<std::pair<LbEndpoint, uint8_t>> parse_lb_vip(const std::string &text) {
  size_t slash = text.rfind('/');
  if (slash == std::string::npos)
    return make_error(EINVAL, "'{}' has no protocol: write ADDRESS:PORT/tcp or /udp",
                      util::excerpt(text));
  std::string proto = text.substr(slash + 1);
  if (proto != "tcp" && proto != "udp")
    return make_error(EINVAL, "'{}': the protocol must be tcp or udp", util::excerpt(text));
  auto e = parse_lb_endpoint(text.substr(0, slash), true);
  if (!e)
    return e.error();
  return std::make_pair(*e, static_cast<uint8_t>(proto == "tcp" ? IPPROTO_TCP : IPPROTO_UDP));
}

std::string format_lb_endpoint(const LbEndpoint &e) {
  char buf[INET6_ADDRSTRLEN] = "?";
  if (e.v6)
    inet_ntop(AF_INET6, e.addr.data(), buf, sizeof(buf));
  else
    inet_ntop(AF_INET, e.addr.data() + 12, buf, sizeof(buf));
  if (e.port == 0)
    return buf;
  return e.v6 ? fmt::format("[{}]:{}", buf, e.port) : fmt::format("{}:{}", buf, e.port);
}

const char *lb_proto_name(uint8_t proto) {
  return proto == IPPROTO_UDP ? "udp" : "tcp";
}

namespace {

// "10%" or 10: a percentage lo..hi.
void read_pct(const Section &s, const char *key, uint32_t &out, uint32_t lo, uint32_t hi,
              const std::string &what) {
  if (!s.has(key))
    return;
  auto v = read_scalar(s.diag(), s[key], what);
  if (!v)
    return;
  std::string t = *v;
  if (!t.empty() && t.back() == '%')
    t.pop_back();
  auto n = parse_whole(t);
  if (!n || *n < lo || *n > hi) {
    s.diag().at(s[key], fmt::format("{} '{}' must be a percentage {}-{}% (e.g. {}%)", what,
                                    util::excerpt(*v), lo, hi, out));
    return;
  }
  out = static_cast<uint32_t>(*n);
}

void parse_health(Diag &d, const YAML::Node &n, const std::string &svc, LbHealthConfig &h) {
  std::string what = svc + ".health";
  Section s(d, n, what, {"check", "path", "expect", "interval", "timeout", "rise", "fall"});
  if (!s)
    return;
  h.line = s.line();
  std::string check = "none";
  if (s.choice("check", check, {"none", "tcp", "http"}, (what + ".check").c_str()))
    h.check = check == "tcp" ? LbCheck::tcp : check == "http" ? LbCheck::http : LbCheck::none;
  if (s.text("path", h.path, (what + ".path").c_str()) && (h.path.empty() || h.path[0] != '/'))
    d.at(s["path"], fmt::format("{}.path '{}' must start with /", what, util::excerpt(h.path)));
  s.number("expect", h.expect, 100, 599, (what + ".expect").c_str());
  s.duration_ns("interval", h.interval_ns, (what + ".interval").c_str());
  s.duration_ns("timeout", h.timeout_ns, (what + ".timeout").c_str());
  s.number("rise", h.rise, 1, 100, (what + ".rise").c_str());
  s.number("fall", h.fall, 1, 100, (what + ".fall").c_str());
  if (h.interval_ns == 0 || h.timeout_ns == 0)
    d.at(n, fmt::format("{}: interval and timeout must be more than 0", what));
  else if (h.timeout_ns > h.interval_ns)
    d.at(n, fmt::format("{}: the timeout must not be longer than the interval", what));
}

void parse_dynamic(Diag &d, const YAML::Node &n, const std::string &svc, LbDynamicWeights &w) {
  std::string what = svc + ".dynamic_weights";
  Section s(d, n, what, {"enabled", "interval", "floor", "max_step", "hysteresis", "tolerance"});
  if (!s)
    return;
  w.line = s.line();
  s.on_off("enabled", w.enabled, (what + ".enabled").c_str());
  s.duration_ns("interval", w.interval_ns, (what + ".interval").c_str());
  if (s.has("interval") && w.interval_ns == 0)
    d.at(s["interval"], fmt::format("{}.interval must be more than 0", what));
  read_pct(s, "floor", w.floor_pct, 0, 100, what + ".floor");
  read_pct(s, "max_step", w.max_step_pct, 1, 100, what + ".max_step");
  read_pct(s, "hysteresis", w.hysteresis_pct, 0, 100, what + ".hysteresis");
  s.duration_ns("tolerance", w.tolerance_ns, (what + ".tolerance").c_str());
}

// One backend: {address: A[:P], weight: W}, or the address alone.
std::optional<LbBackendConfig> parse_backend(Diag &d, const YAML::Node &n,
                                             const LbServiceConfig &svc) {
  LbBackendConfig b;
  b.line = line_of(n);
  std::string what = svc.name + ".backends";
  if (n.IsMap()) {
    Section s(d, n, what + "[]", {"address", "weight"});
    if (!s.has("address")) {
      d.at(n, fmt::format("{}: a backend needs an address", what));
      return std::nullopt;
    }
    s.number("weight", b.weight, 0, 65535, (what + ".weight").c_str());
  }
  // A Node is a reference: assigning one to another would write into the config's tree.
  const YAML::Node addr = n.IsMap() ? n["address"] : n;
  auto text = read_scalar(d, addr, what + ".address");
  if (!text)
    return std::nullopt;
  auto e = parse_lb_endpoint(*text, false);
  if (!e) {
    d.at(addr, fmt::format("{}: {}", what, e.error().message()));
    return std::nullopt;
  }
  if (e->v6 != svc.vip.v6) {
    d.at(addr, fmt::format("{}: {} is IPv{}, the VIP {} IPv{}: a service and its backends are of "
                           "one family",
                           what, util::excerpt(*text), e->v6 ? 6 : 4, format_lb_endpoint(svc.vip),
                           svc.vip.v6 ? 6 : 4));
    return std::nullopt;
  }
  b.at = *e;
  if (b.at.port == 0)
    b.at.port = svc.vip.port;
  return b;
}

void parse_backends(Diag &d, const YAML::Node &n, LbServiceConfig &svc) {
  if (!n.IsSequence()) {
    d.at(n, fmt::format("{}.backends must be a list, e.g. [{{address: 198.18.2.2:8080, weight: "
                        "100}}]",
                        svc.name));
    return;
  }
  std::set<LbEndpoint> seen;
  for (const auto &item : n) {
    auto b = parse_backend(d, item, svc);
    if (!b)
      continue;
    if (!seen.insert(b->at).second)
      d.at(item, fmt::format("{}: backend {} is listed twice", svc.name, b->key()));
    else
      svc.backends.push_back(*b);
  }
  if (svc.backends.size() >= BG_LB_BACKENDS_MAX)
    d.at(n, fmt::format("{}: at most {} backends", svc.name, BG_LB_BACKENDS_MAX - 1));
}

std::optional<LbServiceConfig> parse_service(Diag &d, const YAML::Node &n) {
  Section s(d, n, "lb.services[]", {"name", "vip", "backends", "health", "dynamic_weights"});
  if (!s)
    return std::nullopt;
  LbServiceConfig svc;
  svc.line = s.line();
  std::string vip;
  if (!s.text("name", svc.name, "lb.services[].name") || svc.name.empty() ||
      svc.name.find_first_of(" \t\n\"\\/=") != std::string::npos) {
    d.at(s.has("name") ? s["name"] : n,
         "a service needs a name: letters, digits, '-', '_' or '.' (no spaces)");
    return std::nullopt;
  }
  std::string what = "lb.services." + svc.name;
  if (!s.text("vip", vip, (what + ".vip").c_str())) {
    if (!s.has("vip"))
      d.at(n, fmt::format("{} needs a vip: ADDRESS:PORT/tcp or /udp", what));
    return std::nullopt;
  }
  auto v = parse_lb_vip(vip);
  if (!v) {
    d.at(s["vip"], fmt::format("{}.vip: {}", what, v.error().message()));
    return std::nullopt;
  }
  svc.vip = v->first;
  svc.proto = v->second;
  if (s.has("backends"))
    parse_backends(d, s["backends"], svc);
  if (s.has("health"))
    parse_health(d, s["health"], what, svc.health);
  if (s.has("dynamic_weights"))
    parse_dynamic(d, s["dynamic_weights"], what, svc.dynamic_weights);
  return svc;
}

void parse_services(Diag &d, const YAML::Node &n, LbConfig &lb) {
  if (!n.IsSequence()) {
    d.at(n, "lb.services must be a list of services ({name, vip, backends})");
    return;
  }
  std::set<std::pair<LbEndpoint, uint8_t>> vips;
  std::set<std::string> names;
  for (const auto &item : n) {
    auto svc = parse_service(d, item);
    if (!svc)
      continue;
    if (!names.insert(svc->name).second)
      d.at(item, fmt::format("lb: service '{}' is defined twice", svc->name));
    else if (!vips.insert({svc->vip, svc->proto}).second)
      d.at(item["vip"], fmt::format("lb: VIP {}/{} is used twice", format_lb_endpoint(svc->vip),
                                    lb_proto_name(svc->proto)));
    else
      lb.services.push_back(std::move(*svc));
  }
  if (lb.services.size() > BG_LB_SERVICES_MAX)
    d.at(n, fmt::format("lb: {} services, at most {}", lb.services.size(), BG_LB_SERVICES_MAX));
}

void parse_interfaces(Diag &d, const YAML::Node &n, LbConfig &lb) {
  if (!n.IsSequence()) {
    d.at(n, "lb.interfaces must be a list of interface names, e.g. [b0]");
    return;
  }
  for (const auto &item : n) {
    auto name = read_scalar(d, item, "lb.interfaces[]");
    if (!name)
      continue;
    if (auto why = interface_name_problem(*name))
      d.at(item, fmt::format("lb.interfaces: {}", *why));
    else if (std::find(lb.interfaces.begin(), lb.interfaces.end(), *name) != lb.interfaces.end())
      d.at(item, fmt::format("lb.interfaces: {} is listed twice", *name));
    else {
      lb.interfaces.push_back(*name);
      lb.interface_lines.push_back(line_of(item));
    }
  }
}

}  // namespace

void parse_lb(Diag &d, const YAML::Node &n, std::optional<LbConfig> &out) {
  Section s(d, n, "lb", {"table_size", "connections", "idle_timeout", "interfaces", "services"});
  if (!s)
    return;
  LbConfig lb;
  lb.line = lb.table_size_line = lb.connections_line = s.line();
  if (s.number("table_size", lb.table_size, 7, BG_LB_RING_MAX, "lb.table_size")) {
    lb.table_size_line = line_of(s["table_size"]);
    if (!agent::lb::is_prime(lb.table_size))
      d.at(s["table_size"],
           fmt::format("lb.table_size {} is not prime (e.g. 251, 4099, 65537)", lb.table_size));
  }
  if (s.number("connections", lb.connections, 1024, 1U << 24, "lb.connections"))
    lb.connections_line = line_of(s["connections"]);
  s.duration_ns("idle_timeout", lb.idle_timeout_ns, "lb.idle_timeout");
  if (s.has("idle_timeout") && lb.idle_timeout_ns == 0)
    d.at(s["idle_timeout"], "lb.idle_timeout must be more than 0");
  if (s.has("interfaces"))
    parse_interfaces(d, s["interfaces"], lb);
  if (s.has("services"))
    parse_services(d, s["services"], lb);
  out = std::move(lb);
}

}  // namespace bpfgate::core
