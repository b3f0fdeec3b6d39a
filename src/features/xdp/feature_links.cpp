// The filters' interfaces: attached, adopted, waited for while absent, and
// attached again when a link event says they are back (agent/link_watch.hpp).

#include "core/policy.hpp"
#include "features/observe/events.hpp"
#include "features/xdp/feature.hpp"
#include "util/audit.hpp"
#include "util/log.hpp"
#include "util/netif.hpp"

namespace bpfgate::agent {

namespace {
// The running filter differs from what the config asks in what only a new
// attach can change: said, not changed.
void warn_differences(const core::InterfaceConfig &i, PinnedFilter &pinned) {
  auto max = pinned.datapath().max_sources();
  if (max && *max != i.max_sources)
    log::warn(
        "{}: the running filter has {} per-source entries, the config asks for {}: "
        "detach and restart the agent to resize",
        i.name, *max, i.max_sources);
  auto st = pinned.status();
  if (st && i.mode != "auto" && st->mode != i.mode)
    log::warn(
        "{}: the running filter is attached in {} mode, the config asks for {}: "
        "detach and restart the agent to change it",
        i.name, st->mode, i.mode);
  if (to_string(pinned.attach()) != i.attach)
    log::warn(
        "{}: the running filter is attached {}, the config asks for {}: detach and "
        "restart the agent to change it",
        i.name, pinned.attach() == XdpAttach::kDirect ? "directly" : "through the dispatcher",
        i.attach);
}

// The interface the filter runs on now (0: none: gone, or defunct).
uint32_t attached_ifindex(const PinnedFilter &f) {
  auto idx = f.ifindex();
  return idx ? *idx : 0;
}
}  // namespace

Status XdpFeature::converge_iface(const core::InterfaceConfig &i, const core::Config &c,
                                  const core::PolicyImage &image, const std::string &by) {
  uint32_t live = util::ifindex_of(i.name);
  auto it = filters_.find(i.name);
  if (it == filters_.end()) {
    // Adopt what is pinned: attached to this interface, or left by one that
    // went (its maps are kept, and the filter re-attached when it is back).
    if (auto pinned = PinnedFilter::open(bpffs_, i.name)) {
      uint32_t idx = attached_ifindex(*pinned);
      const bool running = live && idx == live;
      if (running) {
        warn_differences(i, *pinned);
        log::info("{}: adopted the running filter", i.name);
      } else {
        log::info(
            "{}: adopted its pinned filter, attached to no interface: kept for when {} is "
            "back",
            i.name, i.name);
      }
      it = filters_.emplace(i.name, std::move(*pinned)).first;
      if (running)
        upgrade_adopted(i.name, c, by);
    }
  }
  if (it != filters_.end())
    if (auto st = it->second.apply(image); !st)
      return st.error().context("apply the policy to " + i.name);
  switch (converge_step(live, it != filters_.end() ? attached_ifindex(it->second) : 0)) {
    case IfaceStep::kAbsent:
      if (absent_.insert(i.name).second)
        log::warn(
            "{}:{}: interface '{}' is not in this network namespace: its filter is attached when "
            "it appears (the agent watches link events); until then it filters nothing",
            c.path, i.line, i.name);
      return {};
    case IfaceStep::kRunning:
      absent_.erase(i.name);
      on_ifindex_[i.name] = live;
      return {};
    case IfaceStep::kGoingAway:
    case IfaceStep::kBringUp:
      break;
  }
  return bring_up(i, c, image, by);
}

Status XdpFeature::bring_up(const core::InterfaceConfig &i, const core::Config &c,
                            const core::PolicyImage &image, const std::string &by) {
  bool back = absent_.erase(i.name) > 0;
  if (filters_.count(i.name)) {
    bool done = false;
    if (auto st = reattach_pinned(i, c, by, done); !st || done)
      return st;
  }
  return attach_new(i, c, image, by, back);
}

Status XdpFeature::reattach_pinned(const core::InterfaceConfig &i, const core::Config &c,
                                   const std::string &by, bool &done) {
  // The interface was deleted and made again: the same program on the same
  // maps, which hold the policy in force (applied by the caller).
  auto r = reattach(bpffs_, i.name, i.xdp_mode);
  if (!r) {
    if (r.error().err() != ENOTSUP)
      return r.error().context("attach the filter again to " + i.name);
    log::warn(
        "{}: {}: attaching a new filter (per-source state, blocklist and counters start "
        "empty)",
        i.name, r.error().what());
    filters_.erase(i.name);
    return {};
  }
  if (!r->note.empty())
    log::warn("{}: {}", i.name, r->note);
  audit::Entry("attach", by)
      .set("iface", i.name)
      .set("mode", bpf::to_string(r->mode))
      .set("prog_id", r->prog_id)
      .set("why", "interface back")
      .set("kept", "policy,sources,blocklist,counters")
      .config(c.hash)
      .write();
  auto pinned = PinnedFilter::open(bpffs_, i.name);
  if (!pinned)
    return pinned.error();
  auto &f = filters_.at(i.name) = std::move(*pinned);
  on_ifindex_[i.name] = attached_ifindex(f);
  if (listener_)
    listener_->filter_back(i.name, false);
  done = true;
  return {};
}

Status XdpFeature::attach_new(const core::InterfaceConfig &i, const core::Config &c,
                              const core::PolicyImage &image, const std::string &by, bool back) {
  AttachOptions a;
  a.iface = i.name;
  a.mode = i.xdp_mode;
  a.attach = parse_xdp_attach(i.attach).value_or(XdpAttach::kDirect);
  a.priority = i.priority;
  a.max_sources = i.max_sources;
  a.policy = &image;
  a.event_buffer = c.events.buffer_choice;
  a.drop_sample_interval_ns = c.events.drop_sample_interval_ns;
  auto r = attach(bpffs_, a);
  if (!r)
    return r.error();
  if (!r->note.empty())
    log::warn("{}: {}", i.name, r->note);
  audit::Entry e("attach", by);
  e.set("iface", i.name).set("mode", bpf::to_string(r->mode)).set("prog_id", r->prog_id);
  if (back)
    e.set("why", "interface appeared");
  e.config(c.hash).write();
  auto pinned = PinnedFilter::open(bpffs_, i.name);
  if (!pinned)
    return pinned.error();
  restore_blocks(i.name, pinned->datapath());
  on_ifindex_[i.name] = attached_ifindex(*pinned);
  filters_.emplace(i.name, std::move(*pinned));
  if (listener_)
    listener_->filter_back(i.name, true);
  return {};
}

void XdpFeature::note_gone(const std::string &iface, const core::Config &c) {
  if (!absent_.insert(iface).second)
    return;
  log::warn(
      "{}: the interface is gone: its filter stops until it is back (its maps, blocklist and "
      "per-source state are kept)",
      iface);
  audit::Entry("iface_gone", audit::by_agent()).set("iface", iface).config(c.hash).write();
}

void XdpFeature::links_changed(const core::Config &c, const std::string &by) {
  std::optional<core::PolicyImage> image;
  for (const auto &i : c.interfaces) {
    uint32_t live = util::ifindex_of(i.name);
    auto it = filters_.find(i.name);
    uint32_t at = it != filters_.end() ? attached_ifindex(it->second) : 0;
    auto was = on_ifindex_.find(i.name);
    switch (link_step(live, at, was != on_ifindex_.end() ? was->second : 0)) {
      case IfaceStep::kRunning:
        on_ifindex_[i.name] = live;
        continue;
      case IfaceStep::kAbsent:
        note_gone(i.name, c);
        continue;
      case IfaceStep::kGoingAway:  // its RTM_DELLINK follows
        continue;
      case IfaceStep::kBringUp:
        break;
    }
    if (!image)
      image = core::compile(c);
    if (it != filters_.end())
      if (auto st = it->second.apply(*image); !st)
        log::error("{}: apply the policy: {}", i.name, st.error().what());
    if (auto st = bring_up(i, c, *image, by); !st) {
      if (util::ifindex_of(i.name) == 0)  // gone again meanwhile
        note_gone(i.name, c);
      else  // tried again at the next link event
        log::error("{}: the interface is back, but its filter could not be attached: {}", i.name,
                   st.error().what());
    }
  }
}

}  // namespace bpfgate::agent
