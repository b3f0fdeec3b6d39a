// The publishing half of the fleet (fleet.hpp): this node's blocks found in
// its filters' blocklists at each scan, written to etcd as they appear and
// deleted as they go, within the publish rate.
#include <cmath>
#include <ctime>

#include "features/fleet/fleet.hpp"
#include "features/fleet/metrics.hpp"
#include "features/xdp/blocklist.hpp"
#include "util/log.hpp"

namespace bpfgate::fleet {

namespace {

using KeyBytes = std::vector<uint8_t>;

KeyBytes bytes_of(const bg_lpm_key &k) {
  auto *p = reinterpret_cast<const uint8_t *>(&k);
  return KeyBytes(p, p + sizeof(k));
}

// Within two seconds: the same expiry (the wall and monotonic clocks' offset
// moves what a remaining TTL converts to).
bool same_expiry(int64_t a, int64_t b) {
  return (a == 0) == (b == 0) && std::llabs(a - b) <= 2;
}

}  // namespace

std::map<std::string, FleetEntry> Fleet::local_entries() {
  std::map<std::string, FleetEntry> local;
  std::map<std::string, std::set<KeyBytes>> present;
  double now_s = wall_s();
  uint64_t mono = agent::monotonic_ns();
  for (auto &[name, f] : filters_) {
    auto blocks = agent::list_blocks(f.datapath());
    if (!blocks)
      continue;
    auto &here = present[name];
    for (const auto &b : *blocks) {
      here.insert(bytes_of(b.prefix.key));
      bool manual = b.value.reason == BG_BLOCK_MANUAL, autob = b.value.reason == BG_BLOCK_AUTO;
      if (b.expired || !((manual && cfg_.share_manual) || (autob && cfg_.share_auto)))
        continue;
      FleetEntry e{
          b.prefix, cfg_.node, manual ? "manual" : "auto",
          now_s - static_cast<double>(mono - std::min<uint64_t>(mono, b.value.added_ns)) * 1e-9, 0};
      if (b.value.expires_ns)
        e.expires = static_cast<int64_t>(std::ceil(now_s + b.remaining_ns * 1e-9));
      local.try_emplace(key_of(cfg_.prefix, cfg_.node, e.prefix), e);
    }
  }
  reapply(present);
  std::vector<FleetEntry> singles;
  for (auto &[k, e] : local)
    singles.push_back(e);
  std::map<std::string, FleetEntry> want;
  Aggregation a{cfg_.ipv4_prefix, cfg_.ipv6_prefix, cfg_.aggregate_threshold};
  for (auto &e : aggregate(singles, a, never_all_))
    if (!touches_never_block(e.prefix, never_all_))  // never shared
      want.emplace(key_of(cfg_.prefix, cfg_.node, e.prefix), e);
  // The deny list's prefixes, as they are (never aggregated), without expiry:
  // over a block of the same CIDR.
  if (cfg_.share_deny)
    for (const auto &p : deny_)
      if (!touches_never_block(p, never_all_))
        want.insert_or_assign(key_of(cfg_.prefix, cfg_.node, p),
                              FleetEntry{p, cfg_.node, "deny", deny_at_, 0});
  return want;
}

// Fleet entries a filter lacks (a filter attached anew, a local block of the
// same prefix gone) put back.
void Fleet::reapply(std::map<std::string, std::set<KeyBytes>> &present) {
  int64_t now = static_cast<int64_t>(std::time(nullptr));
  std::vector<std::string> lapsed;  // expired: their leases take the keys away
  for (const auto &[key, e] : desired_)
    if (e.expires && e.expires <= now)
      lapsed.push_back(key);
  for (const auto &key : lapsed)
    drop(key);
  for (const auto &[p, keys] : by_cidr_)
    for (const auto &[name, here] : present)
      if (!here.count(bytes_of(p.key))) {
        apply_entry(in_force(p));
        break;
      }
}

void Fleet::publish_changes(const std::map<std::string, FleetEntry> &want,
                            std::vector<Publish> &out) {
  int64_t now = static_cast<int64_t>(std::time(nullptr));
  uint64_t mono = agent::monotonic_ns();
  // At most kMaxQueued writes wait for etcd (an outage during a storm): past
  // that, changes are held back like those over the rate, and found again by
  // a later scan (the blocklists hold them), so nothing is lost and the
  // queue never grows without bound.
  size_t room = kMaxQueued - std::min(kMaxQueued, sync_->queued());
  bool full = false;
  auto may_write = [&] {
    if (room == 0) {
      full = true;
      return false;
    }
    if (!bucket_.take(mono))
      return false;
    room--;
    return true;
  };
  for (const auto &[key, e] : want) {
    if (state_.withdrawn.count(key))
      continue;  // the fleet took it away: it stays local
    auto it = state_.published.find(key);
    if (it != state_.published.end() && same_expiry(it->second, e.expires))
      continue;
    if (e.expires && e.expires <= now)
      continue;
    if (!may_write()) {
      if (held_.insert(key).second)
        update_stats([](FleetStats &s) { s.held_back++; });
      continue;
    }
    held_.erase(key);
    out.push_back({true, key, encode_value(e), e.expires ? e.expires - now : 0});
    state_.published[key] = e.expires;
    dirty_ = true;
  }
  for (auto it = state_.published.begin(); it != state_.published.end();) {
    bool gone = !want.count(it->first);
    bool lapsed = it->second && it->second <= now;  // its lease removes it
    if (gone && !lapsed && !may_write()) {
      ++it;
      continue;
    }
    if (gone && !lapsed) {
      out.push_back({false, it->first, "", 0});
      deleting_[it->first]++;
    }
    if (gone) {
      held_.erase(it->first);
      it = state_.published.erase(it);
      dirty_ = true;
      continue;
    }
    ++it;
  }
  std::erase_if(held_, [&](const std::string &k) { return !want.count(k); });
  if (full && !said_full_)
    log::warn(
        "fleet: {} writes wait for etcd, the bound: further changes are held back (counted) "
        "until the queue drains, then published from the blocklists",
        kMaxQueued);
  said_full_ = full;
  // A withdrawn block unblocked here: shared again when blocked again.
  if (std::erase_if(state_.withdrawn, [&](const std::string &k) { return !want.count(k); }))
    dirty_ = true;
}

std::map<std::string, uint64_t> Fleet::block_versions() const {
  std::map<std::string, uint64_t> e;
  for (const auto &[name, f] : filters_)
    e[name] = f.datapath().block_version();
  return e;
}

bool Fleet::wants_scan() const {
  return sync_ && (shares_changed_ || !held_.empty() || block_versions() != scanned_versions_);
}

size_t Fleet::scan() {
  if (!sync_)
    return 0;
  // Read before the lists: a change made while they are read moves a version
  // past what is kept, and is scanned for again.
  scanned_versions_ = block_versions();
  shares_changed_ = false;
  std::vector<Publish> out;
  publish_changes(local_entries(), out);
  size_t changes = out.size() + held_.size();
  if (!out.empty())
    sync_->publish(std::move(out));
  save();
  return changes;
}

}  // namespace bpfgate::fleet
