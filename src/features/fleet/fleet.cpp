#include "features/fleet/fleet.hpp"

#include <algorithm>
#include <cstring>
#include <ctime>
#include <fstream>

#include "bpf/pin.hpp"
#include "features/fleet/metrics.hpp"
#include "features/xdp/blocklist.hpp"
#include "util/audit.hpp"
#include "util/log.hpp"

namespace bpfgate::fleet {

namespace {

std::string first_line(const std::string &path) {
  std::ifstream in(path);
  std::string line;
  std::getline(in, line);
  return line;
}

}  // namespace

EtcdOptions etcd_options(const core::FleetConfig &c) {
  EtcdOptions o;
  o.endpoints = c.endpoints;
  if (c.tls) {
    o.ca = c.tls->ca;
    o.cert = c.tls->cert;
    o.key = c.tls->key;
  }
  if (c.auth) {
    o.user = c.auth->user;
    o.password = first_line(c.auth->password_file);
  }
  return o;
}

Fleet::Fleet(const core::FleetConfig &c, std::vector<core::Prefix> deny, std::string bpffs,
             std::string state_path, agent::Filters &filters, int notify_fd)
    : cfg_(c),
      bpffs_(std::move(bpffs)),
      state_path_(std::move(state_path)),
      filters_(filters),
      notify_fd_(notify_fd),
      bucket_(c.max_publish_rate),
      deny_(std::move(deny)),
      deny_at_(wall_s()),
      never_all_(c.never_block) {}

Fleet::~Fleet() {
  sync_.reset();
  save();
  update_stats([](FleetStats &s) { s = FleetStats{}; });
}

Status Fleet::start() {
  bool had_origins = bpf::exists(origins_path(bpffs_, cfg_.node));
  auto m = open_or_create_origins(bpffs_, cfg_.node);
  if (!m)
    return m.error().context("fleet");
  origins_ = std::move(*m);
  bool keys_made = false;
  auto k = open_or_create_keys(bpffs_, cfg_.node, keys_made);
  if (!k)
    return k.error().context("fleet");
  keys_ = std::move(*k);
  if (!state_path_.empty()) {
    auto s = read_state(state_path_);
    if (!s)
      log::warn("fleet: {}", s.error().what());
    else if (s->prefix == cfg_.prefix)
      state_ = std::move(*s);
  }
  // bpffs was emptied (a reboot): what was applied is gone, so read everything again.
  if (!had_origins)
    state_.revision = 0;
  state_.prefix = cfg_.prefix;
  restore_desired(keys_made);
  load_never();
  log::info("fleet: node {} on {} (prefix {}), {}", cfg_.node, fmt::join(cfg_.endpoints, ", "),
            cfg_.prefix,
            state_.revision ? fmt::format("resuming after revision {}", state_.revision)
                            : std::string("reading every entry first"));
  sync_ = std::make_unique<FleetSync>(etcd_options(cfg_), cfg_.prefix,
                                      state_.revision ? state_.revision + 1 : 0, notify_fd_);
  update_stats([&](FleetStats &s) {
    s = FleetStats{};
    s.enabled = true;
    s.node = cfg_.node;
    s.revision = state_.revision;
    s.entries = desired_.size();
    s.never_fleet = never_.size();
    s.never_config = cfg_.never_block.size();
  });
  return {};
}

void Fleet::reconfigure(const core::FleetConfig &c, std::vector<core::Prefix> deny) {
  cfg_ = c;
  bucket_.set_rate(c.max_publish_rate);
  if (deny != deny_)
    deny_at_ = wall_s();
  deny_ = std::move(deny);
  shares_changed_ = true;
  never_changed();
}

// The entries applied before a restart, from the pinned origins.
void Fleet::restore_desired(bool from_origins) {
  auto entry = [](const bg_lpm_key &k, const bg_fleet_origin &o) {
    return FleetEntry{core::prefix_of(k), std::string(o.node, strnlen(o.node, sizeof(o.node))),
                      "fleet", static_cast<double>(o.at_ms) / 1000, o.expires};
  };
  if (from_origins) {
    auto all = origins_->dump();
    if (!all)
      return;
    for (const auto &[k, o] : *all) {
      FleetEntry e = entry(k, o);
      hold(key_of(cfg_.prefix, e.node, e.prefix), e);
    }
    return;
  }
  auto all = keys_->dump();
  if (!all) {
    log::warn("fleet: read {}: {} (a restart reads every entry again)", BG_PIN_FLEET_KEYS,
              all.error().what());
    state_.revision = 0;
    return;
  }
  for (const auto &[k, o] : *all) {
    bg_lpm_key lk{};
    lk.prefixlen = k.prefixlen;
    std::memcpy(lk.addr, k.addr, sizeof(lk.addr));
    FleetEntry e = entry(lk, o);
    hold(key_of(cfg_.prefix, e.node, e.prefix), e, false);
  }
}

void Fleet::hold(const std::string &key, const FleetEntry &e, bool pin) {
  desired_.insert_or_assign(key, e);
  by_cidr_[e.prefix].insert(key);
  if (pin)
    if (auto st =
            keys_->update(make_fleet_key(e.prefix, e.node), make_origin(e.node, e.at, e.expires));
        !st && !said_keys_full_) {
      log::warn("fleet: pin {} of {}: {} (a restart may not know every key of it)",
                core::format_prefix(e.prefix), e.node, st.error().what());
      said_keys_full_ = true;
    }
}

void Fleet::drop(const std::string &key) {
  auto it = desired_.find(key);
  if (it == desired_.end())
    return;
  (void)keys_->erase(make_fleet_key(it->second.prefix, it->second.node));
  auto c = by_cidr_.find(it->second.prefix);
  if (c != by_cidr_.end() && c->second.erase(key) && c->second.empty())
    by_cidr_.erase(c);
  desired_.erase(it);
}

FleetEntry Fleet::in_force(const core::Prefix &p) const {
  FleetEntry best;
  bool first = true;
  for (const auto &key : by_cidr_.at(p)) {
    const FleetEntry &e = desired_.at(key);
    bool longer = best.expires != 0 && (e.expires == 0 || e.expires > best.expires);
    if (first || longer)
      best = e;
    first = false;
  }
  return best;
}

void Fleet::settle(const core::Prefix &p) {
  if (by_cidr_.count(p))
    apply_entry(in_force(p));
  else
    remove_entry(p);
}

void Fleet::save() {
  if (!dirty_ || state_path_.empty())
    return;
  if (auto st = write_state(state_path_, state_); !st) {
    log::warn("fleet: {} (a restart reads every entry again)", st.error().what());
    return;
  }
  dirty_ = false;
}

void Fleet::connection(bool up, const std::string &what) {
  if (up && !connected_)
    log::info("fleet: watching {} on {} from revision {}", cfg_.prefix, what, state_.revision + 1);
  if (!up && !said_down_)
    log::warn(
        "fleet: etcd: {}; filtering goes on with the entries in force, retrying with backoff "
        "(said once until it is back)",
        what);
  if (up && !connected_)
    shares_changed_ = true;  // what was held back while it was away: published at the next scan
  connected_ = up;
  said_down_ = !up;
  update_stats([&](FleetStats &s) {
    s.connected = up;
    (up ? s.endpoint : s.last_error) = what;
  });
}

void Fleet::on_reports() {
  if (!sync_)
    return;
  for (auto &r : sync_->take()) {
    switch (r.kind) {
      case Report::kSnapshot:
        on_snapshot(r.kvs, r.revision);
        break;
      case Report::kEvents:
        for (const auto &e : r.events)
          on_event(e);
        state_.revision = std::max(state_.revision, r.revision);
        dirty_ = true;
        break;
      case Report::kConnected:
        connection(true, r.endpoint);
        break;
      case Report::kDown:
        connection(false, r.error);
        break;
      case Report::kPublished:
        update_stats([&](FleetStats &s) { s.published += r.count; });
        break;
    }
  }
  update_stats([&](FleetStats &s) {
    s.revision = state_.revision;
    s.entries = desired_.size();
    s.queued = sync_->queued();
  });
  if (std::exchange(rescan_, false))
    scan();  // a never-block entry came or went: withdraw (or publish) at once
  save();
}

void Fleet::refuse(const std::string &key, const std::string &why) {
  update_stats([](FleetStats &s) { s.refused++; });
  // The first ones said, then one in a hundred: a hostile writer cannot flood the log.
  if (refusals_logged_++ < 5 || refusals_logged_ % 100 == 0)
    log::warn("fleet: refused {}: {} (not applied; {} refused so far)", key.substr(0, kMaxKeyBytes),
              why, refusals_logged_);
}

std::optional<FleetEntry> Fleet::receive(const KeyValue &kv) {
  update_stats([](FleetStats &s) { s.received++; });
  if (kept_out_.erase(kv.key))
    state_.kept_out.erase(kv.key);
  auto e = decode_entry(cfg_.prefix, kv.key, kv.value, wall_s());
  if (!e) {
    refuse(kv.key, e.error().what());
    return std::nullopt;
  }
  if (e->node == cfg_.node) {  // ours, as this node wrote it
    state_.published.try_emplace(kv.key, e->expires);
    return std::nullopt;
  }
  if (touches_never_block(e->prefix, never_all_)) {
    refuse(kv.key, "it touches a never-block prefix (fleet.never_block or the fleet's list)");
    kept_out_[kv.key] = *e;  // let in if the list stops covering it
    state_.kept_out[kv.key] = kv.value;
    dirty_ = true;
    return std::nullopt;
  }
  return *e;
}

void Fleet::on_event(const WatchEvent &ev) {
  if (is_never_key(cfg_.prefix, ev.kv.key)) {
    on_never_event(ev.kv, ev.put);
    return;
  }
  if (ev.put) {
    auto e = receive(ev.kv);
    if (!e)
      return;
    if (e->expires && e->expires <= static_cast<int64_t>(wall_s()))
      return;  // expired on the way: its lease removes the key
    hold(ev.kv.key, *e);
    apply_entry(in_force(e->prefix));
    double lag = std::max(0.0, wall_s() - e->at);
    update_stats([&](FleetStats &s) {
      s.applied++;
      s.observe_lag(lag);
    });
    return;
  }
  update_stats([](FleetStats &s) { s.received++; });
  if (kept_out_.erase(ev.kv.key)) {
    state_.kept_out.erase(ev.kv.key);
    dirty_ = true;
  }
  on_our_key_gone(ev.kv.key);
  auto it = desired_.find(ev.kv.key);
  if (it == desired_.end())
    return;
  core::Prefix p = it->second.prefix;
  drop(ev.kv.key);
  settle(p);  // out with its last key; else as the keys left say
  update_stats([](FleetStats &s) { s.applied++; });
}

// A key of this node's deleted: by itself (a delete it queued), by its lease,
// or by someone else: an operator's `fleet unblock`. Then the local block
// stays local: not published again while it lasts here (withdrawn).
void Fleet::on_our_key_gone(const std::string &key) {
  bool own = false;
  if (auto d = deleting_.find(key); d != deleting_.end()) {
    own = true;
    if (--d->second == 0)
      deleting_.erase(d);
  }
  auto pub = state_.published.find(key);
  if (pub == state_.published.end() || own)
    return;  // own with a put queued again after it: that put restores it
  int64_t now = static_cast<int64_t>(wall_s());
  bool lapsed = pub->second && pub->second <= now + 2;  // its lease's doing
  if (!lapsed) {
    state_.withdrawn.insert(key);
    log::info(
        "fleet: {} was deleted by another (an operator's fleet unblock): this node's own block "
        "stays here, not shared again until it is unblocked here",
        key);
  }
  state_.published.erase(pub);
  dirty_ = true;
}

void Fleet::on_snapshot(std::vector<KeyValue> &kvs, int64_t revision) {
  std::map<std::string, FleetEntry> next;
  std::set<std::string> ours;
  // The never-block list first: what it covers is kept out of what follows.
  never_.clear();
  kept_out_.clear();
  state_.never.clear();
  state_.kept_out.clear();
  for (const auto &kv : kvs)
    if (is_never_key(cfg_.prefix, kv.key))
      (void)on_never(kv, true);
  join_never();  // what it touches is not in `next`: removed below
  for (const auto &kv : kvs) {
    if (is_never_key(cfg_.prefix, kv.key))
      continue;
    if (auto e = receive(kv))
      next[kv.key] = *e;
    else if (state_.published.count(kv.key))
      ours.insert(kv.key);
  }
  // Ours no longer in etcd (expired, deleted): published again if still blocked.
  std::erase_if(state_.published, [&](const auto &p) { return !ours.count(p.first); });
  auto before = std::move(by_cidr_);
  for (const auto &[key, e] : desired_)
    if (!next.count(key))
      (void)keys_->erase(make_fleet_key(e.prefix, e.node));
  desired_.clear();
  by_cidr_.clear();
  for (const auto &[key, e] : next)
    hold(key, e);
  size_t changed = 0;
  for (const auto &[p, keys] : before)
    if (!by_cidr_.count(p)) {
      remove_entry(p);
      changed++;
    }
  for (const auto &[p, keys] : by_cidr_) {
    apply_entry(in_force(p));
    changed++;
  }
  state_.revision = revision;
  dirty_ = true;
  log::info("fleet: read {} entries at revision {}: {} of other nodes in force", kvs.size(),
            revision, desired_.size());
  update_stats([&](FleetStats &s) { s.applied += changed; });
}

template <typename Write>
void Fleet::own_write(const std::string &name, const agent::Datapath &dp, Write &&write) {
  uint64_t before = dp.block_version();
  if (!write())
    return;
  // One bump, from the value the last scan saw: the blocklist is as that
  // scan saw it but for this entry, which is not this node's to publish.
  auto seen = scanned_versions_.find(name);
  if (seen != scanned_versions_.end() && seen->second == before && dp.block_version() == before + 1)
    seen->second = before + 1;
}

void Fleet::apply_entry(const FleetEntry &e) {
  int64_t now = static_cast<int64_t>(wall_s());
  if (e.expires && e.expires <= now)
    return;
  uint64_t ttl_ns = e.expires ? static_cast<uint64_t>(e.expires - now) * 1'000'000'000ULL : 0;
  for (auto &[name, f] : filters_) {
    auto &dp = f.datapath();
    auto cur = dp.blocklist().lookup(e.prefix.key);
    if (cur && *cur && (*cur)->reason != BG_BLOCK_FLEET)
      continue;  // this node's own block of it stays as it is
    Status st;
    own_write(name, dp, [&] {
      st = agent::block(dp, e.prefix, ttl_ns, BG_BLOCK_FLEET);
      return static_cast<bool>(st);
    });
    if (!st)
      log::warn("{}: fleet entry {} from {}: {}", name, core::format_prefix(e.prefix), e.node,
                st.error().what());
    else if (!(cur && *cur))
      audit::Entry("block", "fleet:" + e.node)
          .set("iface", name)
          .set("prefix", core::format_prefix(e.prefix))
          .set("reason", "fleet")
          .set("ttl", ttl_ns ? std::to_string(ttl_ns / 1'000'000'000ULL) + "s" : "none")
          .write();
  }
  (void)origins_->update(e.prefix.key, make_origin(e.node, e.at, e.expires));
}

void Fleet::remove_entry(const core::Prefix &p) {
  for (auto &[name, f] : filters_) {
    auto &dp = f.datapath();
    auto cur = dp.blocklist().lookup(p.key);
    if (!cur || !*cur || (*cur)->reason != BG_BLOCK_FLEET)
      continue;  // a local block of it stays
    bool gone = false;
    own_write(name, dp, [&] {
      auto r = agent::unblock(dp, p);
      return gone = r && *r;
    });
    if (gone)
      audit::Entry("unblock", "fleet")
          .set("iface", name)
          .set("prefix", core::format_prefix(p))
          .set("why", "its fleet key went")
          .write();
  }
  (void)origins_->erase(p.key);
}

}  // namespace bpfgate::fleet
