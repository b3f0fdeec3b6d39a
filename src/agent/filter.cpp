#include "agent/filter.hpp"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include <cerrno>
#include <cstring>
#include <algorithm>
#include <filesystem>

#include "agent/events.hpp"
#include "bpf/features.hpp"
#include "bpf/pin.hpp"
#include "bpf/skeletons.hpp"
#include "util/log.hpp"

namespace bpfgate::agent {

namespace fs = std::filesystem;

std::string to_string(bg_verdict v) {
  return v == BG_VERDICT_DROP ? "drop" : "pass";
}

std::string to_string(bg_reason r) {
  switch (r) {
    case BG_REASON_OK:
      return "ok";
    case BG_REASON_NOT_IP:
      return "not_ip";
    case BG_REASON_UNPARSEABLE:
      return "unparseable";
    case BG_REASON_RATE_LIMIT:
      return "rate_limit";
    case BG_REASON_ALLOW:
      return "allow";
    case BG_REASON_DENY:
      return "deny";
    case BG_REASON_BLOCKLIST:
      return "blocklist";
    case BG_REASON_RULE:
      return "rule";
    case BG_REASON_PREFIX_LIMIT:
      return "prefix_limit";
    case BG_REASON_NEW_SOURCE:
      return "new_source";
    case BG_REASON_UNPROVEN:
      return "unproven";
    case BG_REASON_NR:
      break;
  }
  return "unknown";
}

const StatName &stat_name(bg_stat s) {
  // In enum bg_stat order. Names are part of the interface (dashboards,
  // alerts): never renamed.
  static const StatName kNames[] = {
      {"cas_contended", "Frames passed because a source bucket's compare-and-swap lost every try"},
      {"autoblocks_failed",
       "Auto-blocks the blocklist had no room for (the source's streak goes on)"},
      {"autoblocks_capped", "Auto-blocks over auto_block.max_rate (the source stays rate-limited)"},
      {"autoblocks_spared",
       "Auto-blocks not made: a source that proved itself or a prefix in auto_block.never"},
      {"sources_proven", "Sources that proved themselves with a valid SYN cookie"},
      {"proofs_failed",
       "TCP frames of unproven sources checked for a proof (a SYN cookie, or a connection of "
       "the host) that carried none"},
      {"proofs_refused", "Valid proofs the known table had no room for (full)"},
      {"syns_passed_stateless",
       "SYNs of sources without state passed without creating any (SYN admission budget)"},
      {"sources_proven_connected",
       "Sources that proved themselves with a frame of a TCP connection the host has established"},
  };
  static_assert(sizeof(kNames) / sizeof(kNames[0]) == BG_STAT_NR, "a name for every bg_stat");
  static const StatName kUnknown = {"unknown", "unknown"};
  return s < BG_STAT_NR ? kNames[s] : kUnknown;
}

namespace {

std::string pin_path(const std::string &dir, const char *name) {
  return dir + "/" + name;
}

Status remove_pins(const std::string &dir) {
  std::vector<const char *> names = Datapath::pin_names();
  names.push_back(BG_PIN_PROG);
  names.push_back(BG_PIN_LINK);
  names.insert(names.end(), event_pin_names().begin(), event_pin_names().end());
  for (const char *name : names) {
    auto st = bpf::unpin(pin_path(dir, name));
    if (!st)
      return st;
  }
  return bpf::remove_dir_if_empty(dir);
}

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

uint32_t mode_code(bpf::XdpMode m) {
  switch (m) {
    case bpf::XdpMode::kNative:
      return BG_ATTACH_NATIVE;
    case bpf::XdpMode::kGeneric:
      return BG_ATTACH_GENERIC;
    case bpf::XdpMode::kOffload:
      return BG_ATTACH_OFFLOAD;
    case bpf::XdpMode::kAuto:
      break;
  }
  return BG_ATTACH_NONE;
}

Status check_privileges() {
  if (bpf::has_bpf_privileges())
    return {};
  return make_error(EPERM,
                    "bpfgate needs root, or CAP_BPF (or CAP_SYS_ADMIN) and CAP_NET_ADMIN, "
                    "to load and attach BPF programs: run it with sudo");
}

// Prepares <bpffs>/bpfgate and takes its lock.
Result<bpf::DirLock> lock_root(const std::string &bpffs) {
  if (auto st = bpf::ensure_bpffs(bpffs); !st)
    return st.error();
  std::string root = bpf::pin_root(bpffs);
  if (auto st = bpf::make_private_dir(root); !st)
    return st.error();
  return bpf::DirLock::acquire(root);
}

// If pins exist for iface: an error when they hold a live attachment to it,
// otherwise (interface gone or renamed) they are stale and are removed.
Status check_not_attached(const std::string &dir, const std::string &iface, int ifindex) {
  std::string link_pin = pin_path(dir, BG_PIN_LINK);
  if (!bpf::exists(link_pin)) {
    if (bpf::exists(dir))
      return remove_pins(dir);
    return {};
  }
  auto link = bpf::open_pinned(link_pin);
  if (link) {
    auto info = bpf::link_info(link->get());
    if (info && info->ifindex == static_cast<uint32_t>(ifindex))
      return make_error(EEXIST,
                        "bpfgate is already attached to {} (program id {}); change limits "
                        "with `bpfgate set {}` or run `bpfgate detach {}` first",
                        iface, info->prog_id, iface, iface);
  }
  log::warn("removing stale pins under {} (their interface is gone)", dir);
  return remove_pins(dir);
}

}  // namespace

bool syncookie_helpers() {
  static const bool have =
      bpf::has_helper(BPF_PROG_TYPE_XDP, BPF_FUNC_tcp_raw_check_syncookie_ipv4);
  return have;
}

Result<AttachReport> attach(const std::string &bpffs, const AttachOptions &o) {
  if (auto st = core::validate(o.limits); !st)
    return st.error();
  if (auto st = core::validate_max_sources(o.max_sources); !st)
    return st.error();
  auto ifindex = bpf::ifindex_of(o.iface);
  if (!ifindex)
    return ifindex.error();
  if (auto st = check_privileges(); !st)
    return st.error();
  auto lock = lock_root(bpffs);
  if (!lock)
    return lock.error();

  std::string dir = bpf::pin_dir(bpffs, o.iface);
  if (auto st = check_not_attached(dir, o.iface, *ifindex); !st)
    return st.error();

  AttachReport report{};
  auto present = bpf::query_xdp(*ifindex);
  if (!present)
    return present.error().context("attach " + o.iface);
  if (present->prog_id != 0) {
    if (!o.force)
      return make_error(EBUSY,
                        "{} already has an XDP program (id {}, {} mode) that bpfgate did not "
                        "attach; remove it (`ip link set dev {} xdp off`) or pass --force to "
                        "replace it",
                        o.iface, present->prog_id, bpf::to_string(present->mode), o.iface);
    if (auto st = bpf::detach_foreign_xdp(*ifindex, *present); !st)
      return st.error();
    report.replaced_prog_id = present->prog_id;
    log::warn("removed XDP program id {} from {} (--force)", present->prog_id, o.iface);
  }

  auto skel = bpf::XdpFilterSkel::open("xdp_filter");
  if (!skel)
    return skel.error();
  prepare_filter(*skel, o.max_sources);
  if (o.mode == bpf::XdpMode::kOffload) {
    bpf_program__set_ifindex((*skel)->progs.bg_xdp_filter, *ifindex);
    bpf_map *m;
    bpf_object__for_each_map(m, (*skel)->obj) bpf_map__set_ifindex(m, *ifindex);
  }
  auto transport = resolve_transport(o.event_buffer);
  if (!transport)
    return transport.error();
  if (!transport->note.empty())
    log::warn("{}: {}", o.iface, transport->note);
  if (auto st = set_event_transport(*skel, transport->transport); !st)
    return st.error();
  if (auto st = skel->load(); !st) {
    if (o.mode == bpf::XdpMode::kOffload)
      return make_error(st.error().err(),
                        "load for offload to {} failed: offload needs a NIC that runs XDP in "
                        "hardware (e.g. Netronome nfp); use --mode native, generic or auto",
                        o.iface);
    return st.error();
  }
  auto dp = Datapath::from_object((*skel)->obj);
  if (!dp)
    return dp.error();
  // The policy is in place before the first packet is seen.
  core::PolicyImage fallback =
      core::default_policy(o.limits, o.unparsed_verdict, o.new_sources, o.unproven);
  if (auto st = dp->apply(o.policy ? *o.policy : fallback); !st)
    return st.error().context("write the initial policy");
  if (auto st = set_sample_interval(bpf_map__fd((*skel)->maps.bg_event_config),
                                    o.drop_sample_interval_ns);
      !st)
    return st.error().context("write the event settings");

  int prog_fd = bpf_program__fd((*skel)->progs.bg_xdp_filter);
  auto att = bpf::attach_xdp(prog_fd, *ifindex, o.iface, o.mode);
  if (!att)
    return att.error();
  if (auto st = dp->set_attach_mode(mode_code(att->mode)); !st)
    return st.error().context("write config");

  // Pin everything; the link last, so a failure before it leaves nothing attached.
  if (auto st = bpf::make_private_dir(dir); !st)
    return st.error();
  Status pinned = dp->pin(dir);
  if (pinned)
    pinned = pin_event_maps((*skel)->obj, dir);
  if (pinned)
    pinned = bpf::pin_fd(prog_fd, pin_path(dir, BG_PIN_PROG));
  if (pinned)
    pinned = bpf::pin_fd(att->link.get(), pin_path(dir, BG_PIN_LINK));
  if (!pinned) {
    (void)remove_pins(dir);
    return pinned.error();
  }
  auto info = bpf::link_info(att->link.get());
  if (info) {
    report.link_id = info->id;
    report.prog_id = info->prog_id;
  }
  report.mode = att->mode;
  report.note = att->fallback_note;
  return report;
}

Status detach(const std::string &bpffs, const std::string &iface) {
  if (auto st = check_privileges(); !st)
    return st;
  if (auto st = bpf::ensure_bpffs(bpffs); !st)
    return st;
  std::string dir = bpf::pin_dir(bpffs, iface);
  if (!bpf::exists(dir))
    return make_error(ENOENT,
                      "bpfgate is not attached to {} (nothing pinned under {}); see "
                      "`bpfgate status`",
                      iface, dir);
  auto lock = bpf::DirLock::acquire(bpf::pin_root(bpffs));
  if (!lock)
    return lock.error();
  auto link = bpf::open_pinned(pin_path(dir, BG_PIN_LINK));
  if (link) {
    // Detach even if another process still holds the link open.
    int err = bpf_link_detach(link->get());
    if (err && errno != ENOLINK && errno != EINVAL)
      return bpf::libbpf_error(err, "detach the XDP link of " + iface);
  }
  return remove_pins(dir);
}

Result<std::vector<std::string>> pinned_interfaces(const std::string &bpffs) {
  std::vector<std::string> out;
  std::string root = bpf::pin_root(bpffs);
  std::error_code ec;
  if (!fs::exists(root, ec))
    return out;
  for (const auto &e : fs::directory_iterator(root, ec))
    if (e.is_directory())
      out.push_back(e.path().filename());
  if (ec)
    return Error(ec.value(), "list " + root);
  std::sort(out.begin(), out.end());
  return out;
}

Result<PinnedFilter> PinnedFilter::open(const std::string &bpffs, const std::string &iface) {
  if (auto st = bpf::ensure_bpffs(bpffs); !st)
    return st.error();
  std::string dir = bpf::pin_dir(bpffs, iface);
  if (!bpf::exists(dir))
    return make_error(ENOENT,
                      "bpfgate is not attached to {} (nothing pinned under {}); attach it with "
                      "`bpfgate attach {}`",
                      iface, dir, iface);
  auto link = bpf::open_pinned(pin_path(dir, BG_PIN_LINK));
  if (!link)
    return link.error();
  auto dp = Datapath::from_pins(dir);
  if (!dp)
    return dp.error().context("open the filter of " + iface);
  return PinnedFilter(iface, dir, std::move(*link), std::move(*dp));
}

Result<uint32_t> PinnedFilter::ifindex() const {
  auto info = bpf::link_info(link_.get());
  if (!info)
    return info.error();
  return info->ifindex;
}

Status PinnedFilter::set_limits(const core::Limits &limits,
                                std::optional<core::Limits> new_sources) {
  if (auto st = core::validate(limits); !st)
    return st;
  if (new_sources && new_sources->rate_pps)
    if (auto st = core::validate(*new_sources); !st)
      return st.error().context("new sources");
  auto lock = bpf::DirLock::acquire(dir_);
  if (!lock)
    return lock.error();
  auto policy = dp_.active_policy();
  if (!policy)
    return policy.error();
  core::apply_limits(limits, policy->rules[BG_RULE_DEFAULT].limit);
  if (new_sources)
    core::apply_limits(*new_sources, policy->settings.new_source_limit);
  return dp_.apply(*policy);
}

Status PinnedFilter::apply(const core::PolicyImage &policy) {
  auto lock = bpf::DirLock::acquire(dir_);
  if (!lock)
    return lock.error();
  return dp_.apply(policy);
}

Result<FilterStatus> PinnedFilter::status() const {
  FilterStatus s;
  s.iface = iface_;
  auto info = bpf::link_info(link_.get());
  if (!info)
    return info.error();
  s.ifindex = info->ifindex;
  s.prog_id = info->prog_id;
  s.link_id = info->id;
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
  auto rule = dp_.default_rule();
  if (!rule)
    return rule.error();
  s.limits = core::limits_of(rule->limit);
  auto max = dp_.max_sources();
  if (!max)
    return max.error();
  s.max_sources = *max;
  auto c = dp_.counters();
  if (!c)
    return c.error();
  s.counters = *c;
  auto stats = dp_.stats();
  if (!stats)
    return stats.error();
  s.stats = *stats;
  auto known = dp_.known_entries();
  if (!known)
    return known.error();
  s.known_sources = *known;
  auto max_known = dp_.max_known();
  if (!max_known)
    return max_known.error();
  s.max_known = *max_known;
  return s;
}

}  // namespace bpfgate::agent
