// The never-block half of the fleet (fleet.hpp): the fleet's own list, an
// operator's, under PREFIX@never/ (the node roles cannot write there), joined
// with the config's fleet.never_block into the list every decision uses.

#include "features/fleet/fleet.hpp"
#include "features/fleet/metrics.hpp"
#include "util/log.hpp"

namespace bpfgate::fleet {

std::optional<core::Prefix> Fleet::on_never(const KeyValue &kv, bool put) {
  update_stats([](FleetStats &s) { s.received++; });
  bool had = never_.erase(kv.key) > 0;
  state_.never.erase(kv.key);
  dirty_ = true;
  if (!put) {
    if (had)
      log::info("fleet: never-block {} left the fleet's list",
                kv.key.substr(never_prefix(cfg_.prefix).size()));
    return std::nullopt;
  }
  auto e = decode_never(cfg_.prefix, kv.key, kv.value, wall_s());
  if (e && never_.size() >= kMaxNever)
    e = make_error(ENOSPC, "the fleet's never-block list holds {} already", kMaxNever);
  if (!e) {
    refuse(kv.key, e.error().what());
    return std::nullopt;
  }
  never_[kv.key] = *e;
  state_.never[kv.key] = kv.value;
  log::info("fleet: never-block {} (by {}) in the fleet's list", core::format_prefix(e->prefix),
            e->by);
  return e->prefix;
}

// The list kept in <state_dir>/fleet: a restart resuming from its revision
// sees neither the list nor the entries it kept out again.
void Fleet::load_never() {
  double now = wall_s();
  for (const auto &[key, value] : state_.never)
    if (auto e = decode_never(cfg_.prefix, key, value, now))
      never_[key] = *e;
  for (const auto &[key, value] : state_.kept_out)
    if (auto e = decode_entry(cfg_.prefix, key, value, now))
      kept_out_[key] = *e;
  never_changed();
}

void Fleet::on_never_event(const KeyValue &kv, bool put) {
  // Only what an entry added touches can go out (the rest was checked).
  std::vector<core::Prefix> added;
  if (auto p = on_never(kv, put))
    added.push_back(*p);
  never_changed(&added);
}

void Fleet::join_never() {
  never_all_ = cfg_.never_block;
  for (const auto &[key, n] : never_)
    never_all_.push_back(n.prefix);
  update_stats([&](FleetStats &s) {
    s.never_fleet = never_.size();
    s.never_config = cfg_.never_block.size();
  });
  rescan_ = true;
}

void Fleet::never_changed(const std::vector<core::Prefix> *against) {
  join_never();
  // Out: the applied entries it touches, kept to be let in again.
  const auto &check = against ? *against : never_all_;
  std::set<core::Prefix> settle_these;
  std::vector<std::string> out, in;
  for (const auto &[key, e] : desired_)
    if (touches_never_block(e.prefix, check))
      out.push_back(key);
  for (const auto &key : out) {
    const FleetEntry &e = desired_.at(key);
    kept_out_[key] = e;
    FleetEntry saved = e;
    if (saved.reason == "fleet")  // restored from the origins map, which keeps no reason
      saved.reason = "manual";
    state_.kept_out[key] = encode_value(saved);
    settle_these.insert(e.prefix);
    drop(key);
  }
  // In: those kept out that it covers no more (and that last still).
  int64_t now = static_cast<int64_t>(wall_s());
  for (auto it = kept_out_.begin(); it != kept_out_.end();) {
    const FleetEntry &e = it->second;
    bool lapsed = e.expires && e.expires <= now;
    if (!lapsed && touches_never_block(e.prefix, never_all_)) {
      ++it;
      continue;
    }
    if (!lapsed) {
      hold(it->first, e);
      settle_these.insert(e.prefix);
      in.push_back(it->first);
    }
    state_.kept_out.erase(it->first);
    it = kept_out_.erase(it);
  }
  for (const auto &p : settle_these)
    settle(p);
  if (!out.empty() || !in.empty()) {
    log::info(
        "fleet: the never-block list ({} of the config, {} of the fleet): {} fleet entries it "
        "touches taken out, {} it no longer covers let in",
        cfg_.never_block.size(), never_.size(), out.size(), in.size());
    dirty_ = true;
  }
  update_stats([&](FleetStats &s) {
    s.applied += settle_these.size();
    s.entries = desired_.size();
  });
}

}  // namespace bpfgate::fleet
