#include "features/xdp/filter.hpp"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <net/if.h>

#include <cerrno>
#include <cstring>
#include <algorithm>
#include <filesystem>

#include "features/observe/events.hpp"
#include "features/xdp/replace.hpp"
#include "bpf/features.hpp"
#include "bpf/error.hpp"
#include "bpf/map.hpp"
#include "bpf/pin.hpp"
#include "bpf/skeletons.hpp"
#include "bpf/xdp_dispatcher.hpp"
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
       "TCP frames of unproven sources checked for a proof (a SYN cookie, a connection of "
       "the host, or the ACK of its handshake) that carried none"},
      {"proofs_refused", "Valid proofs the known table had no room for (full)"},
      {"syns_passed_stateless",
       "SYNs of sources without state passed without creating any (SYN admission budget)"},
      {"sources_proven_connected",
       "Sources that proved themselves with a frame of a TCP connection the host has established, "
       "or with the ACK that completes a handshake the host keeps a request socket for"},
      {"syns_answered",
       "Held SYNs answered by the datapath with a SYN-ACK carrying the kernel's cookie "
       "(limits.syn_proxy)"},
      {"syns_passed_refresh",
       "Held SYNs passed to a port no SYN had reached for a minute, so that its listener "
       "accepts cookies"},
      {"events_lost",
       "Events the filter's event buffer refused (full: the agent read too slowly, or none ran)"},
      {"passed_no_state",
       "Frames passed because the per-source table refused their source's entry (failed open)"},
  };
  static_assert(sizeof(kNames) / sizeof(kNames[0]) == BG_STAT_NR, "a name for every bg_stat");
  static const StatName kUnknown = {"unknown", "unknown"};
  return s < BG_STAT_NR ? kNames[s] : kUnknown;
}

namespace {

// Everything pinned under <bpffs>/bpfgate/<iface>/, in pinning order: the
// Datapath's maps (Datapath::pin_specs), the event maps, the
// program, replace.cpp's program on its way in, and the link last (attached
// directly), so that a failure before it leaves nothing attached.
bpf::PinSet filter_pins(const std::string &dir) {
  std::vector<bpf::PinSpec> p;
  for (auto &m : Datapath::pin_specs())
    p.push_back(std::move(m));
  for (auto &e : event_pins())
    p.push_back(std::move(e));
  p.push_back(bpf::prog_pin(BG_PIN_PROG, "bg_xdp_filter"));
  p.push_back(bpf::prog_pin(kProgNextPin, ""));
  p.push_back(bpf::link_pin(BG_PIN_LINK));
  return bpf::PinSet(dir, std::move(p));
}

Status remove_pins(const std::string &dir) {
  return filter_pins(dir).remove();
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
  return bpf::require_privileges("bpfgate", "load and attach BPF programs");
}

// Prepares <bpffs>/bpfgate and takes its lock.
Result<bpf::DirLock> lock_root(const std::string &bpffs) {
  if (auto st = bpf::ensure_bpffs(bpffs); !st)
    return st.error();
  return bpf::DirLock::acquire(bpf::pin_root(bpffs), true);
}

// The id of the program behind fd (0 when unknown).
uint32_t prog_id_of(int fd) {
  auto id = bpf::prog_id_of(fd);
  return id ? *id : 0;
}

// Whether program prog_id runs in the dispatcher of iface (0: it does not).
uint32_t dispatched_ifindex(const std::string &iface, uint32_t prog_id) {
  unsigned idx = if_nametoindex(iface.c_str());
  if (idx == 0 || prog_id == 0)
    return 0;
  auto q = bpf::query_dispatcher(static_cast<int>(idx));
  return q && q->dispatcher && q->find(prog_id) ? idx : 0;
}

// If pins exist for iface: an error when they hold a live attachment to it,
// otherwise (interface gone or renamed, or the filter no longer in the
// interface's dispatcher) they are stale and are removed.
Status check_not_attached(const std::string &dir, const std::string &iface, int ifindex) {
  std::string link_pin = bpf::pin_path(dir, BG_PIN_LINK);
  std::string prog_pin = bpf::pin_path(dir, BG_PIN_PROG);
  if (bpf::exists(link_pin)) {
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
  } else if (bpf::exists(prog_pin)) {
    auto prog = bpf::open_pinned(prog_pin);
    uint32_t id = prog ? prog_id_of(prog->get()) : 0;
    if (dispatched_ifindex(iface, id) == static_cast<uint32_t>(ifindex))
      return make_error(EEXIST,
                        "bpfgate is already attached to {} through the XDP dispatcher (program "
                        "id {}); change limits with `bpfgate set {}` or run `bpfgate detach {}` "
                        "first",
                        iface, id, iface, iface);
    log::warn("removing stale pins under {} (the filter is no longer in {}'s XDP dispatcher)", dir,
              iface);
  } else if (!bpf::exists(dir)) {
    return {};
  }
  return remove_pins(dir);
}

// What the interface runs now, for plan_xdp_attach.
Result<XdpPresent> xdp_present(int ifindex) {
  auto q = bpf::query_xdp(ifindex);
  if (!q)
    return q.error();
  XdpPresent p{.prog_id = q->prog_id, .dispatcher = false, .dispatched = 0, .mode = q->mode};
  if (p.prog_id == 0)
    return p;
  auto d = bpf::query_dispatcher(ifindex);
  if (!d) {
    log::debug("read {}'s XDP program through libxdp: {}", ifindex, d.error().what());
    return p;
  }
  p.dispatcher = d->dispatcher;
  p.dispatched = d->progs.size();
  return p;
}

// The filter loaded, not attached, with its policy in place before it sees
// a packet.
struct LoadedFilter {
  bpf::XdpFilterSkel skel;
  Datapath dp;
  bg_event_transport transport;
};

// The filter's object opened, sized and configured for `o`, ready to load.
Result<bpf::XdpFilterSkel> open_filter(const AttachOptions &o, int ifindex, bg_event_transport t) {
  auto skel = bpf::XdpFilterSkel::open("xdp_filter");
  if (!skel)
    return skel.error();
  prepare_filter(*skel, o.max_sources);
  prepare_frags(*skel, o.frags);
  if (o.mode == bpf::XdpMode::kOffload) {
    bpf_program__set_ifindex((*skel)->progs.bg_xdp_filter, ifindex);
    bpf_map *m;
    bpf_object__for_each_map(m, (*skel)->obj) bpf_map__set_ifindex(m, ifindex);
  }
  if (auto st = set_event_transport(*skel, t); !st)
    return st.error();
  return skel;
}

Result<LoadedFilter> load_filter(const AttachOptions &o, int ifindex) {
  auto transport = resolve_transport(o.event_buffer);
  if (!transport)
    return transport.error();
  if (!transport->note.empty())
    log::warn("{}: {}", o.iface, transport->note);
  auto skel = open_filter(o, ifindex, transport->transport);
  if (!skel)
    return skel.error();
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
  core::PolicyImage fallback =
      core::default_policy(o.limits, o.unparsed_verdict, o.new_sources, o.unproven);
  fallback.syn_proxy = o.syn_proxy;
  if (auto st = dp->apply(o.policy ? *o.policy : fallback); !st)
    return st.error().context("write the initial policy");
  if (auto st = set_sample_interval(bpf_map__fd((*skel)->maps.bg_event_config),
                                    o.drop_sample_interval_ns);
      !st)
    return st.error().context("write the event settings");
  return LoadedFilter{std::move(*skel), std::move(*dp), transport->transport};
}

// Pins the maps and the program (and the link, when given: last, so that a
// failure before it leaves nothing attached); on failure removes them all.
Status pin_filter(const LoadedFilter &f, const std::string &dir, int prog_fd, int link_fd) {
  auto set = bpf::PinSet::from_object(dir, filter_pins(dir).specs(), f.skel->obj);
  if (!set)
    return set.error();
  // Through the dispatcher, the program libxdp loaded, not the skeleton's.
  auto prog = bpf::dup_fd(prog_fd, "the filter program");
  if (!prog)
    return prog.error();
  set->hold(BG_PIN_PROG, std::move(*prog));
  if (link_fd >= 0) {
    auto link = bpf::dup_fd(link_fd, "the filter's link");
    if (!link)
      return link.error();
    set->hold(BG_PIN_LINK, std::move(*link));
  }
  if (auto st = bpf::make_private_dir(dir); !st)
    return st;
  Status pinned = set->pin();
  if (!pinned)
    (void)set->remove();
  return pinned;
}

// What an attach or a re-attach made: the link's and program's ids, the mode.
AttachReport report_of(const bpf::XdpAttachment &att) {
  AttachReport report{};
  if (auto info = bpf::link_info(att.link.get())) {
    report.link_id = info->id;
    report.prog_id = info->prog_id;
  }
  report.mode = att.mode;
  report.note = att.fallback_note;
  return report;
}

Result<AttachReport> attach_direct(const AttachOptions &o, int ifindex, const std::string &dir,
                                   LoadedFilter &f) {
  int prog_fd = bpf_program__fd(f.skel->progs.bg_xdp_filter);
  auto att = bpf::attach_xdp(prog_fd, ifindex, o.iface, o.mode);
  if (!att)
    return att.error();
  if (auto st = f.dp.set_attach_mode(mode_code(att->mode)); !st)
    return st.error().context("write config");
  if (auto st = f.dp.set_frags(o.frags); !st)
    return st.error().context("write config");
  if (auto st = pin_filter(f, dir, prog_fd, att->link.get()); !st)
    return st.error();
  auto report = report_of(*att);
  report.frags = o.frags;
  return report;
}

// The maps of `to` (opened, not loaded) made those of `from` (loaded).
Status share_maps(bpf_object *to, const bpf_object *from) {
  bpf_map *m;
  bpf_object__for_each_map(m, to) {
    // The program array of the hand-off stays the extension's own: the
    // plain instance owns the shared one as an XDP program, and 6.1 refused
    // the extension on it (EINVAL). The balancer is not chained behind a
    // filter in the dispatcher.
    if (std::string_view(bpf_map__name(m)) == "bg_xdp_next")
      continue;
    const bpf_map *src = bpf_object__find_map_by_name(from, bpf_map__name(m));
    if (!src || bpf_map__fd(src) < 0)
      return make_error(ENOENT, "the loaded filter has no map {}", bpf_map__name(m));
    if (int err = bpf_map__reuse_fd(m, bpf_map__fd(src)))
      return bpf::libbpf_error(err, fmt::format("share map {}", bpf_map__name(m)));
  }
  return {};
}

// libxdp loads the program itself, as an extension of its dispatcher: a
// second instance of the object, on the maps of the first (loaded as plain
// XDP and never attached), which already hold the policy.
Result<AttachReport> attach_through_dispatcher(const AttachOptions &o, int ifindex,
                                               const std::string &dir, LoadedFilter &f) {
  auto ext = open_filter(o, ifindex, f.transport);
  if (!ext)
    return ext.error();
  if (auto st = share_maps((*ext)->obj, f.skel->obj); !st)
    return st.error();
  auto att = bpf::attach_dispatched((*ext)->obj, "bg_xdp_filter", ifindex, o.iface, o.mode,
                                    o.priority, o.frags);
  if (!att)
    return att.error();
  Status done = f.dp.set_attach_mode(mode_code(att->mode));
  if (done)
    done = f.dp.set_frags(o.frags);
  if (done)
    done = pin_filter(f, dir, att->prog.get(), -1);
  if (!done) {
    (void)bpf::detach_dispatched(att->prog.get(), ifindex, o.iface);
    return done.error();
  }
  AttachReport report{};
  report.prog_id = att->prog_id;
  report.mode = att->mode;
  report.attach = XdpAttach::kDispatcher;
  report.priority = o.priority;
  report.frags = o.frags;
  return report;
}

// Whether to load the filter with frags for o's interface (want_frags),
// warning where its MTU needs them and the kernel lacks them.
bool frags_for(const AttachOptions &o) {
  auto mtu = bpf::mtu_of(o.iface);
  if (!mtu)
    return false;
  const int single = bpf::xdp_single_buffer_mtu();
  bool frags = want_frags(*mtu, single, bpf::xdp_frags_support(), o.mode);
  if (*mtu > single && !frags && o.mode != bpf::XdpMode::kOffload)
    log::warn(
        "{}: MTU {} is above what a single-buffer XDP program takes ({}) and this kernel "
        "cannot load XDP programs with frags: native mode is likely refused",
        o.iface, *mtu, single);
  return frags;
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

  auto present = xdp_present(*ifindex);
  if (!present)
    return present.error().context("attach " + o.iface);
  XdpAttachRequest req;
  req.iface = o.iface;
  req.attach = o.attach;
  req.mode = o.mode;
  req.force = o.force;
  if (o.attach == XdpAttach::kDispatcher) {
    req.freplace = bpf::freplace_support();
    req.kernel = bpf::kernel_release();
  }
  auto plan = plan_xdp_attach(req, *present);
  if (!plan)
    return plan.error();
  uint32_t replaced = 0;
  if (plan->remove_foreign) {
    if (auto st = bpf::detach_foreign_xdp(*ifindex, bpf::XdpQuery{present->prog_id, present->mode});
        !st)
      return st.error();
    replaced = present->prog_id;
    log::warn("removed XDP program id {} from {} (--force)", present->prog_id, o.iface);
  }

  AttachOptions with = o;
  with.frags = frags_for(o);
  auto f = load_filter(with, *ifindex);
  if (!f)
    return f.error();
  auto report = o.attach == XdpAttach::kDispatcher
                    ? attach_through_dispatcher(with, *ifindex, dir, *f)
                    : attach_direct(with, *ifindex, dir, *f);
  if (report)
    report->replaced_prog_id = replaced;
  return report;
}

Result<AttachReport> reattach(const std::string &bpffs, const std::string &iface,
                              bpf::XdpMode mode) {
  if (mode == bpf::XdpMode::kOffload)
    return make_error(ENOTSUP, "an offloaded filter is bound to the device that went");
  auto ifindex = bpf::ifindex_of(iface);
  if (!ifindex)
    return ifindex.error();
  auto lock = lock_root(bpffs);
  if (!lock)
    return lock.error();
  std::string dir = bpf::pin_dir(bpffs, iface);
  std::string link_pin = bpf::pin_path(dir, BG_PIN_LINK);
  if (!bpf::exists(link_pin))
    return make_error(ENOTSUP,
                      "the filter ran through the XDP dispatcher, which went with the interface");
  auto link = bpf::open_pinned(link_pin);
  if (!link)
    return link.error();
  auto info = bpf::link_info(link->get());
  if (!info)
    return info.error();
  if (info->ifindex)
    return make_error(EEXIST, "the filter of {} is still attached (to ifindex {})", iface,
                      info->ifindex);
  auto prog = bpf::open_pinned(bpf::pin_path(dir, BG_PIN_PROG));
  if (!prog)
    return prog.error();
  auto present = xdp_present(*ifindex);
  if (!present)
    return present.error().context("attach " + iface);
  if (present->prog_id)
    return make_error(EBUSY,
                      "{} already runs XDP program id {}: bpfgate does not replace it; remove "
                      "it, or `bpfgate detach {}` and `bpfgate attach {} --force`",
                      iface, present->prog_id, iface, iface);
  auto dp = Datapath::from_pins(dir);
  if (!dp)
    return dp.error().context("open the filter of " + iface);
  auto att = bpf::attach_xdp(prog->get(), *ifindex, iface, mode);
  if (!att)
    return att.error();
  if (auto st = dp->set_attach_mode(mode_code(att->mode)); !st)
    return st.error().context("write config");
  // The new link takes the defunct one's pin (if pinning fails, closing
  // att->link detaches the program again).
  if (auto st = bpf::unpin(link_pin); !st)
    return st.error();
  if (auto st = bpf::pin_fd(att->link.get(), link_pin); !st)
    return st.error();
  return report_of(*att);
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
  if (bpf::exists(bpf::pin_path(dir, BG_PIN_LINK))) {
    auto link = bpf::open_pinned(bpf::pin_path(dir, BG_PIN_LINK));
    if (link) {
      // Detach even if another process still holds the link open.
      int err = bpf_link_detach(link->get());
      if (err && errno != ENOLINK && errno != EINVAL)
        return bpf::libbpf_error(err, "detach the XDP link of " + iface);
    }
  } else if (auto prog = bpf::open_pinned(bpf::pin_path(dir, BG_PIN_PROG))) {
    // Through the dispatcher: the other programs stay.
    uint32_t idx = dispatched_ifindex(iface, prog_id_of(prog->get()));
    if (idx)
      if (auto st = bpf::detach_dispatched(prog->get(), static_cast<int>(idx), iface); !st)
        return st;
  }
  return remove_pins(dir);
}

Result<std::vector<std::string>> pinned_interfaces(const std::string &bpffs) {
  return bpf::pinned_dirs(bpf::pin_root(bpffs));
}

}  // namespace bpfgate::agent
