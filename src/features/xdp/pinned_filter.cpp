// PinnedFilter: the XDP filter found pinned, from any process: where it
// runs, its policy switches, its status.
#include <net/if.h>

#include <cerrno>

#include "bpf/map.hpp"
#include "bpf/pin.hpp"
#include "bpf/xdp_dispatcher.hpp"
#include "features/xdp/filter.hpp"

namespace bpfgate::agent {

namespace {

std::string mode_name(uint32_t m) {
  switch (m) {
    case BG_ATTACH_NATIVE:
      return "native";
    case BG_ATTACH_GENERIC:
      return "generic";
    case BG_ATTACH_OFFLOAD:
      return "offload";
    default:
      return "unknown";
  }
}

}  // namespace

Result<PinnedFilter> PinnedFilter::open(const std::string &bpffs, const std::string &iface) {
  if (auto st = bpf::ensure_bpffs(bpffs); !st)
    return st.error();
  std::string dir = bpf::pin_dir(bpffs, iface);
  if (!bpf::exists(dir))
    return make_error(ENOENT,
                      "bpfgate is not attached to {} (nothing pinned under {}); attach it with "
                      "`bpfgate attach {}`",
                      iface, dir, iface);
  bpf::UniqueFd link, prog;
  if (bpf::exists(bpf::pin_path(dir, BG_PIN_LINK)) ||
      !bpf::exists(bpf::pin_path(dir, BG_PIN_PROG))) {
    auto l = bpf::open_pinned(bpf::pin_path(dir, BG_PIN_LINK));
    if (!l)
      return l.error();
    link = std::move(*l);
  } else {
    auto p = bpf::open_pinned(bpf::pin_path(dir, BG_PIN_PROG));
    if (!p)
      return p.error();
    prog = std::move(*p);
  }
  auto dp = Datapath::from_pins(dir);
  if (!dp)
    return dp.error().context("open the filter of " + iface);
  return PinnedFilter(iface, dir, std::move(link), std::move(prog), std::move(*dp));
}

Result<PinnedFilter::Dispatched> PinnedFilter::dispatched() const {
  Dispatched d;
  auto id = bpf::prog_id_of(prog_.get());
  d.prog_id = id ? *id : 0;
  unsigned idx = if_nametoindex(iface_.c_str());
  if (idx == 0 || d.prog_id == 0)
    return d;
  auto q = bpf::query_dispatcher(static_cast<int>(idx));
  if (!q)
    return q.error();
  if (const bpf::DispatchedProg *p = q->dispatcher ? q->find(d.prog_id) : nullptr) {
    d.ifindex = idx;
    d.priority = p->priority;
  }
  return d;
}

Result<uint32_t> PinnedFilter::ifindex() const {
  if (attach() == XdpAttach::kDispatcher) {
    auto d = dispatched();
    if (!d)
      return d.error();
    return d->ifindex;
  }
  auto info = bpf::link_info(link_.get());
  if (!info)
    return info.error();
  return info->ifindex;
}

Status PinnedFilter::set_limits(const core::Limits &limits, std::optional<core::Limits> new_sources,
                                std::optional<core::Limits> unproven) {
  if (auto st = core::validate(limits); !st)
    return st;
  if (new_sources && new_sources->rate_pps)
    if (auto st = core::validate(*new_sources); !st)
      return st.error().context("new sources");
  if (unproven && unproven->rate_pps)
    if (auto st = core::validate(*unproven); !st)
      return st.error().context("unproven sources");
  auto lock = bpf::DirLock::acquire(dir_);
  if (!lock)
    return lock.error();
  auto policy = dp_.active_policy();
  if (!policy)
    return policy.error();
  core::apply_limits(limits, policy->rules[BG_RULE_DEFAULT].limit);
  if (new_sources)
    core::apply_limits(*new_sources, policy->settings.new_source_limit);
  if (unproven)
    core::apply_limits(*unproven, policy->settings.unproven_limit);
  return dp_.apply(*policy);
}

Status PinnedFilter::apply(const core::PolicyImage &policy) {
  auto lock = bpf::DirLock::acquire(dir_);
  if (!lock)
    return lock.error();
  return dp_.apply(policy);
}

Status PinnedFilter::set_bypass(bool on) {
  auto lock = bpf::DirLock::acquire(dir_);
  if (!lock)
    return lock.error();
  return dp_.set_bypass(on);
}

Status PinnedFilter::read_attachment(FilterStatus &s) const {
  s.iface = iface_;
  s.attach = attach();
  if (s.attach == XdpAttach::kDispatcher) {
    auto d = dispatched();
    if (!d)
      return d.error();
    s.ifindex = d->ifindex;
    s.prog_id = d->prog_id;
    s.priority = d->priority;
    return {};
  }
  auto info = bpf::link_info(link_.get());
  if (!info)
    return info.error();
  s.ifindex = info->ifindex;
  s.prog_id = info->prog_id;
  s.link_id = info->id;
  return {};
}

Status PinnedFilter::read_settings(FilterStatus &s) const {
  auto cfg = dp_.config();
  if (!cfg)
    return cfg.error();
  s.mode = mode_name(cfg->attach_mode);
  s.generation = cfg->generation;
  const bg_settings &set = cfg->gen[cfg->active % BG_GENERATIONS];
  s.unparsed_verdict = static_cast<bg_verdict>(set.unparsed_verdict);
  s.new_sources = core::limits_of(set.new_source_limit);
  s.unproven = core::limits_of(set.unproven_limit);
  s.unproven_enforced = (set.flags & BG_SET_UNPROVEN) != 0;
  s.syn_proxy_asked = (set.syn_opts & BG_SYN_OPT_ASKED) != 0;
  s.syn_proxy = (set.flags & BG_SET_SYN_PROXY) != 0;
  s.dry_run = (set.flags & BG_SET_DRY_RUN) != 0;
  s.bypass = cfg->bypass != 0;
  s.frags = cfg->frags != 0;
  auto rule = dp_.default_rule();
  if (!rule)
    return rule.error();
  s.limits = core::limits_of(rule->limit);
  auto max = dp_.max_sources();
  if (!max)
    return max.error();
  s.max_sources = *max;
  return {};
}

Status PinnedFilter::read_counters(FilterStatus &s) const {
  auto c = dp_.counters();
  if (!c)
    return c.error();
  s.counters = *c;
  auto stats = dp_.stats();
  if (!stats)
    return stats.error();
  s.stats = *stats;
  s.op_stats = dp_.has_op_stats();
  auto ops = dp_.op_stats();
  if (!ops)
    return ops.error();
  s.ops = *ops;
  auto known = dp_.known_entries();
  if (!known)
    return known.error();
  s.known_sources = *known;
  auto max_known = dp_.max_known();
  if (!max_known)
    return max_known.error();
  s.max_known = *max_known;
  return {};
}

Result<FilterStatus> PinnedFilter::status() const {
  FilterStatus s;
  if (auto st = read_attachment(s); !st)
    return st.error();
  if (auto st = read_settings(s); !st)
    return st.error();
  if (auto st = read_counters(s); !st)
    return st.error();
  return s;
}

}  // namespace bpfgate::agent
