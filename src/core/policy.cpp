#include "core/policy.hpp"

namespace bpfgate::core {

PolicyImage default_policy(const Limits &limits, bg_verdict unparsed, const Limits &new_sources) {
  PolicyImage p;
  apply_limits(new_sources, p.settings.new_source_limit);
  bg_rule def{};
  def.action = BG_ACTION_LIMIT;
  apply_limits(limits, def.limit);
  p.rules.push_back(def);
  p.settings.unparsed_verdict = unparsed;
  apply_limits(Limits{kDefaultAutoBlockPps, kDefaultAutoBlockPps}, p.settings.block_limit);
  return p;
}

PolicyImage compile(const Config &c) {
  PolicyImage p = default_policy(c.limits, c.unparsed, c.new_sources);
  p.acl.reserve(c.allow.size() + c.deny.size());
  for (const auto &pre : c.allow)
    p.acl.emplace_back(pre.key, BG_ACL_ALLOW);
  for (const auto &pre : c.deny)
    p.acl.emplace_back(pre.key, BG_ACL_DENY);
  for (const auto &r : c.rules) {
    auto id = static_cast<uint32_t>(p.rules.size());
    bg_rule rule{};
    rule.action = r.action;
    if (r.action == BG_ACTION_LIMIT)
      apply_limits(r.limits, rule.limit);
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
  return p;
}

}  // namespace bpfgate::core
