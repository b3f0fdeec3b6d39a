#include "features/tc/tc_config.hpp"

#include <netinet/in.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cctype>
#include <cstring>
#include <map>
#include <set>

#include <fmt/format.h>

#include "core/schema.hpp"
#include "util/netif.hpp"

namespace bpfgate::core {

namespace {

std::optional<uint8_t> read_dscp(Diag &d, const YAML::Node &n, const char *what) {
  auto s = read_scalar(d, n, what);
  if (!s)
    return std::nullopt;
  auto v = parse_dscp(*s);
  if (!v) {
    d.at(n, fmt::format("{}: {}", what, v.error().message()));
    return std::nullopt;
  }
  return *v;
}

void parse_match(Diag &d, const YAML::Node &n, TcMatchConfig &m) {
  Section s(d, n, "a class's match", {"protocol", "port", "sport", "dport", "src", "dst", "dscp"});
  if (!s.all_known())
    return;
  if (s.has("protocol"))
    m.proto = read_protocol(d, s["protocol"]);
  for (auto [key, out] : {std::pair{"port", &m.port}, {"sport", &m.sport}, {"dport", &m.dport}})
    if (s.has(key))
      *out = read_port_range(d, s[key], key);
  if (s.has("port") && s.has("dport"))
    d.at(n, "give port (either side) or dport, not both");
  bool ports = s.has("port") || s.has("sport") || s.has("dport");
  if (ports && (!m.proto || (*m.proto != IPPROTO_TCP && *m.proto != IPPROTO_UDP)))
    d.at(n, "ports match tcp or udp: add `protocol: tcp` or `protocol: udp`");
  for (auto [side, out] : {std::pair{"src", &m.src}, {"dst", &m.dst}})
    if (s.has(side))
      if (auto p = read_prefix(d, s[side], side))
        *out = *p;
  if (m.src && m.dst && m.src->v4 != m.dst->v4)
    d.at(n, "src and dst are of different address families: no packet could match");
  if (s.has("dscp"))
    m.dscp = read_dscp(d, s["dscp"], "match.dscp");
}

void parse_class_name(const Section &s, TcClassConfig &c) {
  Diag &d = s.diag();
  if (!s.has("name")) {
    d.at(s.node(), "a class needs a name, e.g. `name: api`");
    return;
  }
  if (!s.text("name", c.name))
    return;
  bool ok =
      !c.name.empty() && c.name.size() < BG_TC_NAME_MAX &&
      std::all_of(c.name.begin(), c.name.end(), [](char ch) {
        return std::isalnum(static_cast<unsigned char>(ch)) || ch == '_' || ch == '-' || ch == '.';
      });
  if (!ok)
    d.at(s["name"], fmt::format("class name '{}' must be 1 to {} letters, digits, '_', '-' or '.'",
                                c.name, BG_TC_NAME_MAX - 1));
}

// The direction as written (messages quote it), into c.dirs when known.
std::string parse_direction(const Section &s, TcClassConfig &c) {
  std::string direction = "both";
  if (!s.text("direction", direction))
    return direction;
  if (direction == "ingress")
    c.dirs = BG_TC_DIR_INGRESS;
  else if (direction == "egress")
    c.dirs = BG_TC_DIR_EGRESS;
  else if (direction == "both")
    c.dirs = BG_TC_DIR_INGRESS | BG_TC_DIR_EGRESS;
  else
    s.diag().at(s["direction"],
                fmt::format("direction '{}' is unknown: use ingress, egress or both", direction));
  return direction;
}

// rate, burst, exceed and exceed_dscp: the class's policer.
void parse_policer(const Section &s, const std::string &direction, TcClassConfig &c) {
  Diag &d = s.diag();
  s.rate_bps("rate", c.rate_bps);
  if (s.has("burst")) {
    if (!s.has("rate"))
      d.at(s["burst"], "burst goes with a rate");
    if (auto b = read_size_bytes(d, s["burst"], "burst", kTcBurstMinBytes, kTcBurstMaxBytes))
      c.burst_bytes = *b;
  }
  if (c.rate_bps && !c.burst_bytes)
    c.burst_bytes = default_burst(c.rate_bps);
  if (s.has("exceed")) {
    auto e = read_choice(d, s["exceed"], "exceed", {"drop", "mark"});
    if (e)
      c.exceed = *e == "mark" ? BG_TC_EXCEED_MARK : BG_TC_EXCEED_DROP;
    if (e == "mark" && c.dirs != BG_TC_DIR_EGRESS)
      d.at(s["exceed"],
           fmt::format("exceed: mark applies on egress (a marked packet is sent on with a lower "
                       "DSCP), but this class's direction is {}: set direction: egress",
                       direction));
    if (!s.has("rate"))
      d.at(s["exceed"], "exceed says what happens over the rate: give the class a rate");
  }
  if (s.has("exceed_dscp")) {
    if (auto v = read_dscp(d, s["exceed_dscp"], "exceed_dscp"))
      c.exceed_dscp = *v;
    if (c.exceed != BG_TC_EXCEED_MARK)
      d.at(s["exceed_dscp"], "exceed_dscp goes with exceed: mark");
  }
}

void parse_priority(const Section &s, bool have_htb, const std::string &direction,
                    TcClassConfig &c) {
  Diag &d = s.diag();
  uint8_t p = 0;
  if (s.number("priority", p, 0, BG_TC_PRIORITIES - 1))
    c.priority = p;
  if (!have_htb)
    d.at(s["priority"],
         "priority picks a queue of the HTB hierarchy bpfgate sets up: add `tc.htb: {rate: "
         "...}` with what the link carries");
  if (c.dirs != BG_TC_DIR_EGRESS)
    d.at(s["priority"],
         fmt::format("priority applies on egress (the queues are on egress), but this class's "
                     "direction is {}: set direction: egress",
                     direction));
}

void parse_mirror(Diag &d, const YAML::Node &n, TcClassConfig &c) {
  Section s(d, n, "mirror", {"interface", "sample"});
  if (!s.all_known())
    return;
  TcMirrorConfig mc;
  mc.line = s.line();
  if (!s.has("interface"))
    d.at(n, "mirror needs an interface to copy packets to");
  else
    s.text("interface", mc.iface, "mirror.interface");
  if (auto why = util::interface_name_problem(mc.iface); why && !mc.iface.empty())
    d.at(s["interface"], *why);
  s.number("sample", mc.sample, 1, 1'000'000, "mirror.sample (one packet in N)");
  c.mirror = mc;
}

void parse_class(Diag &d, const YAML::Node &n, bool have_htb, TcClassConfig &c) {
  c.line = line_of(n);
  Section s(d, n, "a class",
            {"name", "direction", "match", "rate", "burst", "exceed", "exceed_dscp", "priority",
             "dscp", "mirror"});
  if (!s.all_known())
    return;
  parse_class_name(s, c);
  std::string direction = parse_direction(s, c);
  if (s.has("match"))
    parse_match(d, s["match"], c.match);
  parse_policer(s, direction, c);
  if (s.has("priority"))
    parse_priority(s, have_htb, direction, c);
  if (s.has("dscp"))
    c.set_dscp = read_dscp(d, s["dscp"], "dscp");
  if (s.has("mirror"))
    parse_mirror(d, s["mirror"], c);
}

void parse_tc_interfaces(Diag &d, const YAML::Node &n, TcConfig &c) {
  const auto &list = n["interfaces"];
  if (!list || !list.IsSequence() || list.size() == 0) {
    d.at(n,
         "tc needs interfaces: a list of the interfaces its programs attach to, e.g. "
         "`interfaces: [eth0]`");
    return;
  }
  std::set<std::string> seen;
  for (const auto &i : list) {
    auto s = read_scalar(d, i, "an interface");
    if (!s)
      continue;
    if (auto why = util::interface_name_problem(*s))
      d.at(i, *why);
    else if (!seen.insert(*s).second)
      d.at(i, fmt::format("interface {} is listed twice", *s));
    else
      c.interfaces.push_back({*s, line_of(i)});
  }
}

void parse_htb(Diag &d, const YAML::Node &n, TcConfig &c) {
  Section s(d, n, "tc.htb", {"rate", "default_priority"});
  if (!s.all_known())
    return;
  TcHtbConfig hc;
  hc.line = s.line();
  if (!s.has("rate"))
    d.at(n, "tc.htb needs the rate the link carries, e.g. `rate: 1gbit`");
  else
    s.rate_bps("rate", hc.rate_bps, "tc.htb.rate");
  s.number("default_priority", hc.default_priority, 0, BG_TC_PRIORITIES - 1);
  c.htb = hc;
}

void parse_stages(Diag &d, const YAML::Node &n, TcConfig &c) {
  Section s(d, n, "tc.stages", {"parse", "classify", "police", "mirror", "count"});
  if (!s.all_known())
    return;
  for (uint32_t i = 0; i < BG_TC_STAGE_NR; i++) {
    bool on = true;
    if (s.on_off(stage_name(i), on))
      c.stages[i] = on;
  }
}

// A class mirroring to an interface tc's programs are on would see its copies again.
void check_mirror_loop(Diag &d, const TcConfig &c, const TcClassConfig &cc) {
  for (const auto &i : c.interfaces)
    if (cc.mirror && i.name == cc.mirror->iface)
      d.at(cc.mirror->line,
           fmt::format("class {} mirrors to {}, which bpfgate's tc programs are on: its copies "
                       "would be classified and mirrored again; mirror to an interface not in "
                       "tc.interfaces",
                       cc.name, cc.mirror->iface));
}

void parse_classes(Diag &d, const YAML::Node &n, TcConfig &c) {
  if (!n.IsSequence()) {
    d.at(n,
         "tc.classes must be a list, e.g. `- {name: api, match: {protocol: tcp, port: 443}, "
         "priority: 0}`");
    return;
  }
  std::map<std::string, int> names;
  for (const auto &e : n) {
    TcClassConfig cc;
    parse_class(d, e, c.htb.has_value(), cc);
    if (!cc.name.empty() && !names.emplace(cc.name, cc.line).second)
      d.at(cc.line, fmt::format("class {} is already defined on line {}", cc.name, names[cc.name]));
    check_mirror_loop(d, c, cc);
    c.classes.push_back(cc);
  }
  if (c.classes.size() > BG_TC_CLASSES_MAX)
    d.at(n, fmt::format("{} classes: at most {}", c.classes.size(), BG_TC_CLASSES_MAX));
}

}  // namespace

void parse_tc(Diag &d, const YAML::Node &n, std::optional<TcConfig> &out) {
  size_t before = d.count();
  TcConfig c;
  c.line = line_of(n);
  Section s(d, n, "tc", {"interfaces", "htb", "stages", "classes"});
  if (!s.all_known())
    return;
  parse_tc_interfaces(d, n, c);
  if (s.has("htb"))
    parse_htb(d, s["htb"], c);
  if (s.has("stages"))
    parse_stages(d, s["stages"], c);
  if (s.has("classes"))
    parse_classes(d, s["classes"], c);
  if (d.count() == before)
    out = std::move(c);
}

Result<uint8_t> parse_dscp(const std::string &text) {
  std::string s = text;
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  if (auto v = parse_whole(s)) {
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

bg_tc_match compile_match(const TcMatchConfig &mc) {
  bg_tc_match m{};
  if (mc.proto) {
    m.flags |= BG_TC_M_PROTO;
    m.l4_proto = *mc.proto;
  }
  if (mc.sport) {
    m.flags |= BG_TC_M_SPORT;
    m.sport_lo = mc.sport->lo;
    m.sport_hi = mc.sport->hi;
  }
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
  return m;
}

Result<bg_tc_class> compile_class(const TcClassConfig &cc, const IfindexOf &ifindex_of) {
  if (cc.match.dport && cc.match.port)
    return make_error(EINVAL, "class {}: give port (either side) or dport, not both", cc.name);
  bg_tc_class k{};
  std::strncpy(k.name, cc.name.c_str(), sizeof(k.name) - 1);
  k.match = compile_match(cc.match);
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
  return k;
}

}  // namespace

Result<TcImage> compile_tc(const TcConfig &c, const IfindexOf &ifindex_of) {
  TcImage img;
  img.stages = c.stages;
  for (const auto &cc : c.classes) {
    auto k = compile_class(cc, ifindex_of);
    if (!k)
      return k.error();
    img.classes.push_back(*k);
  }
  return img;
}

}  // namespace bpfgate::core
