#include "features/fleet/fleet_entry.hpp"

#include <nlohmann/json.hpp>

#include <cmath>
#include <ctime>
#include <initializer_list>
#include <map>

#include "features/fleet/fleet_config.hpp"

namespace bpfgate::fleet {

using nlohmann::json;

namespace {
std::string full_cidr(const core::Prefix &p) {
  std::string s = core::format_prefix(p);
  return s.find('/') == std::string::npos ? s + (p.v4 ? "/32" : "/128") : s;
}
}  // namespace

std::string node_prefix(const std::string &key_prefix, const std::string &node) {
  return key_prefix + node + "/";
}

namespace {
std::string key_cidr(const core::Prefix &p) {
  std::string cidr = full_cidr(p);
  cidr[cidr.find('/')] = '_';
  return cidr;
}

// The CIDR a key's last part names (ADDR_LEN).
Result<core::Prefix> cidr_of_key(std::string cidr, const std::string &shown) {
  size_t us = cidr.rfind('_');
  if (us == std::string::npos || cidr.find('/') != std::string::npos)
    return make_error(EINVAL, "key '{}' names no CIDR (ADDR_LEN)", shown.substr(0, 64));
  cidr[us] = '/';
  return core::parse_prefix(cidr);
}
}  // namespace

double wall_s() {
  timespec ts{};
  clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

std::string key_of(const std::string &key_prefix, const std::string &node, const core::Prefix &p) {
  return node_prefix(key_prefix, node) + key_cidr(p);
}

std::string never_prefix(const std::string &key_prefix) {
  return key_prefix + kNeverDir;
}

std::string never_key(const std::string &key_prefix, const core::Prefix &p) {
  return never_prefix(key_prefix) + key_cidr(p);
}

bool is_never_key(const std::string &key_prefix, const std::string &key) {
  return key.rfind(never_prefix(key_prefix), 0) == 0;
}

std::string encode_never(const NeverEntry &e) {
  return json{{"cidr", full_cidr(e.prefix)}, {"by", e.by}, {"at", std::round(e.at * 1000) / 1000}}
      .dump();
}

std::string encode_value(const FleetEntry &e) {
  return json{{"cidr", full_cidr(e.prefix)},
              {"node", e.node},
              {"reason", e.reason},
              {"at", std::round(e.at * 1000) / 1000},
              {"expires", e.expires}}
      .dump();
}

Result<KeyName> parse_key(const std::string &key_prefix, const std::string &key) {
  if (key.size() > kMaxKeyBytes || key.rfind(key_prefix, 0) != 0)
    return make_error(EINVAL, "key not under {} or over {} bytes", key_prefix, kMaxKeyBytes);
  std::string rest = key.substr(key_prefix.size());
  size_t slash = rest.find('/');
  if (slash == std::string::npos)
    return make_error(EINVAL, "key '{}' is not NODE/ADDR_LEN", rest.substr(0, 64));
  KeyName k;
  k.node = rest.substr(0, slash);
  if (!core::valid_node_name(k.node))
    return make_error(EINVAL, "the key's node is not 1-63 of [A-Za-z0-9._-]");
  auto p = cidr_of_key(rest.substr(slash + 1), rest);
  if (!p)
    return p.error();
  k.prefix = *p;
  return k;
}

namespace {

// A value's JSON, as both kinds of entry begin to read it: at most
// kMaxValueBytes, an object whose `strings` are strings (and whose "at" is a
// number, with `at`); `what` names them in the error.
Result<json> value_object(const std::string &value, std::initializer_list<const char *> strings,
                          bool at, const char *what) {
  if (value.size() > kMaxValueBytes)
    return make_error(EINVAL, "value over {} bytes", kMaxValueBytes);
  json j = json::parse(value, nullptr, false);
  bool ok = j.is_object() && (!at || (j.contains("at") && j["at"].is_number()));
  for (const char *f : strings)
    ok = ok && j.contains(f) && j[f].is_string();
  if (!ok)
    return make_error(EINVAL, "value is no JSON object with {}", what);
  return j;
}

// The value's cidr, which must be its key's.
Result<core::Prefix> value_cidr(const json &j, const core::Prefix &of_key) {
  auto p = core::parse_prefix(j["cidr"].get<std::string>());
  if (!p)
    return p.error();
  if (!(*p == of_key))
    return make_error(EINVAL, "the value's cidr is not the key's");
  return *p;
}

Status check_times(const json &j, FleetEntry &e, double now_s) {
  if (!j.contains("at") || !j["at"].is_number() || !j.contains("expires") ||
      !j["expires"].is_number_integer())
    return make_error(EINVAL, "'at' (number) and 'expires' (integer) are required");
  e.at = j["at"].get<double>();
  e.expires = j["expires"].get<int64_t>();
  if (!(e.at > 0) || e.at > now_s + 300)
    return make_error(EINVAL, "'at' {} is not a time up to now", e.at);
  if (e.expires < 0 || (e.expires && e.expires > static_cast<int64_t>(now_s) + kMaxTtlS))
    return make_error(EINVAL, "'expires' {} is not 0 or within a year", e.expires);
  return {};
}

}  // namespace

Result<FleetEntry> decode_entry(const std::string &key_prefix, const std::string &key,
                                const std::string &value, double now_s) {
  auto kn = parse_key(key_prefix, key);
  if (!kn)
    return kn.error();
  auto obj =
      value_object(value, {"cidr", "node", "reason"}, false, "cidr, node and reason strings");
  if (!obj)
    return obj.error();
  const json &j = *obj;
  auto p = value_cidr(j, kn->prefix);
  if (!p)
    return p.error();
  FleetEntry e;
  e.prefix = *p;
  e.node = j["node"].get<std::string>();
  if (!core::valid_node_name(e.node))
    return make_error(EINVAL, "node name is not 1-63 of [A-Za-z0-9._-]");
  if (e.node != kn->node)
    return make_error(EINVAL, "the value's node is not the key's ({}): a node writes its own keys",
                      kn->node);
  e.reason = j["reason"].get<std::string>();
  if (e.reason != "manual" && e.reason != "auto" && e.reason != "aggregate" && e.reason != "deny")
    return make_error(EINVAL, "reason is not manual, auto, aggregate or deny");
  if (auto st = check_times(j, e, now_s); !st)
    return st.error();
  return e;
}

Result<NeverEntry> decode_never(const std::string &key_prefix, const std::string &key,
                                const std::string &value, double now_s) {
  if (key.size() > kMaxKeyBytes || !is_never_key(key_prefix, key))
    return make_error(EINVAL, "key not under {} or over {} bytes", never_prefix(key_prefix),
                      kMaxKeyBytes);
  auto kp = cidr_of_key(key.substr(never_prefix(key_prefix).size()), key);
  if (!kp)
    return kp.error();
  auto obj = value_object(value, {"cidr", "by"}, true, "cidr and by strings and an at");
  if (!obj)
    return obj.error();
  const json &j = *obj;
  auto p = value_cidr(j, *kp);
  if (!p)
    return p.error();
  NeverEntry e{*p, j["by"].get<std::string>(), j["at"].get<double>()};
  if (!core::valid_node_name(e.by))
    return make_error(EINVAL, "'by' is not 1-63 of [A-Za-z0-9._-]");
  if (!(e.at > 0) || e.at > now_s + 300)
    return make_error(EINVAL, "'at' {} is not a time up to now", e.at);
  return e;
}

bool overlaps(const core::Prefix &a, const core::Prefix &b) {
  unsigned len = std::min(a.key.prefixlen, b.key.prefixlen);
  for (unsigned i = 0; i < len; i++) {
    unsigned byte = i / 8, bit = 7 - i % 8;
    if (((a.key.addr[byte] >> bit) & 1) != ((b.key.addr[byte] >> bit) & 1))
      return false;
  }
  return true;
}

bool touches_never_block(const core::Prefix &p, const std::vector<core::Prefix> &never) {
  for (const auto &n : never)
    if (overlaps(p, n))
      return true;
  return false;
}

core::Prefix widen(const core::Prefix &p, unsigned len) {
  core::Prefix w = p;
  w.key.prefixlen = p.v4 ? 96 + len : len;
  for (unsigned i = w.key.prefixlen; i < 128; i++)
    w.key.addr[i / 8] &= static_cast<uint8_t>(~(1u << (7 - i % 8)));
  return w;
}

std::vector<FleetEntry> aggregate(const std::vector<FleetEntry> &local, const Aggregation &a,
                                  const std::vector<core::Prefix> &never) {
  std::map<core::Prefix, std::vector<const FleetEntry *>> groups;
  std::vector<FleetEntry> out;
  for (const auto &e : local) {
    if (e.prefix.key.prefixlen != 128) {  // already a prefix: as it is
      out.push_back(e);
      continue;
    }
    groups[widen(e.prefix, e.prefix.v4 ? a.ipv4_prefix : a.ipv6_prefix)].push_back(&e);
  }
  for (const auto &[wide, members] : groups) {
    if (members.size() < a.threshold || touches_never_block(wide, never)) {
      for (const auto *m : members)
        out.push_back(*m);
      continue;
    }
    FleetEntry agg = *members.front();
    agg.prefix = wide;
    agg.reason = "aggregate";
    for (const auto *m : members) {
      agg.at = std::max(agg.at, m->at);
      agg.expires = (agg.expires == 0 || m->expires == 0) ? 0 : std::max(agg.expires, m->expires);
    }
    out.push_back(agg);
  }
  return out;
}

void TokenBucket::set_rate(uint64_t rate) {
  rate_ = rate;
  credit_ = std::min(credit_, rate * kUnit);
}

bool TokenBucket::take(uint64_t now_ns) {
  // Integer credit (a second refills the bucket whole, so a longer gap counts as one).
  if (last_ns_ && now_ns > last_ns_)
    credit_ = std::min(rate_ * kUnit, credit_ + std::min(now_ns - last_ns_, kUnit) * rate_);
  last_ns_ = now_ns;
  if (credit_ < kUnit)
    return false;
  credit_ -= kUnit;
  return true;
}

}  // namespace bpfgate::fleet
