// The XDP filter as the agent runs it (features/feature.hpp): one filter per
// interface of the config, attached, adopted from its pins, waited for while
// its interface is absent and attached again when it is back; the policy
// applied to each; the sweep (expiry, blocks logged and audited, full tables
// said); the manual blocks kept in the state directory (block_store.hpp).
#pragma once

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "core/policy.hpp"
#include "features/feature.hpp"
#include "features/xdp/block_store.hpp"
#include "features/xdp/blocklist.hpp"
#include "features/xdp/filter.hpp"
#include "features/xdp/source_sweep.hpp"

namespace bpfgate::agent {

using Filters = std::map<std::string, PinnedFilter>;

// What another feature hears of the filters (the observer: their event
// buffers and probes follow them).
class FilterListener {
 public:
  virtual ~FilterListener() = default;
  // The filter of `iface` was attached again: new_maps when it is a new
  // filter, not the pinned one again.
  virtual void filter_back(const std::string &iface, bool new_maps) = 0;
  // After each sweep of a filter.
  virtual void swept(const std::string &iface, const Datapath &dp, const SweepReport &r) = 0;
};

class XdpFeature final : public Feature {
 public:
  explicit XdpFeature(const FeatureContext &ctx) : bpffs_(ctx.bpffs) {}
  const char *name() const override { return "xdp"; }
  void check(const core::Config &c, bool absent_interfaces_ok,
             std::vector<std::string> &errors) const override;
  Status prepare(const core::Config &c) override;
  Status converge(const core::Config *running, const core::Config &next,
                  const std::string &by) override;
  void sweep(const core::Config &running) override;
  void links_changed(const core::Config &running, const std::string &by) override;
  void stop(const core::Config &running, bool keep, const std::string &by) override;

  const Filters &filters() const { return filters_; }
  // The fleet (features/fleet) puts the other nodes' entries into them.
  Filters &filters() { return filters_; }
  void listen(FilterListener *l) { listener_ = l; }

 private:
  // One interface of the config: adopt, apply, attach; an absent one is
  // waited for (absent_), with a warning.
  Status converge_iface(const core::InterfaceConfig &i, const core::Config &c,
                        const core::PolicyImage &image, const std::string &by);
  // Interfaces no longer in the config are detached.
  void detach_unwanted(const core::Config &c, const std::string &by);
  // The interface's bypass switch as its config says (bypass: on|off), where
  // it says so; audited when it changes.
  void apply_bypass(const core::InterfaceConfig &i, const core::Config &c, const std::string &by);
  // An adopted filter attached directly runs this version's program: swapped
  // in place (replace.hpp) when the running one differs; a failure leaves the
  // running program and is logged.
  void upgrade_adopted(const std::string &iface, const core::Config &c, const std::string &by);
  // The interface is there and its filter is not attached to it: attach the
  // pinned filter again (reattach) or, where that cannot be, a new one.
  Status bring_up(const core::InterfaceConfig &i, const core::Config &c,
                  const core::PolicyImage &image, const std::string &by);
  Status reattach_pinned(const core::InterfaceConfig &i, const core::Config &c,
                         const std::string &by, bool &done);
  Status attach_new(const core::InterfaceConfig &i, const core::Config &c,
                    const core::PolicyImage &image, const std::string &by, bool back);
  void note_gone(const std::string &iface, const core::Config &c);
  // One filter's sweep: expired entries, released blocks, new blocks.
  void sweep_one(const std::string &name, PinnedFilter &f, const core::Config &c);
  void audit_new_blocks(const std::string &name, Datapath &dp);
  // Refusals of full tables (autoblocks_failed, proofs_refused), said once a
  // sweep; at the first sweep, all since load.
  void log_refusals(const std::string &iface, Datapath &dp);
  // Manual blocks kept in <state_dir>/blocks (block_store.hpp): read at
  // start, put back into a filter attached anew, written when they change.
  void load_saved_blocks(const core::Config &c);
  void restore_blocks(const std::string &iface, Datapath &dp);
  void save_blocks(const core::Config &c);

  std::string bpffs_;
  Filters filters_;
  FilterListener *listener_ = nullptr;
  std::set<std::string> absent_;  // interfaces of the config not there now
  // The interface index each filter was last seen attached to: a device
  // being deleted keeps its name a moment after its XDP link is detached.
  std::map<std::string, uint32_t> on_ifindex_;
  std::map<std::string, uint64_t> known_blocks_;  // what was logged as blocked
  std::map<std::string, StatTotals> refusals_seen_;
  std::string blocks_path_;        // empty: state_dir off
  std::vector<SavedBlock> saved_;  // the manual blocks as the file holds them
  std::string save_error_;         // the last write's error, said once
  // The blocklists' versions (Datapath::block_version) when saved_ was last
  // found up to date: unchanged, they need not be read again.
  std::map<std::string, uint64_t> saved_versions_;
};

}  // namespace bpfgate::agent
