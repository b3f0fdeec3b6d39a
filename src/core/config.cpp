#include "core/config.hpp"

#include "bpfgate/abi/accel.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>

#include <fmt/format.h>

#include "bpfgate/abi/observe.h"
#include "core/duration.hpp"
#include "core/input_guard.hpp"
#include "features/tc/tc_config.hpp"

namespace bpfgate::core {

namespace {

// Collects every error, each with the file and line it belongs to.
class Diag {
 public:
  explicit Diag(std::string path) : path_(std::move(path)) {}
  void at(int line, const std::string &msg) {
    errors_.push_back(fmt::format("{}:{}: {}", excerpt(path_, 200), line, excerpt(msg, 400)));
  }
  void at(const YAML::Node &n, const std::string &msg) { at(n.Mark().line + 1, msg); }
  void in_file(const std::string &file, int line, const std::string &msg) {
    errors_.push_back(fmt::format("{}:{}: {}", excerpt(file, 200), line, excerpt(msg, 400)));
  }
  bool ok() const { return errors_.empty(); }
  Error error() const {
    std::string all;
    for (const auto &e : errors_)
      all += (all.empty() ? "" : "\n") + e;
    return Error(EINVAL, fmt::format("{} error{} in {}; nothing was applied:\n{}", errors_.size(),
                                     errors_.size() == 1 ? "" : "s", path_, all));
  }
  const std::string &path() const { return path_; }

 private:
  std::string path_;
  std::vector<std::string> errors_;
};

// Why `path` cannot be the agent's control socket: it must be absolute, fit
// a sockaddr_un, and be a socket or nothing (the agent replaces what is there).
std::optional<std::string> control_socket_problem(const std::string &path) {
  if (path.empty() || path[0] != '/')
    return fmt::format("control_socket '{}' must be an absolute path", excerpt(path));
  if (path.size() >= sizeof(sockaddr_un{}.sun_path))
    return fmt::format("control_socket '{}' is longer than a socket path can be ({} bytes)",
                       excerpt(path), sizeof(sockaddr_un{}.sun_path) - 1);
  if (path.find('\0') != std::string::npos)
    return "control_socket holds a NUL byte";
  struct stat st {};
  if (lstat(path.c_str(), &st) == 0 && !S_ISSOCK(st.st_mode))
    return fmt::format("control_socket '{}' exists and is not a socket: the agent would replace it",
                       excerpt(path));
  return std::nullopt;
}

int line_of(const YAML::Node &n) {
  return n.Mark().line + 1;
}

// Reports keys of a mapping that are not in `known`.
bool check_keys(Diag &d, const YAML::Node &map, std::initializer_list<const char *> known,
                const char *what) {
  if (!map.IsMap()) {
    d.at(map, fmt::format("{} must be a mapping of keys to values", what));
    return false;
  }
  for (const auto &kv : map) {
    std::string k = kv.first.as<std::string>();
    if (std::none_of(known.begin(), known.end(), [&](const char *x) { return k == x; })) {
      std::string list;
      for (const char *x : known)
        list += (list.empty() ? "" : ", ") + std::string(x);
      d.at(kv.first, fmt::format("unknown key '{}' in {} (known: {})", k, what, list));
    }
  }
  return true;
}

std::optional<std::string> scalar(Diag &d, const YAML::Node &n, const char *what) {
  if (!n.IsScalar()) {
    d.at(n, fmt::format("{} must be a single value", what));
    return std::nullopt;
  }
  return n.Scalar();
}

std::optional<uint64_t> number(Diag &d, const YAML::Node &n, const char *what, uint64_t lo,
                               uint64_t hi) {
  auto s = scalar(d, n, what);
  if (!s)
    return std::nullopt;
  uint64_t v = 0;
  auto [end, ec] = std::from_chars(s->data(), s->data() + s->size(), v);
  if (ec != std::errc() || end != s->data() + s->size() || s->empty()) {
    d.at(n, fmt::format("{} '{}' is not a whole number", what, *s));
    return std::nullopt;
  }
  if (v < lo || v > hi) {
    d.at(n, fmt::format("{} {} is out of range: give {} to {}", what, v, lo, hi));
    return std::nullopt;
  }
  return v;
}

std::optional<uint64_t> duration(Diag &d, const YAML::Node &n, const char *what) {
  auto s = scalar(d, n, what);
  if (!s)
    return std::nullopt;
  auto v = parse_duration_ns(*s);
  if (!v) {
    d.at(n, fmt::format("{}: {}", what, v.error().message()));
    return std::nullopt;
  }
  return *v;
}

std::optional<bool> boolean(Diag &d, const YAML::Node &n, const char *what) {
  auto s = scalar(d, n, what);
  if (!s)
    return std::nullopt;
  if (*s == "true" || *s == "yes")
    return true;
  if (*s == "false" || *s == "no")
    return false;
  d.at(n, fmt::format("{} must be true or false, not '{}'", what, *s));
  return std::nullopt;
}

// A switch: on (true, yes) or off (false, no).
std::optional<bool> on_off(Diag &d, const YAML::Node &n, const char *what) {
  auto s = scalar(d, n, what);
  if (!s)
    return std::nullopt;
  if (auto v = parse_switch(*s))
    return v;
  d.at(n, fmt::format("{} must be on or off, not '{}'", what, excerpt(*s)));
  return std::nullopt;
}

// rate + burst (burst defaults to rate) from a mapping that may hold more keys.
std::optional<Limits> limits_in(Diag &d, const YAML::Node &m, const char *what, bool required) {
  if (!m["rate"]) {
    if (required)
      d.at(m, fmt::format("{} needs a rate (packets per second)", what));
    return std::nullopt;
  }
  auto rate = number(d, m["rate"], "rate", 1, BG_RATE_MAX_PPS);
  std::optional<uint64_t> burst = rate;
  if (m["burst"])
    burst = number(d, m["burst"], "burst", 1, BG_BURST_MAX);
  if (!rate || !burst)
    return std::nullopt;
  return Limits{*rate, *burst};
}

void parse_interfaces(Diag &d, const YAML::Node &n, Config &c) {
  if (!n.IsSequence()) {
    d.at(n, "interfaces must be a list, e.g. `- name: eth0`");
    return;
  }
  if (n.size() == 0)
    d.at(n, "interfaces is empty: name at least one (interfaces: [- name: eth0])");
  std::set<std::string> seen;
  for (const auto &i : n) {
    if (!check_keys(d, i, {"name", "mode", "attach", "priority", "max_sources"}, "an interface"))
      continue;
    InterfaceConfig ic;
    ic.line = line_of(i);
    if (!i["name"]) {
      d.at(i, "an interface needs a name");
      continue;
    }
    if (auto s = scalar(d, i["name"], "name"))
      ic.name = *s;
    if (auto why = interface_name_problem(ic.name))
      d.at(i["name"], *why);
    if (!seen.insert(ic.name).second)
      d.at(i["name"], fmt::format("interface {} is listed twice", ic.name));
    if (i["mode"]) {
      auto s = scalar(d, i["mode"], "mode");
      if (s && *s != "auto" && *s != "native" && *s != "generic" && *s != "offload")
        d.at(i["mode"],
             fmt::format("mode '{}' is unknown: use auto, native, generic or offload", *s));
      else if (s)
        ic.mode = *s;
    }
    if (i["attach"]) {
      auto s = scalar(d, i["attach"], "attach");
      if (s && *s != "direct" && *s != "dispatcher")
        d.at(i["attach"], fmt::format("attach '{}' is unknown: use direct or dispatcher", *s));
      else if (s)
        ic.attach = *s;
      if (ic.attach == "dispatcher" && ic.mode == "offload")
        d.at(i["attach"], "libxdp's dispatcher cannot be offloaded: use another mode");
    }
    if (i["priority"]) {
      if (ic.attach != "dispatcher")
        d.at(i["priority"], "priority orders libxdp's dispatcher: it needs attach: dispatcher");
      else if (auto v = number(d, i["priority"], "priority", 0, 1000000))
        ic.priority = static_cast<uint32_t>(*v);
    }
    if (i["max_sources"])
      if (auto v = number(d, i["max_sources"], "max_sources", 16, BG_SOURCES_MAX))
        ic.max_sources = static_cast<uint32_t>(*v);
    c.interfaces.push_back(ic);
  }
}

void parse_limits(Diag &d, const YAML::Node &n, Config &c) {
  if (!check_keys(d, n,
                  {"rate", "burst", "prefix", "new_sources", "unproven", "prove", "syn_proxy"},
                  "limits"))
    return;
  if (const auto &sp = n["syn_proxy"]) {
    // `syn_proxy: on` or `off` (default): held SYNs answered by the datapath.
    auto on = sp.IsScalar() ? parse_switch(sp.Scalar()) : std::nullopt;
    if (on)
      c.syn_proxy = *on;
    else
      d.at(sp, fmt::format("limits.syn_proxy is on or off, not '{}'",
                           sp.IsScalar() ? sp.Scalar() : std::string("a map or list")));
  }
  if (const auto &pv = n["prove"]) {
    // `prove: syncookies` (default) or `off`: TCP sources prove themselves with SYN cookies.
    if (pv.IsScalar() && (pv.Scalar() == "syncookies" || pv.Scalar() == "off"))
      c.prove = pv.Scalar() == "syncookies";
    else
      d.at(pv, fmt::format("limits.prove is syncookies or off, not '{}'",
                           pv.IsScalar() ? pv.Scalar() : std::string("a map or list")));
  }
  // `new_sources` and `unproven`: `off`, or {rate, burst} for the whole filter.
  for (auto [key, out] : {std::pair{"new_sources", &c.new_sources}, {"unproven", &c.unproven}}) {
    const auto &ns = n[key];
    if (!ns)
      continue;
    const std::string what = fmt::format("limits.{}", key);
    if (ns.IsScalar()) {
      if (ns.Scalar() == "off")
        *out = Limits{};
      else
        d.at(ns, fmt::format("{} is off or {{rate: N, burst: N}}, not '{}'", what, ns.Scalar()));
    } else if (check_keys(d, ns, {"rate", "burst"}, what.c_str())) {
      if (auto l = limits_in(d, ns, what.c_str(), true))
        *out = *l;
    }
  }
  if (auto l = limits_in(d, n, "limits", true))
    c.limits = *l;
  if (const auto &p = n["prefix"]) {
    if (!check_keys(d, p, {"ipv4", "ipv6", "rate", "burst"}, "limits.prefix"))
      return;
    PrefixLimitConfig pl;
    if (p["ipv4"])
      if (auto v = number(d, p["ipv4"], "ipv4 prefix length", 1, 32))
        pl.v4_len = static_cast<uint8_t>(*v);
    if (p["ipv6"])
      if (auto v = number(d, p["ipv6"], "ipv6 prefix length", 1, 128))
        pl.v6_len = static_cast<uint8_t>(*v);
    if (auto l = limits_in(d, p, "limits.prefix", true)) {
      pl.limits = *l;
      c.prefix_limit = pl;
    }
  }
}

// Prefixes from a YAML list, or from a file of one prefix a line ('#' comments).
void parse_prefix_list(Diag &d, const YAML::Node &n, std::vector<Prefix> &out, const char *what) {
  if (!n.IsSequence()) {
    d.at(n, fmt::format("{} must be a list of prefixes", what));
    return;
  }
  for (const auto &e : n) {
    auto s = scalar(d, e, what);
    if (!s)
      continue;
    auto p = parse_prefix(*s);
    if (!p)
      d.at(e, fmt::format("bad CIDR in {}: {}", what, p.error().message()));
    else
      out.push_back(*p);
  }
}

void parse_prefix_file(Diag &d, const YAML::Node &n, std::vector<Prefix> &out, const char *what,
                       uint64_t max_bytes) {
  auto name = scalar(d, n, what);
  if (!name)
    return;
  std::filesystem::path file(*name);
  if (file.is_relative())
    file = std::filesystem::path(d.path()).parent_path() / file;
  auto text = read_bounded_file(file.string(), max_bytes, what);
  if (!text) {
    d.at(n, text.error().message());
    return;
  }
  auto lines = parse_prefix_lines(*text);
  for (const auto &[lineno, why] : lines.problems)
    d.in_file(file.string(), lineno, fmt::format("bad CIDR: {}", why));
  out.insert(out.end(), lines.prefixes.begin(), lines.prefixes.end());
}

void parse_rules(Diag &d, const YAML::Node &n, Config &c) {
  if (!n.IsSequence()) {
    d.at(n, "rules must be a list, e.g. `- match: tcp/443`");
    return;
  }
  for (const auto &r : n) {
    if (!check_keys(d, r, {"match", "action", "rate", "burst"}, "a rule"))
      continue;
    RuleConfig rc;
    rc.line = line_of(r);
    if (!r["match"]) {
      d.at(r, "a rule needs a match, e.g. tcp/443, udp/53, tcp/8000-8099 or icmp");
      continue;
    }
    auto m = scalar(d, r["match"], "match");
    if (!m)
      continue;
    if (auto st = parse_match(*m, rc); !st) {
      d.at(r["match"], st.error().message());
      continue;
    }
    std::string action = "limit";
    if (r["action"])
      if (auto s = scalar(d, r["action"], "action"))
        action = *s;
    if (action == "pass") {
      rc.action = BG_ACTION_PASS;
    } else if (action == "drop") {
      rc.action = BG_ACTION_DROP;
    } else if (action == "limit") {
      rc.action = BG_ACTION_LIMIT;
      if (auto l = limits_in(d, r, "a rule with action limit", true))
        rc.limits = *l;
    } else {
      d.at(r["action"], fmt::format("action '{}' is unknown: use pass, drop or limit", action));
      continue;
    }
    if (rc.action != BG_ACTION_LIMIT && (r["rate"] || r["burst"]))
      d.at(r, fmt::format("rate and burst apply to action limit, not {}", action));
    c.rules.push_back(rc);
  }
  // Port ranges of one protocol must not overlap; protocol-only rules are unique.
  std::map<uint8_t, std::vector<const RuleConfig *>> by_proto;
  for (const auto &r : c.rules)
    by_proto[r.proto].push_back(&r);
  for (auto &[proto, rules] : by_proto) {
    std::sort(rules.begin(), rules.end(), [](auto *a, auto *b) {
      return a->has_ports != b->has_ports ? !a->has_ports : a->port_lo < b->port_lo;
    });
    for (size_t i = 1; i < rules.size(); i++) {
      const RuleConfig *a = rules[i - 1], *b = rules[i];
      if (!a->has_ports && !b->has_ports)
        d.at(b->line, fmt::format("rule {} repeats the rule on line {}", b->match, a->line));
      else if (a->has_ports && b->port_lo <= a->port_hi)
        d.at(b->line,
             fmt::format("rule {} overlaps rule {} on line {}", b->match, a->match, a->line));
    }
  }
  if (c.rules.size() >= BG_RULES_MAX)
    d.at(n, fmt::format("{} rules: at most {}", c.rules.size(), BG_RULES_MAX - 1));
}

void parse_auto_block(Diag &d, const YAML::Node &n, Config &c) {
  if (!check_keys(d, n, {"after", "ttl", "max_rate", "never"}, "auto_block"))
    return;
  if (!n["after"] || !n["ttl"]) {
    d.at(n, "auto_block needs both after (how long over the limit) and ttl (how long blocked)");
    return;
  }
  auto after = duration(d, n["after"], "auto_block.after");
  auto ttl = duration(d, n["ttl"], "auto_block.ttl");
  if (after && *after < 100'000'000ULL)
    d.at(n["after"], "auto_block.after must be at least 100ms");
  if (ttl && *ttl < 1'000'000'000ULL)
    d.at(n["ttl"], "auto_block.ttl must be at least 1s");
  if (!after || !ttl)
    return;
  AutoBlockConfig ab;
  ab.after_ns = *after;
  ab.ttl_ns = *ttl;
  if (const auto &m = n["max_rate"]) {
    // max_rate: N (auto-blocks a second, burst N) or {rate: N, burst: N}.
    if (m.IsScalar()) {
      if (auto v = number(d, m, "auto_block.max_rate", 1, BG_RATE_MAX_PPS))
        ab.max_rate = Limits{*v, *v};
    } else if (check_keys(d, m, {"rate", "burst"}, "auto_block.max_rate")) {
      if (auto l = limits_in(d, m, "auto_block.max_rate", true))
        ab.max_rate = *l;
    }
  }
  if (n["never"])
    parse_prefix_list(d, n["never"], ab.never, "auto_block.never");
  if (ab.never.size() > BG_NOBLOCK_MAX)
    d.at(n["never"], fmt::format("auto_block.never has {} prefixes: at most {}", ab.never.size(),
                                 BG_NOBLOCK_MAX));
  c.auto_block = std::move(ab);
}

// metrics: {listen: 127.0.0.1:9477 | "[::1]:9477" | off}
void parse_metrics(Diag &d, const YAML::Node &n, Config &c) {
  if (!check_keys(d, n, {"listen"}, "metrics"))
    return;
  c.metrics.line = line_of(n);
  if (!n["listen"])
    return;
  auto s = scalar(d, n["listen"], "metrics.listen");
  if (!s)
    return;
  if (*s == "off" || *s == "false" || *s == "no") {
    c.metrics.enabled = false;
    return;
  }
  auto colon = s->rfind(':');
  std::string host = colon == std::string::npos ? "" : s->substr(0, colon);
  std::string port = colon == std::string::npos ? *s : s->substr(colon + 1);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']')
    host = host.substr(1, host.size() - 2);
  unsigned char buf[16];
  unsigned v = 0;
  auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), v);
  bool port_ok = ec == std::errc() && end == port.data() + port.size() && v >= 1 && v <= 65535;
  bool host_ok =
      inet_pton(AF_INET, host.c_str(), buf) == 1 || inet_pton(AF_INET6, host.c_str(), buf) == 1;
  if (colon == std::string::npos || !port_ok || !host_ok) {
    d.at(n["listen"], fmt::format("metrics.listen '{}' is not ADDRESS:PORT with a numeric "
                                  "address (e.g. 127.0.0.1:9477, [::1]:9477, 0.0.0.0:9477) or off",
                                  *s));
    return;
  }
  c.metrics.address = host;
  c.metrics.port = static_cast<uint16_t>(v);
}

// events: {buffer: auto|ringbuf|perf, drop_samples: N per second per CPU (0: none)}
void parse_events(Diag &d, const YAML::Node &n, Config &c) {
  if (!check_keys(d, n, {"buffer", "drop_samples"}, "events"))
    return;
  if (n["buffer"]) {
    auto s = scalar(d, n["buffer"], "events.buffer");
    if (s && *s != "auto" && *s != "ringbuf" && *s != "perf")
      d.at(n["buffer"],
           fmt::format("events.buffer '{}' is unknown: use auto, ringbuf or perf", *s));
    else if (s)
      c.events.buffer = *s;
  }
  if (n["drop_samples"])
    if (auto v = number(d, n["drop_samples"], "events.drop_samples (per second per CPU)", 0, 1000))
      c.events.drop_sample_interval_ns = *v ? 1'000'000'000ULL / *v : 0;
}

// services: [{name: web, port: 80, protocol: http|tcp}]
void parse_services(Diag &d, const YAML::Node &n, Config &c) {
  if (!n.IsSequence()) {
    d.at(n, "services must be a list, e.g. `- {name: web, port: 80}`");
    return;
  }
  std::map<std::string, int> names;
  std::map<uint16_t, int> ports;
  for (const auto &s : n) {
    if (!check_keys(d, s, {"name", "port", "protocol"}, "a service"))
      continue;
    ServiceConfig sc;
    sc.line = line_of(s);
    if (!s["name"] || !s["port"]) {
      d.at(s, "a service needs a name and a port, e.g. `{name: web, port: 80}`");
      continue;
    }
    if (auto v = scalar(d, s["name"], "name"))
      sc.name = *v;
    bool name_ok = !sc.name.empty() && sc.name.size() < BG_OBS_NAME_MAX &&
                   std::all_of(sc.name.begin(), sc.name.end(), [](char ch) {
                     return std::isalnum(static_cast<unsigned char>(ch)) || ch == '_' ||
                            ch == '-' || ch == '.';
                   });
    if (!name_ok)
      d.at(s["name"], fmt::format("service name '{}' must be 1 to {} letters, digits, '_', '-' "
                                  "or '.'",
                                  sc.name, BG_OBS_NAME_MAX - 1));
    if (auto v = number(d, s["port"], "port", 1, 65535))
      sc.port = static_cast<uint16_t>(*v);
    if (s["protocol"]) {
      auto p = scalar(d, s["protocol"], "protocol");
      if (p && *p != "http" && *p != "tcp")
        d.at(s["protocol"], fmt::format("protocol '{}' is unknown: use http (HTTP/1.x, status "
                                        "classes) or tcp (requests and latency only)",
                                        *p));
      else if (p)
        sc.http = *p == "http";
    }
    if (name_ok && !names.emplace(sc.name, sc.line).second)
      d.at(s["name"],
           fmt::format("service {} is already defined on line {}", sc.name, names[sc.name]));
    if (sc.port && !ports.emplace(sc.port, sc.line).second)
      d.at(s["port"], fmt::format("port {} already belongs to the service on line {}", sc.port,
                                  ports[sc.port]));
    c.services.push_back(sc);
  }
  if (c.services.size() >= BG_OBS_SERVICES_MAX)
    d.at(n, fmt::format("{} services: at most {}", c.services.size(), BG_OBS_SERVICES_MAX - 1));
}

void parse_accel(Diag &d, const YAML::Node &n, Config &c) {
  if (!check_keys(d, n, {"cgroup", "ports", "addresses", "max_sockets"}, "accel"))
    return;
  AccelConfig a;
  a.line = a.cgroup_line = a.ports_line = line_of(n);
  if (n["cgroup"]) {
    a.cgroup_line = line_of(n["cgroup"]);
    if (auto v = scalar(d, n["cgroup"], "accel.cgroup"))
      a.cgroup = *v;
  }
  if (const auto &p = n["ports"]) {
    a.ports_line = line_of(p);
    // "8080,9000-9010", a number, or a list of either.
    if (p.IsSequence()) {
      for (const auto &item : p)
        if (auto v = scalar(d, item, "a port"))
          a.ports += (a.ports.empty() ? "" : ",") + *v;
    } else if (auto v = scalar(d, p, "accel.ports")) {
      a.ports = *v;
    }
    if (a.ports.empty())
      d.at(p, "accel.ports is empty: list ports (8080,9000-9010), or leave it out for every port");
  }
  if (const auto &l = n["addresses"]) {
    if (!l.IsSequence())
      d.at(l, "accel.addresses must be a list of prefixes, e.g. [127.0.0.0/8, ::1]");
    else
      for (const auto &item : l)
        if (auto v = scalar(d, item, "an address")) {
          if (!parse_prefix(*v))
            d.at(item, fmt::format("'{}' is not an address or prefix", *v));
          a.addresses.push_back(*v);
        }
  }
  if (n["max_sockets"])
    if (auto v = number(d, n["max_sockets"], "accel.max_sockets", 1, BG_ACCEL_MAX_SOCKETS_MAX))
      a.max_sockets = static_cast<uint32_t>(*v);
  c.accel = a;
}

void parse_root(Diag &d, const YAML::Node &root, Config &c, ConfigFor use) {
  if (!check_keys(d, root,
                  {"interfaces", "limits", "unparsed", "allow", "allow_file", "deny", "deny_file",
                   "prefix_file_max", "rules", "auto_block", "sweep", "agent", "metrics", "events",
                   "services", "tcp_probes", "tc", "accel"},
                  "the config"))
    return;
  if (root["interfaces"])
    parse_interfaces(d, root["interfaces"], c);
  else if (use == ConfigFor::agent)
    d.at(1, "the config names no interfaces (interfaces: [- name: eth0])");
  if (root["limits"])
    parse_limits(d, root["limits"], c);
  if (root["unparsed"]) {
    auto s = scalar(d, root["unparsed"], "unparsed");
    if (s && *s != "pass" && *s != "drop")
      d.at(root["unparsed"], fmt::format("unparsed must be pass or drop, not '{}'", *s));
    else if (s)
      c.unparsed = *s == "drop" ? BG_VERDICT_DROP : BG_VERDICT_PASS;
  }
  std::map<Prefix, int> allow_line;
  if (root["allow"])
    parse_prefix_list(d, root["allow"], c.allow, "allow");
  uint64_t prefix_file_max = kPrefixFileMaxBytes;
  if (root["prefix_file_max"]) {
    if (auto s = scalar(d, root["prefix_file_max"], "prefix_file_max")) {
      auto v = parse_size_bytes(*s);
      if (!v || *v == 0)
        d.at(root["prefix_file_max"],
             fmt::format("prefix_file_max '{}' is not a size in bytes (e.g. 64mb)", excerpt(*s)));
      else
        prefix_file_max = *v;
    }
  }
  if (root["allow_file"])
    parse_prefix_file(d, root["allow_file"], c.allow, "allow_file", prefix_file_max);
  if (root["deny"])
    parse_prefix_list(d, root["deny"], c.deny, "deny");
  if (root["deny_file"])
    parse_prefix_file(d, root["deny_file"], c.deny, "deny_file", prefix_file_max);
  if (root["rules"])
    parse_rules(d, root["rules"], c);
  if (root["auto_block"])
    parse_auto_block(d, root["auto_block"], c);
  if (root["metrics"])
    parse_metrics(d, root["metrics"], c);
  if (root["events"])
    parse_events(d, root["events"], c);
  if (root["services"])
    parse_services(d, root["services"], c);
  if (root["accel"])
    parse_accel(d, root["accel"], c);
  if (root["tc"])
    for (const auto &e : parse_tc(root["tc"], c.tc))
      d.at(e.line, e.message);
  if (root["tcp_probes"]) {
    auto s = scalar(d, root["tcp_probes"], "tcp_probes");
    if (s && *s != "auto" && *s != "fexit" && *s != "tp_btf" && *s != "tracepoint" && *s != "off")
      d.at(root["tcp_probes"], fmt::format("tcp_probes '{}' is unknown: use auto, fexit, tp_btf, "
                                           "tracepoint or off",
                                           *s));
    else if (s)
      c.tcp_probes = *s;
  }
  if (const auto &s = root["sweep"]) {
    if (check_keys(d, s, {"interval", "source_idle"}, "sweep")) {
      if (s["interval"])
        if (auto v = duration(d, s["interval"], "sweep.interval"))
          c.sweep_interval_ns = *v;
      if (s["source_idle"])
        if (auto v = duration(d, s["source_idle"], "sweep.source_idle"))
          c.source_idle_ns = *v;
      if (c.sweep_interval_ns < 10'000'000ULL)
        d.at(s, "sweep.interval must be at least 10ms");
    }
  }
  if (const auto &a = root["agent"]) {
    if (check_keys(d, a, {"control_socket", "keep_datapath", "seccomp", "state_dir"}, "agent")) {
      if (a["control_socket"])
        if (auto v = scalar(d, a["control_socket"], "control_socket")) {
          if (auto why = control_socket_problem(*v))
            d.at(a["control_socket"], *why);
          else
            c.control_socket = *v;
        }
      if (a["keep_datapath"])
        if (auto v = boolean(d, a["keep_datapath"], "keep_datapath"))
          c.keep_datapath = *v;
      if (a["seccomp"])
        if (auto v = on_off(d, a["seccomp"], "agent.seccomp"))
          c.seccomp = *v;
      if (a["state_dir"])
        if (auto v = scalar(d, a["state_dir"], "agent.state_dir")) {
          if (*v == "off")
            c.state_dir.clear();
          else if (v->empty() || (*v)[0] != '/' || v->find('\0') != std::string::npos)
            d.at(a["state_dir"],
                 fmt::format("agent.state_dir '{}' must be an absolute path, or off", excerpt(*v)));
          else
            c.state_dir = *v;
        }
    }
  }
}

// Sorted and deduplicated; a prefix both allowed and denied is an error.
void settle_acl(Diag &d, Config &c) {
  for (auto *list : {&c.allow, &c.deny}) {
    std::sort(list->begin(), list->end());
    list->erase(std::unique(list->begin(), list->end()), list->end());
  }
  std::vector<Prefix> both;
  std::set_intersection(c.allow.begin(), c.allow.end(), c.deny.begin(), c.deny.end(),
                        std::back_inserter(both));
  for (const auto &p : both)
    d.at(1, fmt::format("{} is in both allow and deny: a prefix has one action (the longest "
                        "prefix of a source decides)",
                        format_prefix(p)));
  if (c.allow.size() + c.deny.size() > BG_ACL_MAX)
    d.at(1, fmt::format("{} allow/deny prefixes: at most {}", c.allow.size() + c.deny.size(),
                        BG_ACL_MAX));
}

}  // namespace

Status parse_match(const std::string &text, RuleConfig &rule) {
  rule.match = text;
  auto slash = text.find('/');
  std::string proto = text.substr(0, slash);
  static const std::map<std::string, uint8_t> kProtos = {
      {"tcp", IPPROTO_TCP},       {"udp", IPPROTO_UDP}, {"icmp", IPPROTO_ICMP},
      {"icmpv6", IPPROTO_ICMPV6}, {"gre", IPPROTO_GRE}, {"esp", IPPROTO_ESP},
      {"sctp", IPPROTO_SCTP}};
  if (auto it = kProtos.find(proto); it != kProtos.end()) {
    rule.proto = it->second;
  } else {
    unsigned v = 0;
    auto [end, ec] = std::from_chars(proto.data(), proto.data() + proto.size(), v);
    if (ec != std::errc() || end != proto.data() + proto.size() || proto.empty() || v > 255)
      return make_error(EINVAL,
                        "match '{}': unknown protocol '{}' (tcp, udp, icmp, icmpv6, gre, "
                        "esp, sctp or a number 0-255)",
                        text, proto);
    rule.proto = static_cast<uint8_t>(v);
  }
  rule.has_ports = false;
  if (slash == std::string::npos || text.substr(slash + 1) == "*")
    return {};
  if (rule.proto != IPPROTO_TCP && rule.proto != IPPROTO_UDP)
    return make_error(EINVAL, "match '{}': ports apply to tcp and udp only", text);
  std::string ports = text.substr(slash + 1);
  auto dash = ports.find('-');
  auto port = [&](const std::string &s, uint16_t &out) {
    unsigned v = 0;
    auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (ec != std::errc() || end != s.data() + s.size() || s.empty() || v > 65535)
      return false;
    out = static_cast<uint16_t>(v);
    return true;
  };
  if (!port(ports.substr(0, dash), rule.port_lo) ||
      !port(dash == std::string::npos ? ports.substr(0, dash) : ports.substr(dash + 1),
            rule.port_hi))
    return make_error(EINVAL, "match '{}': ports must be N or N-M with 0 <= N <= M <= 65535", text);
  if (rule.port_lo > rule.port_hi)
    return make_error(EINVAL, "match '{}': range is backwards ({} > {})", text, rule.port_lo,
                      rule.port_hi);
  rule.has_ports = true;
  return {};
}

Result<Config> parse_config(const std::string &text, const std::string &path, ConfigFor use) {
  Diag d(path);
  Config c;
  c.path = path;
  uint64_t h = 0xcbf29ce484222325ULL;
  for (unsigned char ch : text)
    h = (h ^ ch) * 0x100000001b3ULL;
  c.hash = fmt::format("{:016x}", h);
  for (const auto &[line, why] : yaml_problems(text))
    d.at(line, why);
  if (!d.ok())
    return d.error();
  YAML::Node root;
  try {
    root = YAML::Load(text);
  } catch (const YAML::ParserException &e) {
    d.at(e.mark.line + 1, "not valid YAML: " + e.msg);
    return d.error();
  }
  if (!root || root.IsNull()) {
    d.at(1, "the config is empty");
    return d.error();
  }
  try {
    parse_root(d, root, c, use);
  } catch (const YAML::Exception &e) {
    d.at(e.mark.line + 1, e.msg);
  }
  settle_acl(d, c);
  if (!d.ok())
    return d.error();
  return c;
}

Result<Config> load_config(const std::string &path, ConfigFor use) {
  auto text = read_bounded_file(path, kConfigMaxBytes, "config");
  if (!text)
    return text.error();
  return parse_config(*text, path, use);
}

}  // namespace bpfgate::core
