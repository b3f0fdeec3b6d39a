#include "features/xdp/xdp_config.hpp"

#include <netinet/in.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <filesystem>
#include <map>
#include <set>

#include <fmt/format.h>

#include "core/config.hpp"
#include "core/duration.hpp"
#include "core/input_guard.hpp"
#include "core/schema.hpp"

namespace bpfgate::core {

namespace {

// rate + burst (burst defaults to rate) from a mapping that may hold more keys.
std::optional<Limits> limits_in(const Section &s, const std::string &what) {
  Diag &d = s.diag();
  if (!s.has("rate")) {
    d.at(s.node(), fmt::format("{} needs a rate (packets per second)", what));
    return std::nullopt;
  }
  auto rate = read_number(d, s["rate"], "rate", 1, BG_RATE_MAX_PPS);
  std::optional<uint64_t> burst = rate;
  if (s.has("burst"))
    burst = read_number(d, s["burst"], "burst", 1, BG_BURST_MAX);
  if (!rate || !burst)
    return std::nullopt;
  return Limits{*rate, *burst};
}

// "WHAT is A or B, not 'x'": a setting that takes one of two words.
void not_one_of(Diag &d, const YAML::Node &n, const std::string &what, const char *words) {
  d.at(n, fmt::format("{} is {}, not '{}'", what, words,
                      n.IsScalar() ? n.Scalar() : std::string("a map or list")));
}

void parse_mode(const Section &s, InterfaceConfig &ic) {
  auto m = read_scalar(s.diag(), s["mode"], "mode");
  auto mode = m ? bpf::parse_xdp_mode(*m) : std::nullopt;
  if (m && !mode)
    s.diag().at(s["mode"],
                fmt::format("mode '{}' is unknown: use auto, native, generic or offload", *m));
  if (mode) {
    ic.xdp_mode = *mode;
    ic.mode = bpf::to_string(*mode);
  }
}

void parse_interface(Diag &d, const YAML::Node &i, std::set<std::string> &seen, Config &c) {
  Section s(d, i, "an interface", {"name", "mode", "attach", "priority", "max_sources", "bypass"});
  if (!s)
    return;
  InterfaceConfig ic;
  ic.line = s.line();
  if (!s.has("name")) {
    d.at(i, "an interface needs a name");
    return;
  }
  s.text("name", ic.name);
  if (auto why = interface_name_problem(ic.name))
    d.at(s["name"], *why);
  if (!seen.insert(ic.name).second)
    d.at(s["name"], fmt::format("interface {} is listed twice", ic.name));
  if (s.has("mode"))
    parse_mode(s, ic);
  if (s.has("attach")) {
    s.choice("attach", ic.attach, {"direct", "dispatcher"});
    if (ic.attach == "dispatcher" && ic.mode == "offload")
      d.at(s["attach"], "libxdp's dispatcher cannot be offloaded: use another mode");
  }
  if (s.has("priority") && ic.attach != "dispatcher")
    d.at(s["priority"], "priority orders libxdp's dispatcher: it needs attach: dispatcher");
  else
    s.number("priority", ic.priority, 0, 1000000);
  s.number("max_sources", ic.max_sources, 16, BG_SOURCES_MAX);
  if (bool on = false; s.on_off("bypass", on, "bypass"))
    ic.bypass = on;
  c.interfaces.push_back(ic);
}

void parse_interfaces(Diag &d, const YAML::Node &n, Config &c) {
  if (!n.IsSequence()) {
    d.at(n, "interfaces must be a list, e.g. `- name: eth0`");
    return;
  }
  if (n.size() == 0)
    d.at(n, "interfaces is empty: name at least one (interfaces: [- name: eth0])");
  std::set<std::string> seen;
  for (const auto &i : n)
    parse_interface(d, i, seen, c);
}

// limits.new_sources and limits.unproven: `off`, or {rate, burst} for the whole filter.
void parse_filter_limit(const Section &limits, const char *key, Limits &out) {
  Diag &d = limits.diag();
  const auto &n = limits[key];
  const std::string what = fmt::format("limits.{}", key);
  if (n.IsScalar()) {
    if (n.Scalar() == "off")
      out = Limits{};
    else
      d.at(n, fmt::format("{} is off or {{rate: N, burst: N}}, not '{}'", what, n.Scalar()));
  } else if (Section s(d, n, what, {"rate", "burst"}); s) {
    if (auto l = limits_in(s, what))
      out = *l;
  }
}

void parse_prefix_limit(Diag &d, const YAML::Node &n, Config &c) {
  Section s(d, n, "limits.prefix", {"ipv4", "ipv6", "rate", "burst"});
  if (!s)
    return;
  PrefixLimitConfig pl;
  s.number("ipv4", pl.v4_len, 1, 32, "ipv4 prefix length");
  s.number("ipv6", pl.v6_len, 1, 128, "ipv6 prefix length");
  if (auto l = limits_in(s, "limits.prefix")) {
    pl.limits = *l;
    c.prefix_limit = pl;
  }
}

void parse_limits(Diag &d, const YAML::Node &n, Config &c) {
  Section s(d, n, "limits",
            {"rate", "burst", "prefix", "new_sources", "unproven", "prove", "syn_proxy"});
  if (!s)
    return;
  if (s.has("syn_proxy")) {
    // `syn_proxy: on` or `off` (default): held SYNs answered by the datapath.
    const auto &sp = s["syn_proxy"];
    auto on = sp.IsScalar() ? parse_switch(sp.Scalar()) : std::nullopt;
    if (on)
      c.syn_proxy = *on;
    else
      not_one_of(d, sp, "limits.syn_proxy", "on or off");
  }
  if (s.has("prove")) {
    // `prove: syncookies` (default) or `off`: TCP sources prove themselves with SYN cookies.
    const auto &pv = s["prove"];
    if (pv.IsScalar() && (pv.Scalar() == "syncookies" || pv.Scalar() == "off"))
      c.prove = pv.Scalar() == "syncookies";
    else
      not_one_of(d, pv, "limits.prove", "syncookies or off");
  }
  if (s.has("new_sources"))
    parse_filter_limit(s, "new_sources", c.new_sources);
  if (s.has("unproven"))
    parse_filter_limit(s, "unproven", c.unproven);
  if (auto l = limits_in(s, "limits"))
    c.limits = *l;
  if (s.has("prefix"))
    parse_prefix_limit(d, s["prefix"], c);
}

// Prefixes from a YAML list.
void parse_prefix_list(Diag &d, const YAML::Node &n, std::vector<Prefix> &out, const char *what) {
  if (!n.IsSequence()) {
    d.at(n, fmt::format("{} must be a list of prefixes", what));
    return;
  }
  for (const auto &e : n)
    if (auto p = read_prefix(d, e, what))
      out.push_back(*p);
}

// Prefixes from a file of one prefix a line ('#' comments), beside the config
// when relative.
void parse_prefix_file(Diag &d, const YAML::Node &n, std::vector<Prefix> &out, const char *what,
                       uint64_t max_bytes) {
  auto name = read_scalar(d, n, what);
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

uint64_t parse_prefix_file_max(Diag &d, const YAML::Node &n) {
  if (auto s = read_scalar(d, n, "prefix_file_max")) {
    auto v = parse_size_bytes(*s);
    if (v && *v > 0)
      return *v;
    d.at(n, fmt::format("prefix_file_max '{}' is not a size in bytes (e.g. 64mb)", excerpt(*s)));
  }
  return kPrefixFileMaxBytes;
}

void parse_unparsed(Diag &d, const YAML::Node &n, Config &c) {
  auto s = read_scalar(d, n, "unparsed");
  if (s && *s != "pass" && *s != "drop")
    d.at(n, fmt::format("unparsed must be pass or drop, not '{}'", *s));
  else if (s)
    c.unparsed = *s == "drop" ? BG_VERDICT_DROP : BG_VERDICT_PASS;
}

void parse_rule(Diag &d, const YAML::Node &r, Config &c) {
  Section s(d, r, "a rule", {"match", "action", "rate", "burst", "dry_run"});
  if (!s)
    return;
  RuleConfig rc;
  rc.line = s.line();
  if (!s.has("match")) {
    d.at(r, "a rule needs a match, e.g. tcp/443, udp/53, tcp/8000-8099 or icmp");
    return;
  }
  auto m = read_scalar(d, s["match"], "match");
  if (!m)
    return;
  if (auto st = parse_match(*m, rc); !st) {
    d.at(s["match"], st.error().message());
    return;
  }
  std::string action = "limit";
  s.text("action", action);
  if (action == "pass") {
    rc.action = BG_ACTION_PASS;
  } else if (action == "drop") {
    rc.action = BG_ACTION_DROP;
  } else if (action == "limit") {
    rc.action = BG_ACTION_LIMIT;
    if (auto l = limits_in(s, "a rule with action limit"))
      rc.limits = *l;
  } else {
    d.at(s["action"], fmt::format("action '{}' is unknown: use pass, drop or limit", action));
    return;
  }
  if (rc.action != BG_ACTION_LIMIT && (s.has("rate") || s.has("burst")))
    d.at(r, fmt::format("rate and burst apply to action limit, not {}", action));
  s.on_off("dry_run", rc.dry_run, "a rule's dry_run");
  if (rc.dry_run && rc.action == BG_ACTION_PASS)
    d.at(s["dry_run"], "dry_run on a rule with action pass: it drops nothing to try");
  c.rules.push_back(rc);
}

// Port ranges of one protocol must not overlap; protocol-only rules are unique.
void check_rule_overlaps(Diag &d, const std::vector<RuleConfig> &rules) {
  std::map<uint8_t, std::vector<const RuleConfig *>> by_proto;
  for (const auto &r : rules)
    by_proto[r.proto].push_back(&r);
  for (auto &[proto, list] : by_proto) {
    std::sort(list.begin(), list.end(), [](auto *a, auto *b) {
      return a->has_ports != b->has_ports ? !a->has_ports : a->port_lo < b->port_lo;
    });
    for (size_t i = 1; i < list.size(); i++) {
      const RuleConfig *a = list[i - 1], *b = list[i];
      if (!a->has_ports && !b->has_ports)
        d.at(b->line, fmt::format("rule {} repeats the rule on line {}", b->match, a->line));
      else if (a->has_ports && b->port_lo <= a->port_hi)
        d.at(b->line,
             fmt::format("rule {} overlaps rule {} on line {}", b->match, a->match, a->line));
    }
  }
}

void parse_rules(Diag &d, const YAML::Node &n, Config &c) {
  if (!n.IsSequence()) {
    d.at(n, "rules must be a list, e.g. `- match: tcp/443`");
    return;
  }
  for (const auto &r : n)
    parse_rule(d, r, c);
  check_rule_overlaps(d, c.rules);
  if (c.rules.size() >= BG_RULES_MAX)
    d.at(n, fmt::format("{} rules: at most {}", c.rules.size(), BG_RULES_MAX - 1));
}

// max_rate: N (auto-blocks a second, burst N) or {rate: N, burst: N}.
void parse_auto_block_rate(Diag &d, const YAML::Node &m, AutoBlockConfig &ab) {
  if (m.IsScalar()) {
    if (auto v = read_number(d, m, "auto_block.max_rate", 1, BG_RATE_MAX_PPS))
      ab.max_rate = Limits{*v, *v};
  } else if (Section s(d, m, "auto_block.max_rate", {"rate", "burst"}); s) {
    if (auto l = limits_in(s, "auto_block.max_rate"))
      ab.max_rate = *l;
  }
}

void parse_auto_block(Diag &d, const YAML::Node &n, Config &c) {
  Section s(d, n, "auto_block", {"after", "ttl", "max_rate", "never"});
  if (!s)
    return;
  if (!s.has("after") || !s.has("ttl")) {
    d.at(n, "auto_block needs both after (how long over the limit) and ttl (how long blocked)");
    return;
  }
  auto after = read_duration_ns(d, s["after"], "auto_block.after");
  auto ttl = read_duration_ns(d, s["ttl"], "auto_block.ttl");
  if (after && *after < 100'000'000ULL)
    d.at(s["after"], "auto_block.after must be at least 100ms");
  if (ttl && *ttl < 1'000'000'000ULL)
    d.at(s["ttl"], "auto_block.ttl must be at least 1s");
  if (!after || !ttl)
    return;
  AutoBlockConfig ab;
  ab.after_ns = *after;
  ab.ttl_ns = *ttl;
  if (s.has("max_rate"))
    parse_auto_block_rate(d, s["max_rate"], ab);
  if (s.has("never"))
    parse_prefix_list(d, s["never"], ab.never, "auto_block.never");
  if (ab.never.size() > BG_NOBLOCK_MAX)
    d.at(s["never"], fmt::format("auto_block.never has {} prefixes: at most {}", ab.never.size(),
                                 BG_NOBLOCK_MAX));
  c.auto_block = std::move(ab);
}

}  // namespace

void parse_xdp_sections(Diag &d, const YAML::Node &root, Config &c, bool need_interfaces) {
  if (root["interfaces"])
    parse_interfaces(d, root["interfaces"], c);
  else if (need_interfaces)
    d.at(1, "the config names no interfaces (interfaces: [- name: eth0])");
  if (root["limits"])
    parse_limits(d, root["limits"], c);
  if (root["unparsed"])
    parse_unparsed(d, root["unparsed"], c);
  if (root["allow"])
    parse_prefix_list(d, root["allow"], c.allow, "allow");
  uint64_t file_max = root["prefix_file_max"] ? parse_prefix_file_max(d, root["prefix_file_max"])
                                              : kPrefixFileMaxBytes;
  if (root["allow_file"])
    parse_prefix_file(d, root["allow_file"], c.allow, "allow_file", file_max);
  if (root["deny"])
    parse_prefix_list(d, root["deny"], c.deny, "deny");
  if (root["deny_file"])
    parse_prefix_file(d, root["deny_file"], c.deny, "deny_file", file_max);
  if (root["rules"])
    parse_rules(d, root["rules"], c);
  if (root["auto_block"])
    parse_auto_block(d, root["auto_block"], c);
  if (root["dry_run"])
    if (auto on = read_on_off(d, root["dry_run"], "dry_run"))
      c.dry_run = *on;
}

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

Status parse_match(const std::string &text, RuleConfig &rule) {
  rule.match = text;
  auto slash = text.find('/');
  std::string proto = text.substr(0, slash);
  auto p = parse_protocol(proto);
  if (!p)
    return make_error(EINVAL, "match '{}': unknown protocol '{}' ({} or a number 0-255)", text,
                      proto, kProtocolNames);
  rule.proto = *p;
  rule.has_ports = false;
  if (slash == std::string::npos || text.substr(slash + 1) == "*")
    return {};
  if (rule.proto != IPPROTO_TCP && rule.proto != IPPROTO_UDP)
    return make_error(EINVAL, "match '{}': ports apply to tcp and udp only", text);
  auto ports = parse_port_range(text.substr(slash + 1));
  if (!ports)
    return make_error(EINVAL, "match '{}': ports must be N or N-M with 0 <= N <= M <= 65535", text);
  if (ports->lo > ports->hi)
    return make_error(EINVAL, "match '{}': range is backwards ({} > {})", text, ports->lo,
                      ports->hi);
  rule.port_lo = ports->lo;
  rule.port_hi = ports->hi;
  rule.has_ports = true;
  return {};
}

}  // namespace bpfgate::core
