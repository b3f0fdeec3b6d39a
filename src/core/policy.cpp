#include "core/policy.hpp"

#include <algorithm>
#include <array>
#include <cstring>
#include <map>

#include <fmt/format.h>

namespace bpfgate::core {

PolicyImage default_policy(const Limits &limits, bg_verdict unparsed, const Limits &new_sources,
                           const Limits &unproven) {
  PolicyImage p;
  apply_limits(new_sources, p.settings.new_source_limit);
  apply_limits(unproven, p.settings.unproven_limit);
  bg_rule def{};
  def.action = BG_ACTION_LIMIT;
  apply_limits(limits, def.limit);
  p.rules.push_back(def);
  p.settings.unparsed_verdict = unparsed;
  apply_limits(Limits{kDefaultAutoBlockPps, kDefaultAutoBlockPps}, p.settings.block_limit);
  return p;
}

namespace {

// Bit i (from the top) of a 128-bit key.
bool bit(const uint8_t addr[16], uint32_t i) {
  return (addr[i / 8] >> (7 - i % 8)) & 1;
}

// IPv4 sources live in the trie as ::ffff:a.b.c.d (96 + len bits). An IPv6
// prefix of at most 96 bits that contains ::ffff:0:0/96 would match them too:
// it becomes the prefixes that cover it except that range, one per bit from
// its length to 96, so that ::/0 means every IPv6 source and no IPv4 one.
// Other prefixes stay as they are.
const uint8_t kMapped[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0, 0, 0};

std::vector<bg_lpm_key> without_ipv4(const Prefix &p) {
  const uint8_t *mapped = kMapped;
  const bg_lpm_key &k = p.key;
  if (!covers_ipv4(p))
    return {k};
  std::vector<bg_lpm_key> pieces;
  for (uint32_t len = k.prefixlen + 1; len <= 96; len++) {
    // The mapped range's first len-1 bits, then the other value of bit len-1.
    bg_lpm_key piece{};
    piece.prefixlen = len;
    for (uint32_t i = 0; i < len; i++)
      if (i == len - 1 ? !bit(mapped, i) : bit(mapped, i))
        piece.addr[i / 8] |= static_cast<uint8_t>(0x80 >> (i % 8));
    pieces.push_back(piece);
  }
  return pieces;
}

}  // namespace

bool covers_ipv4(const Prefix &p) {
  const bg_lpm_key &k = p.key;
  bool covers = !p.v4 && k.prefixlen <= 96;
  for (uint32_t i = 0; covers && i < k.prefixlen; i++)
    covers = bit(k.addr, i) == bit(kMapped, i);
  return covers;
}

std::vector<std::pair<bg_lpm_key, uint32_t>> compile_acl(const std::vector<Prefix> &allow,
                                                         const std::vector<Prefix> &deny) {
  // Shorter prefixes first, so that where a piece of one equals a piece (or
  // the whole) of a longer one, the longer prefix's action is the one kept:
  // the longest prefix of a source decides, as without the split.
  std::vector<std::pair<Prefix, uint32_t>> all;
  for (const auto &pre : allow)
    all.emplace_back(pre, BG_ACL_ALLOW);
  for (const auto &pre : deny)
    all.emplace_back(pre, BG_ACL_DENY);
  std::stable_sort(all.begin(), all.end(), [](const auto &a, const auto &b) {
    return a.first.key.prefixlen < b.first.key.prefixlen;
  });
  std::map<std::pair<uint32_t, std::array<uint8_t, 16>>, uint32_t> entries;
  for (const auto &[pre, action] : all)
    for (const auto &k : without_ipv4(pre)) {
      std::array<uint8_t, 16> a;
      std::memcpy(a.data(), k.addr, 16);
      entries[{k.prefixlen, a}] = action;
    }
  std::vector<std::pair<bg_lpm_key, uint32_t>> out;
  out.reserve(entries.size());
  for (const auto &[key, action] : entries) {
    bg_lpm_key k{};
    k.prefixlen = key.first;
    std::memcpy(k.addr, key.second.data(), 16);
    out.emplace_back(k, action);
  }
  return out;
}

PolicyImage compile(const Config &c) {
  PolicyImage p = default_policy(c.limits, c.unparsed, c.new_sources, c.unproven);
  p.acl = compile_acl(c.allow, c.deny);
  for (const auto &r : c.rules) {
    auto id = static_cast<uint32_t>(p.rules.size());
    bg_rule rule{};
    rule.action = r.action;
    if (r.action == BG_ACTION_LIMIT)
      apply_limits(r.limits, rule.limit);
    if (r.dry_run)
      rule.flags |= BG_RULE_DRY_RUN;
    p.rules.push_back(rule);
    if (!r.has_ports) {
      p.protos[r.proto] = id;
      continue;
    }
    for (uint32_t port = r.port_lo; port <= r.port_hi; port++)
      p.ports.emplace_back(port_index(r.proto, static_cast<uint16_t>(port)), id);
  }
  if (c.prefix_limit) {
    apply_limits(c.prefix_limit->limits, p.settings.prefix_limit);
    p.settings.prefix_v4 = c.prefix_limit->v4_len;
    p.settings.prefix_v6 = c.prefix_limit->v6_len;
  }
  if (c.auto_block) {
    p.settings.block_after_ns = c.auto_block->after_ns;
    p.settings.block_ttl_ns = c.auto_block->ttl_ns;
    apply_limits(c.auto_block->max_rate, p.settings.block_limit);
    for (const auto &pre : c.auto_block->never)
      p.noblock.push_back(pre.key);
  }
  p.prove = c.prove;
  p.syn_proxy = c.syn_proxy;
  p.dry_run = c.dry_run;
  return p;
}

uint8_t syn_wscale(long space) {
  if (space <= 0)
    return 7;  // Linux's own with its default tcp_rmem
  const unsigned long clamp = 65535UL << 14;
  const unsigned long v = std::min(static_cast<unsigned long>(space), clamp);
  int log2 = 63 - __builtin_clzl(v);
  return static_cast<uint8_t>(std::clamp(log2 - 15, 0, 14));
}

std::optional<std::string> syn_answer_note(bool prove, int syncookies, int timestamps) {
  if (!prove)
    return std::nullopt;  // off with proofs: said where proofs are
  if (syncookies != 2)
    return fmt::format(
        "limits.syn_proxy is off: net.ipv4.tcp_syncookies is {} in this network namespace, not "
        "2, and the kernel accepts the cookies of SYNs answered by the datapath only where it "
        "sends cookies for every SYN (sysctl net.ipv4.tcp_syncookies=2)",
        syncookies < 0 ? std::string("unreadable") : std::to_string(syncookies));
  if (timestamps != 2)
    return fmt::format(
        "limits.syn_proxy answers SYNs without timestamps, window scaling or SACK: "
        "net.ipv4.tcp_timestamps is {}, not 2 (timestamps without a per-peer offset, which "
        "the datapath's SYN-ACK needs to agree with the kernel's later segments)",
        timestamps < 0 ? std::string("unreadable") : std::to_string(timestamps));
  return std::nullopt;
}

}  // namespace bpfgate::core
