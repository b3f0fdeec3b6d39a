#include "features/tc/tc_config.hpp"

#include <netinet/in.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <cstring>
#include <map>
#include <set>

#include <fmt/format.h>

#include "core/duration.hpp"
#include "util/netif.hpp"

namespace bpfgate::core {

namespace {

// Collects issues with their lines (config.cpp turns them into FILE:LINE).
class Issues {
 public:
  void at(const YAML::Node &n, const std::string &msg) { list_.push_back({line(n), msg}); }
  void at(int line, const std::string &msg) { list_.push_back({line, msg}); }
  static int line(const YAML::Node &n) { return n.Mark().line + 1; }
  bool ok() const { return list_.empty(); }
  std::vector<ConfigIssue> take() { return std::move(list_); }

 private:
  std::vector<ConfigIssue> list_;
};

bool keys_ok(Issues &d, const YAML::Node &map, std::initializer_list<const char *> known,
             const char *what) {
  if (!map.IsMap()) {
    d.at(map, fmt::format("{} must be a mapping of keys to values", what));
    return false;
  }
  bool ok = true;
  for (const auto &kv : map) {
    std::string k = kv.first.as<std::string>();
    if (std::none_of(known.begin(), known.end(), [&](const char *x) { return k == x; })) {
      std::string list;
      for (const char *x : known)
        list += (list.empty() ? "" : ", ") + std::string(x);
      d.at(kv.first, fmt::format("unknown key '{}' in {} (known: {})", k, what, list));
      ok = false;
    }
  }
  return ok;
}

std::optional<std::string> scalar(Issues &d, const YAML::Node &n, const char *what) {
  if (!n.IsScalar()) {
    d.at(n, fmt::format("{} must be a single value", what));
    return std::nullopt;
  }
  return n.Scalar();
}

std::optional<uint64_t> whole(const std::string &s) {
  uint64_t v = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || end != s.data() + s.size() || s.empty())
    return std::nullopt;
  return v;
}

std::optional<uint64_t> number(Issues &d, const YAML::Node &n, const char *what, uint64_t lo,
                               uint64_t hi) {
  auto s = scalar(d, n, what);
  if (!s)
    return std::nullopt;
  auto v = whole(*s);
  if (!v) {
    d.at(n, fmt::format("{} '{}' is not a whole number", what, *s));
    return std::nullopt;
  }
  if (*v < lo || *v > hi) {
    d.at(n, fmt::format("{} {} is out of range: give {} to {}", what, *v, lo, hi));
    return std::nullopt;
  }
  return v;
}

std::optional<bool> on_off(Issues &d, const YAML::Node &n, const char *what) {
  auto s = scalar(d, n, what);
  if (!s)
    return std::nullopt;
  if (auto v = parse_switch(*s))
    return v;
  d.at(n, fmt::format("{} must be on or off, not '{}'", what, *s));
  return std::nullopt;
}

// "80" or "8000-8099".
std::optional<PortRange> port_range(Issues &d, const YAML::Node &n, const char *what) {
  auto s = scalar(d, n, what);
  if (!s)
    return std::nullopt;
  auto dash = s->find('-');
  auto lo = whole(s->substr(0, dash));
  auto hi = dash == std::string::npos ? lo : whole(s->substr(dash + 1));
  if (!lo || !hi || *lo > 65535 || *hi > 65535 || *lo > *hi) {
    d.at(n, fmt::format("{} '{}' must be a port N or a range N-M with 0 <= N <= M <= 65535", what,
                        *s));
    return std::nullopt;
  }
  return PortRange{static_cast<uint16_t>(*lo), static_cast<uint16_t>(*hi)};
}

std::optional<uint8_t> protocol(Issues &d, const YAML::Node &n) {
  auto s = scalar(d, n, "protocol");
  if (!s)
    return std::nullopt;
  static const std::map<std::string, uint8_t> kProtos = {
      {"tcp", IPPROTO_TCP},       {"udp", IPPROTO_UDP}, {"icmp", IPPROTO_ICMP},
      {"icmpv6", IPPROTO_ICMPV6}, {"gre", IPPROTO_GRE}, {"esp", IPPROTO_ESP},
      {"sctp", IPPROTO_SCTP}};
  if (auto it = kProtos.find(*s); it != kProtos.end())
    return it->second;
  auto v = whole(*s);
  if (!v || *v > 255) {
    d.at(n, fmt::format("protocol '{}' is unknown: use tcp, udp, icmp, icmpv6, gre, esp, sctp or "
                        "a number 0-255",
                        *s));
    return std::nullopt;
  }
  return static_cast<uint8_t>(*v);
}

std::optional<uint8_t> dscp(Issues &d, const YAML::Node &n, const char *what) {
  auto s = scalar(d, n, what);
  if (!s)
    return std::nullopt;
  auto v = parse_dscp(*s);
  if (!v) {
    d.at(n, fmt::format("{}: {}", what, v.error().message()));
    return std::nullopt;
  }
  return *v;
}

void parse_match(Issues &d, const YAML::Node &n, TcMatchConfig &m) {
  if (!keys_ok(d, n, {"protocol", "port", "sport", "dport", "src", "dst", "dscp"},
               "a class's match"))
    return;
  if (n["protocol"])
    m.proto = protocol(d, n["protocol"]);
  if (n["port"])
    m.port = port_range(d, n["port"], "port");
  if (n["sport"])
    m.sport = port_range(d, n["sport"], "sport");
  if (n["dport"])
    m.dport = port_range(d, n["dport"], "dport");
  if (n["port"] && n["dport"])
    d.at(n, "give port (either side) or dport, not both");
  bool ports = n["port"] || n["sport"] || n["dport"];
  if (ports && (!m.proto || (*m.proto != IPPROTO_TCP && *m.proto != IPPROTO_UDP)))
    d.at(n, "ports match tcp or udp: add `protocol: tcp` or `protocol: udp`");
  for (const char *side : {"src", "dst"}) {
    if (!n[side])
      continue;
    auto s = scalar(d, n[side], side);
    if (!s)
      continue;
    auto p = parse_prefix(*s);
    if (!p) {
      d.at(n[side], fmt::format("bad CIDR in {}: {}", side, p.error().message()));
      continue;
    }
    (std::string(side) == "src" ? m.src : m.dst) = *p;
  }
  if (m.src && m.dst && m.src->v4 != m.dst->v4)
    d.at(n, "src and dst are of different address families: no packet could match");
  if (n["dscp"])
    m.dscp = dscp(d, n["dscp"], "match.dscp");
}

void parse_class(Issues &d, const YAML::Node &n, bool have_htb, TcClassConfig &c) {
  c.line = Issues::line(n);
  if (!keys_ok(d, n,
               {"name", "direction", "match", "rate", "burst", "exceed", "exceed_dscp", "priority",
                "dscp", "mirror"},
               "a class"))
    return;
  if (!n["name"]) {
    d.at(n, "a class needs a name, e.g. `name: api`");
  } else if (auto s = scalar(d, n["name"], "name")) {
    c.name = *s;
    bool ok = !c.name.empty() && c.name.size() < BG_TC_NAME_MAX &&
              std::all_of(c.name.begin(), c.name.end(), [](char ch) {
                return std::isalnum(static_cast<unsigned char>(ch)) || ch == '_' || ch == '-' ||
                       ch == '.';
              });
    if (!ok)
      d.at(n["name"], fmt::format("class name '{}' must be 1 to {} letters, digits, '_', '-' or "
                                  "'.'",
                                  c.name, BG_TC_NAME_MAX - 1));
  }
  std::string direction = "both";
  if (n["direction"]) {
    auto s = scalar(d, n["direction"], "direction");
    if (s && *s == "ingress")
      c.dirs = BG_TC_DIR_INGRESS;
    else if (s && *s == "egress")
      c.dirs = BG_TC_DIR_EGRESS;
    else if (s && *s == "both")
      c.dirs = BG_TC_DIR_INGRESS | BG_TC_DIR_EGRESS;
    else if (s)
      d.at(n["direction"],
           fmt::format("direction '{}' is unknown: use ingress, egress or both", *s));
    if (s)
      direction = *s;
  }
  bool egress_only = c.dirs == BG_TC_DIR_EGRESS;
  if (n["match"])
    parse_match(d, n["match"], c.match);
  if (n["rate"]) {
    if (auto s = scalar(d, n["rate"], "rate")) {
      auto r = parse_rate_bps(*s);
      if (!r)
        d.at(n["rate"], r.error().message());
      else
        c.rate_bps = *r;
    }
  }
  if (n["burst"]) {
    if (!n["rate"])
      d.at(n["burst"], "burst goes with a rate");
    if (auto s = scalar(d, n["burst"], "burst")) {
      auto b = parse_size_bytes(*s);
      if (!b)
        d.at(n["burst"], b.error().message());
      else if (*b < kTcBurstMinBytes || *b > kTcBurstMaxBytes)
        d.at(n["burst"], fmt::format("burst {} bytes is out of range: give {} to {} bytes", *b,
                                     kTcBurstMinBytes, kTcBurstMaxBytes));
      else
        c.burst_bytes = *b;
    }
  }
  if (c.rate_bps && !c.burst_bytes)
    c.burst_bytes = default_burst(c.rate_bps);
  if (n["exceed"]) {
    auto s = scalar(d, n["exceed"], "exceed");
    if (s && *s == "drop") {
      c.exceed = BG_TC_EXCEED_DROP;
    } else if (s && *s == "mark") {
      c.exceed = BG_TC_EXCEED_MARK;
      if (!egress_only)
        d.at(n["exceed"],
             fmt::format("exceed: mark applies on egress (a marked packet is sent on with a "
                         "lower DSCP), but this class's direction is {}: set direction: egress",
                         direction));
    } else if (s) {
      d.at(n["exceed"], fmt::format("exceed '{}' is unknown: use drop or mark", *s));
    }
    if (!n["rate"])
      d.at(n["exceed"], "exceed says what happens over the rate: give the class a rate");
  }
  if (n["exceed_dscp"]) {
    if (auto v = dscp(d, n["exceed_dscp"], "exceed_dscp"))
      c.exceed_dscp = *v;
    if (c.exceed != BG_TC_EXCEED_MARK)
      d.at(n["exceed_dscp"], "exceed_dscp goes with exceed: mark");
  }
  if (n["priority"]) {
    if (auto v = number(d, n["priority"], "priority", 0, BG_TC_PRIORITIES - 1))
      c.priority = static_cast<uint8_t>(*v);
    if (!have_htb)
      d.at(n["priority"],
           "priority picks a queue of the HTB hierarchy bpfgate sets up: add `tc.htb: {rate: "
           "...}` with what the link carries");
    if (!egress_only)
      d.at(n["priority"],
           fmt::format("priority applies on egress (the queues are on egress), but this "
                       "class's direction is {}: set direction: egress",
                       direction));
  }
  if (n["dscp"])
    c.set_dscp = dscp(d, n["dscp"], "dscp");
  if (const auto &m = n["mirror"]) {
    if (keys_ok(d, m, {"interface", "sample"}, "mirror")) {
      TcMirrorConfig mc;
      mc.line = Issues::line(m);
      if (!m["interface"])
        d.at(m, "mirror needs an interface to copy packets to");
      else if (auto s = scalar(d, m["interface"], "mirror.interface"))
        mc.iface = *s;
      if (auto why = util::interface_name_problem(mc.iface); why && !mc.iface.empty())
        d.at(m["interface"], *why);
      if (m["sample"])
        if (auto v = number(d, m["sample"], "mirror.sample (one packet in N)", 1, 1'000'000))
          mc.sample = static_cast<uint32_t>(*v);
      c.mirror = mc;
    }
  }
}

}  // namespace

std::vector<ConfigIssue> parse_tc(const YAML::Node &n, std::optional<TcConfig> &out) {
  Issues d;
  TcConfig c;
  c.line = Issues::line(n);
  if (!keys_ok(d, n, {"interfaces", "htb", "stages", "classes"}, "tc"))
    return d.take();
  if (!n["interfaces"] || !n["interfaces"].IsSequence() || n["interfaces"].size() == 0) {
    d.at(n,
         "tc needs interfaces: a list of the interfaces its programs attach to, e.g. "
         "`interfaces: [eth0]`");
  } else {
    std::set<std::string> seen;
    for (const auto &i : n["interfaces"]) {
      auto s = scalar(d, i, "an interface");
      if (!s)
        continue;
      if (auto why = util::interface_name_problem(*s))
        d.at(i, *why);
      else if (!seen.insert(*s).second)
        d.at(i, fmt::format("interface {} is listed twice", *s));
      else
        c.interfaces.push_back({*s, Issues::line(i)});
    }
  }
  if (const auto &h = n["htb"]) {
    if (keys_ok(d, h, {"rate", "default_priority"}, "tc.htb")) {
      TcHtbConfig hc;
      hc.line = Issues::line(h);
      if (!h["rate"]) {
        d.at(h, "tc.htb needs the rate the link carries, e.g. `rate: 1gbit`");
      } else if (auto s = scalar(d, h["rate"], "tc.htb.rate")) {
        auto r = parse_rate_bps(*s);
        if (!r)
          d.at(h["rate"], r.error().message());
        else
          hc.rate_bps = *r;
      }
      if (h["default_priority"])
        if (auto v = number(d, h["default_priority"], "default_priority", 0, BG_TC_PRIORITIES - 1))
          hc.default_priority = static_cast<uint8_t>(*v);
      c.htb = hc;
    }
  }
  if (const auto &s = n["stages"]) {
    if (keys_ok(d, s, {"parse", "classify", "police", "mirror", "count"}, "tc.stages"))
      for (uint32_t i = 0; i < BG_TC_STAGE_NR; i++)
        if (s[stage_name(i)])
          if (auto v = on_off(d, s[stage_name(i)], stage_name(i)))
            c.stages[i] = *v;
  }
  if (const auto &cl = n["classes"]) {
    if (!cl.IsSequence()) {
      d.at(cl,
           "tc.classes must be a list, e.g. `- {name: api, match: {protocol: tcp, port: "
           "443}, priority: 0}`");
    } else {
      std::map<std::string, int> names;
      for (const auto &e : cl) {
        TcClassConfig cc;
        parse_class(d, e, c.htb.has_value(), cc);
        if (!cc.name.empty() && !names.emplace(cc.name, cc.line).second)
          d.at(cc.line,
               fmt::format("class {} is already defined on line {}", cc.name, names[cc.name]));
        if (cc.mirror)
          for (const auto &i : c.interfaces)
            if (i.name == cc.mirror->iface)
              d.at(cc.mirror->line,
                   fmt::format("class {} mirrors to {}, which bpfgate's tc programs are on: "
                               "its copies would be classified and mirrored again; mirror to "
                               "an interface not in tc.interfaces",
                               cc.name, cc.mirror->iface));
        c.classes.push_back(cc);
      }
      if (c.classes.size() > BG_TC_CLASSES_MAX)
        d.at(cl, fmt::format("{} classes: at most {}", c.classes.size(), BG_TC_CLASSES_MAX));
    }
  }
  if (d.ok())
    out = std::move(c);
  return d.take();
}

Result<uint64_t> parse_rate_bps(const std::string &text) {
  std::string s = text;
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  size_t i = 0;
  while (i < s.size() && (std::isdigit(static_cast<unsigned char>(s[i])) || s[i] == '.'))
    i++;
  std::string num = s.substr(0, i), unit = s.substr(i);
  double v = 0;
  auto [end, ec] = std::from_chars(num.data(), num.data() + num.size(), v);
  static const std::map<std::string, double> kUnits = {
      {"", 1}, {"bit", 1}, {"kbit", 1e3}, {"mbit", 1e6}, {"gbit", 1e9}, {"tbit", 1e12}};
  auto u = kUnits.find(unit);
  if (num.empty() || ec != std::errc() || end != num.data() + num.size() || u == kUnits.end())
    return make_error(EINVAL,
                      "rate '{}' is not a rate in bits per second: give e.g. 800kbit, 10mbit, "
                      "1.5gbit or a number of bits per second",
                      text);
  double bps = std::round(v * u->second);
  if (bps < static_cast<double>(kTcRateMinBps) || bps > static_cast<double>(kTcRateMaxBps))
    return make_error(ERANGE, "rate '{}' is out of range: give 8kbit to 400gbit", text);
  return static_cast<uint64_t>(bps);
}

Result<uint64_t> parse_size_bytes(const std::string &text) {
  std::string s = text;
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  size_t i = 0;
  while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i])))
    i++;
  auto v = whole(s.substr(0, i));
  std::string unit = s.substr(i);
  static const std::map<std::string, uint64_t> kUnits = {{"", 1},
                                                         {"b", 1},
                                                         {"k", 1ULL << 10},
                                                         {"kb", 1ULL << 10},
                                                         {"kib", 1ULL << 10},
                                                         {"m", 1ULL << 20},
                                                         {"mb", 1ULL << 20},
                                                         {"mib", 1ULL << 20}};
  auto u = kUnits.find(unit);
  if (!v || u == kUnits.end() || *v > (1ULL << 40))
    return make_error(EINVAL, "size '{}' is not a number of bytes: give e.g. 1500, 64kb or 1mb",
                      text);
  return *v * u->second;
}

Result<uint8_t> parse_dscp(const std::string &text) {
  std::string s = text;
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  if (auto v = whole(s)) {
    if (*v > 63)
      return make_error(ERANGE, "DSCP {} is out of range: give 0 to 63 or a name", *v);
    return static_cast<uint8_t>(*v);
  }
  if (s == "ef")
    return static_cast<uint8_t>(46);
  if (s == "le")
    return static_cast<uint8_t>(1);
  if (s == "va")
    return static_cast<uint8_t>(44);
  if (s.size() == 3 && s.rfind("cs", 0) == 0 && s[2] >= '0' && s[2] <= '7')
    return static_cast<uint8_t>((s[2] - '0') * 8);
  if (s.size() == 4 && s.rfind("af", 0) == 0 && s[2] >= '1' && s[2] <= '4' && s[3] >= '1' &&
      s[3] <= '3')
    return static_cast<uint8_t>((s[2] - '0') * 8 + (s[3] - '0') * 2);
  return make_error(EINVAL,
                    "DSCP '{}' is unknown: give 0 to 63 or a name (ef, le, va, cs0-cs7, "
                    "af11-af43)",
                    text);
}

std::string format_rate_bps(double bps) {
  if (bps >= 1e9)
    return fmt::format("{:.2f}gbit", bps / 1e9);
  if (bps >= 1e6)
    return fmt::format("{:.2f}mbit", bps / 1e6);
  if (bps >= 1e3)
    return fmt::format("{:.1f}kbit", bps / 1e3);
  return fmt::format("{:.0f}bit", bps);
}

const char *stage_name(uint32_t stage) {
  static const char *kNames[BG_TC_STAGE_NR] = {"parse", "classify", "police", "mirror", "count"};
  return stage < BG_TC_STAGE_NR ? kNames[stage] : "unknown";
}

const char *direction_name(uint8_t dirs) {
  if (dirs == BG_TC_DIR_INGRESS)
    return "ingress";
  if (dirs == BG_TC_DIR_EGRESS)
    return "egress";
  return "both";
}

std::optional<bg_tc_stage> parse_stage(const std::string &name) {
  for (uint32_t i = 0; i < BG_TC_STAGE_NR; i++)
    if (name == stage_name(i))
      return static_cast<bg_tc_stage>(i);
  return std::nullopt;
}

uint64_t default_burst(uint64_t rate_bps) {
  return std::min<uint64_t>(std::max<uint64_t>(512 * 1024, rate_bps / 8 / 20), kTcBurstMaxBytes);
}

namespace {
void set_prefix(const Prefix &p, __u64 value[2], __u64 mask[2]) {
  uint8_t m[16] = {};
  for (uint32_t i = 0; i < 16; i++) {
    uint32_t bits = p.key.prefixlen > i * 8 ? p.key.prefixlen - i * 8 : 0;
    m[i] = bits >= 8 ? 0xff : static_cast<uint8_t>(0xff << (8 - bits));
  }
  uint8_t v[16];
  for (int i = 0; i < 16; i++)
    v[i] = p.key.addr[i] & m[i];
  std::memcpy(value, v, 16);
  std::memcpy(mask, m, 16);
}
}  // namespace

Result<TcImage> compile_tc(const TcConfig &c, const IfindexOf &ifindex_of) {
  TcImage img;
  img.stages = c.stages;
  for (const auto &cc : c.classes) {
    bg_tc_class k{};
    std::strncpy(k.name, cc.name.c_str(), sizeof(k.name) - 1);
    bg_tc_match &m = k.match;
    const TcMatchConfig &mc = cc.match;
    if (mc.proto) {
      m.flags |= BG_TC_M_PROTO;
      m.l4_proto = *mc.proto;
    }
    if (mc.sport) {
      m.flags |= BG_TC_M_SPORT;
      m.sport_lo = mc.sport->lo;
      m.sport_hi = mc.sport->hi;
    }
    if (mc.dport && mc.port)
      return make_error(EINVAL, "class {}: give port (either side) or dport, not both", cc.name);
    if (mc.dport || mc.port) {
      const PortRange &r = mc.dport ? *mc.dport : *mc.port;
      m.flags |= mc.dport ? BG_TC_M_DPORT : BG_TC_M_PORT;
      m.dport_lo = r.lo;
      m.dport_hi = r.hi;
    }
    if (mc.src) {
      m.flags |= BG_TC_M_SRC;
      set_prefix(*mc.src, m.src, m.src_mask);
    }
    if (mc.dst) {
      m.flags |= BG_TC_M_DST;
      set_prefix(*mc.dst, m.dst, m.dst_mask);
    }
    if (mc.dscp) {
      m.flags |= BG_TC_M_DSCP;
      m.dscp = *mc.dscp;
    }
    k.dirs = cc.dirs;
    k.flags = BG_TC_CLASS_VALID;
    if (cc.rate_bps) {
      k.rate_bps = cc.rate_bps;
      k.burst_bytes = cc.burst_bytes ? cc.burst_bytes : default_burst(cc.rate_bps);
      // burst <= 256 MiB, so burst * 8e9 stays below 2^64.
      k.burst_ns = k.burst_bytes * 8'000'000'000ULL / cc.rate_bps;
      k.exceed = static_cast<__u8>(cc.exceed);
      k.exceed_dscp = cc.exceed_dscp;
    }
    if (cc.priority)
      k.skb_priority = htb_classid(*cc.priority);
    if (cc.set_dscp) {
      k.flags |= BG_TC_CLASS_SET_DSCP;
      k.set_dscp = *cc.set_dscp;
    }
    if (cc.mirror) {
      auto idx = ifindex_of(cc.mirror->iface);
      if (!idx)
        return idx.error().context(fmt::format("class {}: mirror", cc.name));
      k.mirror_ifindex = *idx;
      k.mirror_sample = cc.mirror->sample;
    }
    img.classes.push_back(k);
  }
  return img;
}

}  // namespace bpfgate::core
