#include "features/xdp/feature.hpp"

#include <tuple>

#include "bpf/pin.hpp"
#include "core/duration.hpp"
#include "features/xdp/blocklist.hpp"
#include "features/xdp/replace.hpp"
#include "util/audit.hpp"
#include "util/log.hpp"

namespace bpfgate::agent {

void XdpFeature::check(const core::Config &c, bool absent_interfaces_ok,
                       std::vector<std::string> &errors) const {
  if (absent_interfaces_ok)
    return;
  for (const auto &i : c.interfaces)
    check_interface(c, i.line, "interface", i.name, errors);
}

Status XdpFeature::prepare(const core::Config &c) {
  load_saved_blocks(c);
  return {};
}

Status XdpFeature::converge(const core::Config *running, const core::Config &c,
                            const std::string &by) {
  core::PolicyImage image = core::compile(c);
  for (const auto &i : c.interfaces) {
    if (auto st = converge_iface(i, c, image, by); !st)
      return st;
    apply_bypass(i, c, by);
  }
  detach_unwanted(c, by);
  if (running && c.state_dir != running->state_dir)
    log::warn(
        "agent.state_dir is now '{}': that takes effect when the agent restarts (the "
        "manual blocks stay in {})",
        c.state_dir.empty() ? "off" : c.state_dir, blocks_path_.empty() ? "no file" : blocks_path_);
  return {};
}

void XdpFeature::detach_unwanted(const core::Config &c, const std::string &by) {
  std::set<std::string> wanted;
  for (const auto &i : c.interfaces)
    wanted.insert(i.name);
  std::erase_if(absent_, [&](const std::string &n) { return !wanted.count(n); });
  for (auto it = filters_.begin(); it != filters_.end();) {
    if (wanted.count(it->first)) {
      ++it;
      continue;
    }
    std::string name = it->first;
    it = filters_.erase(it);
    absent_.erase(name);
    if (auto st = detach(bpffs_, name); !st)
      log::warn("{}: {}", name, st.error().what());
    else
      audit::Entry("detach", by)
          .set("iface", name)
          .set("why", "no longer in the config")
          .config(c.hash)
          .write();
  }
}

void XdpFeature::apply_bypass(const core::InterfaceConfig &i, const core::Config &c,
                              const std::string &by) {
  auto it = filters_.find(i.name);
  if (!i.bypass || it == filters_.end())
    return;  // no bypass key: the switch is left to `bpfgate bypass`
  auto cfg = it->second.datapath().config();
  if (cfg && (cfg->bypass != 0) == *i.bypass)
    return;
  if (auto st = it->second.set_bypass(*i.bypass); !st) {
    log::error("{}:{}: bypass {}: {}", c.path, i.line, *i.bypass ? "on" : "off", st.error().what());
    return;
  }
  if (*i.bypass)
    log::warn("{}: BYPASS on (config): every frame passes unfiltered", i.name);
  else
    log::info("{}: bypass off (config): filtering", i.name);
  audit::Entry("bypass", by)
      .set("iface", i.name)
      .set("bypass", *i.bypass ? "on" : "off")
      .config(c.hash)
      .write();
}

void XdpFeature::upgrade_adopted(const std::string &iface, const core::Config &c,
                                 const std::string &by) {
  if (filters_.at(iface).attach() != XdpAttach::kDirect)
    return;  // libxdp's dispatcher replaces its programs itself
  auto r = replace_program(bpffs_, iface, false);
  if (!r) {
    log::warn("{}: the running filter program stays (this version's could not replace it: {})",
              iface, r.error().what());
    return;
  }
  if (!r->replaced)
    return;
  // Opened again: the new program may have made maps the old pins lacked.
  if (auto again = PinnedFilter::open(bpffs_, iface)) {
    filters_.erase(iface);
    filters_.emplace(iface, std::move(*again));
  }
  log::info("{}: replaced the running filter program (id {}) by this version's (id {}) in place",
            iface, r->old_prog_id, r->new_prog_id);
  audit::Entry("replace", by)
      .set("iface", iface)
      .set("old_prog_id", r->old_prog_id)
      .set("prog_id", r->new_prog_id)
      .config(c.hash)
      .write();
}

void XdpFeature::sweep(const core::Config &running) {
  for (auto &[name, f] : filters_)
    sweep_one(name, f, running);
  save_blocks(running);
}

void XdpFeature::sweep_one(const std::string &name, PinnedFilter &f, const core::Config &c) {
  log_refusals(name, f.datapath());
  auto r = agent::sweep(f.datapath(), c.source_idle_ns);
  if (!r) {
    log::warn("{}: sweep: {}", name, r.error().what());
    return;
  }
  if (listener_)
    listener_->swept(name, f.datapath(), *r);
  for (const auto &b : r->released) {
    audit::Entry("unblock", audit::by_agent())
        .set("iface", name)
        .set("prefix", core::format_prefix(b.prefix))
        .set("why", "expired")
        .set("reason", to_string(static_cast<bg_block_reason>(b.value.reason)))
        .set("drops", b.value.drops)
        .write();
    known_blocks_.erase(name + " " + core::format_prefix(b.prefix));
  }
  if (r->sources_removed || r->known_removed)
    log::debug("{}: swept {} idle per-source entries of {} and {} known of {}", name,
               r->sources_removed, r->sources_seen, r->known_removed, r->known_seen);
  audit_new_blocks(name, f.datapath());
}

void XdpFeature::audit_new_blocks(const std::string &name, Datapath &dp) {
  auto blocks = list_blocks(dp);
  if (!blocks)
    return;
  for (const auto &b : *blocks) {
    std::string id = name + " " + core::format_prefix(b.prefix);
    if (b.expired || !known_blocks_.emplace(id, b.value.added_ns).second)
      continue;
    if (b.value.reason == BG_BLOCK_FLEET)
      continue;  // the fleet's (features/fleet), said and audited there
    // A manual block was audited by whoever made it (the CLI); an automatic
    // one is the datapath's, found here.
    if (b.value.reason == BG_BLOCK_MANUAL) {
      log::info("{}: blocked {} (manual{})", name, core::format_prefix(b.prefix),
                b.value.expires_ns ? ", for " + core::format_duration_ns(b.remaining_ns) : "");
      continue;
    }
    audit::Entry("block", audit::by_datapath())
        .set("iface", name)
        .set("prefix", core::format_prefix(b.prefix))
        .set("reason", to_string(static_cast<bg_block_reason>(b.value.reason)))
        .set("ttl", b.value.expires_ns ? core::format_duration_ns(b.remaining_ns) : "none")
        .write();
  }
}

void XdpFeature::log_refusals(const std::string &iface, Datapath &dp) {
  auto now = dp.stats();
  if (!now)
    return;
  // What the datapath could not add to a full table: counted there (`status`,
  // /metrics), said here once a sweep; at the first sweep, all since load.
  auto it = refusals_seen_.try_emplace(iface, StatTotals{}).first;
  auto blocklist = bpf::map_info(dp.blocklist().fd());
  auto known = dp.max_known();
  const std::tuple<bg_stat, const char *, uint32_t> full[] = {
      {BG_STAT_AUTOBLOCK_FAILED, "auto-blocks refused: the blocklist is full",
       blocklist ? blocklist->max_entries : 0},
      {BG_STAT_KNOWN_FULL, "proofs refused: the known table is full", known ? *known : 0},
  };
  for (const auto &[stat, what, max] : full)
    if ((*now)[stat] > it->second[stat])
      log::warn("{}: {} {} ({} entries; {} since the filter was loaded)", iface,
                (*now)[stat] - it->second[stat], what, max, (*now)[stat]);
  it->second = *now;
}

void XdpFeature::stop(const core::Config &, bool keep, const std::string &by) {
  for (auto it = filters_.begin(); it != filters_.end();) {
    std::string name = it->first;
    it = filters_.erase(it);
    if (keep)
      continue;
    if (auto st = detach(bpffs_, name); !st)
      log::warn("{}: {}", name, st.error().what());
    else
      audit::Entry("detach", by).set("iface", name).set("why", "agent stopping").write();
  }
}

}  // namespace bpfgate::agent
