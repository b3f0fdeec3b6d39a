// The fleet's shared blocklist on one node (issue 16), on the agent's loop:
// - publish: the blocks this node learned (manual, auto), found by scanning
//   its filters' blocklists, written once each under the prefix with a lease
//   of their remaining TTL, aggregated to prefixes, at most
//   fleet.max_publish_rate writes a second; its keys deleted when its blocks go;
// - apply: the other nodes' entries, checked on receipt, put into every
//   filter's blocklist as fleet entries (BG_BLOCK_FLEET, origin pinned beside:
//   origins.hpp) while any other node's key of that CIDR is there (the latest
//   expiry of them), taken out when the last goes; a local block of the same
//   prefix is left as it is;
// - deny lists (share.deny_lists): the XDP filter's deny prefixes published
//   as entries of reason "deny", without lease or expiry, deleted when a
//   reload drops them;
// - never-block: the config's fleet.never_block and the fleet's own list
//   (PREFIX@never/, an operator's) together: nothing touching them is
//   published (a key already published is deleted), received entries
//   touching them are refused and kept out (let in again when the list no
//   longer covers them), and those applied are taken out, as an entry of the
//   list arrives;
// - resume: the last applied revision in <state_dir>/fleet (fleet_state.hpp).
// etcd itself is spoken to on FleetSync's threads only.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>

#include "core/config.hpp"
#include "features/fleet/fleet_entry.hpp"
#include "features/fleet/fleet_state.hpp"
#include "features/fleet/fleet_sync.hpp"
#include "features/fleet/origins.hpp"
#include "features/xdp/feature.hpp"

namespace bpfgate::fleet {

EtcdOptions etcd_options(const core::FleetConfig &c);

// Writes waiting for etcd at most (FleetSync's queue); past it, held back.
inline constexpr size_t kMaxQueued = 10000;

class Fleet {
 public:
  // state_path empty: no state kept (a full read at each start).
  // notify_fd: the eventfd the loop watches for the etcd threads' reports.
  // deny: the XDP filter's deny list (published with share.deny_lists).
  Fleet(const core::FleetConfig &c, std::vector<core::Prefix> deny, std::string bpffs,
        std::string state_path, agent::Filters &filters, int notify_fd);
  ~Fleet();
  Status start();
  // What the etcd threads reported.
  void on_reports();
  // This node's blocks published; fleet entries a filter lacks put back.
  // Returns the changes it found: keys written or deleted, and held back.
  size_t scan();
  // Whether a scan has work now: a filter's blocklist changed since the last
  // scan (its block version moved, not by this fleet's own writes), a filter
  // came or went, changes wait for the publish rate, or the shares changed.
  // Otherwise a scan only reconciles (lapsed entries, a filter made anew).
  bool wants_scan() const;
  void save();
  const core::FleetConfig &config() const { return cfg_; }
  // A reload that keeps the same cluster, prefix and node: shares, rate,
  // aggregation and deny list taken at the next scan; never-block at once.
  void reconfigure(const core::FleetConfig &c, std::vector<core::Prefix> deny);

 private:
  void on_snapshot(std::vector<KeyValue> &kvs, int64_t revision);
  void on_event(const WatchEvent &e);
  // A key of the fleet's never-block list put (value) or deleted: the
  // prefix it added to the list, if any.
  std::optional<core::Prefix> on_never(const KeyValue &kv, bool put);
  void on_never_event(const KeyValue &kv, bool put);
  // The effective never-block list anew: applied entries touching `against`
  // (null: the whole list) taken out, entries kept out that it no longer
  // covers let in.
  void never_changed(const std::vector<core::Prefix> *against = nullptr);
  // never_all_ anew from the config's and the fleet's.
  void join_never();
  void load_never();
  // An entry received: checked, ours, or someone else's to apply (returned).
  std::optional<FleetEntry> receive(const KeyValue &kv);
  void refuse(const std::string &key, const std::string &why);
  void on_our_key_gone(const std::string &key);
  void apply_entry(const FleetEntry &e);
  void remove_entry(const core::Prefix &p);
  // desired_, by_cidr_ and keys_ together: a key held (or replaced), a key
  // gone. `pin` false: restored from keys_, which holds it already.
  void hold(const std::string &key, const FleetEntry &e, bool pin = true);
  void drop(const std::string &key);
  // What a CIDR is in force as: of its keys, the one that lasts longest.
  FleetEntry in_force(const core::Prefix &p) const;
  // After its keys changed: applied as in_force says, or removed with the last.
  void settle(const core::Prefix &p);
  // desired_ as before a restart: from keys_, or, where an older bpfgate
  // pinned only the origins (`from_origins`), one key per CIDR from them.
  void restore_desired(bool from_origins);
  void connection(bool up, const std::string &what);
  // What this node blocks now, as the fleet would hold it.
  std::map<std::string, FleetEntry> local_entries();
  void publish_changes(const std::map<std::string, FleetEntry> &want, std::vector<Publish> &out);
  void reapply(std::map<std::string, std::set<std::vector<uint8_t>>> &present);
  // Each filter's blocklist version now (agent::Datapath::block_version).
  std::map<std::string, uint64_t> block_versions() const;
  // A fleet entry put into or taken out of filter `name` by `write`, which
  // returns whether it changed the blocklist: the version that write moves is
  // not news to the next scan (unless something else moved it as well).
  template <typename Write>
  void own_write(const std::string &name, const agent::Datapath &dp, Write &&write);

  core::FleetConfig cfg_;
  std::string bpffs_, state_path_;
  agent::Filters &filters_;
  std::optional<OriginMap> origins_;
  std::optional<KeyMap> keys_;  // desired_ as pinned: what a restart resumes with
  std::unique_ptr<FleetSync> sync_;
  FleetState state_;
  int notify_fd_;
  bool dirty_ = false;
  std::map<std::string, FleetEntry> desired_;              // other nodes' entries in force, by key
  std::map<core::Prefix, std::set<std::string>> by_cidr_;  // their keys, by CIDR
  std::set<std::string> held_;                             // keys held back by the rate now
  std::map<std::string, int> deleting_;                    // our deletes queued, not yet seen back
  TokenBucket bucket_;
  bool connected_ = false, said_down_ = false, said_full_ = false, said_keys_full_ = false;
  uint64_t refusals_logged_ = 0;
  std::vector<core::Prefix> deny_;                    // the XDP filter's deny list
  double deny_at_ = 0;                                // when it was last changed
  std::map<std::string, NeverEntry> never_;           // the fleet's never-block list, by key
  std::vector<core::Prefix> never_all_;               // the config's and the fleet's
  std::map<std::string, FleetEntry> kept_out_;        // other nodes' entries it covers
  bool rescan_ = false;                               // never-block changed: scan at once
  bool shares_changed_ = false;                       // a reload or reconnect: scan when due
  std::map<std::string, uint64_t> scanned_versions_;  // the filters' as the last scan read them
};

}  // namespace bpfgate::fleet
