#include "features/xdp/blocklist.hpp"

#include "core/policy.hpp"

#include <cerrno>
#include <ctime>
#include <string>

#include "features/xdp/source_sweep.hpp"

namespace bpfgate::agent {

uint64_t monotonic_ns() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1'000'000'000ULL + static_cast<uint64_t>(ts.tv_nsec);
}

std::string to_string(bg_block_reason r) {
  switch (r) {
    case BG_BLOCK_MANUAL:
      return "manual";
    case BG_BLOCK_AUTO:
      return "auto";
    case BG_BLOCK_FLEET:
      return "fleet";
  }
  return "unknown";
}

Status block(Datapath &dp, const core::Prefix &p, uint64_t ttl_ns, uint32_t reason) {
  // One blocklist entry is one trie key: an IPv6 prefix holding the range
  // IPv4 sources are kept in would block every IPv4 source too.
  if (core::covers_ipv4(p))
    return make_error(EINVAL,
                      "{} holds ::ffff:0:0/96, where IPv4 sources are kept: it would block IPv4 "
                      "too; block IPv6 and IPv4 ranges apart (e.g. 2000::/3, 0.0.0.0/0)",
                      core::format_prefix(p));
  uint64_t now = monotonic_ns();
  bg_block b{};
  b.added_ns = now;
  b.expires_ns = ttl_ns ? now + ttl_ns : 0;
  b.reason = reason;
  if (auto st = dp.blocklist().update(p.key, b); !st) {
    // The trie refuses a new key when it holds max_entries (ENOSPC).
    if (st.error().err() != ENOSPC)
      return st;
    auto info = bpf::map_info(dp.blocklist().fd());
    return make_error(ENOSPC,
                      "the blocklist is full ({} entries): {} was not blocked; unblock entries "
                      "(`bpfgate list` shows them) or wait for blocks with a TTL to expire",
                      info ? std::to_string(info->max_entries) : "all its", core::format_prefix(p));
  }
  return dp.blocklist_added();
}

Result<bool> unblock(Datapath &dp, const core::Prefix &p) {
  auto gone = dp.blocklist().erase(p.key);
  if (gone && *gone)
    if (auto st = dp.blocklist_removed(); !st)
      return st.error();
  return gone;
}

Result<std::vector<BlockEntry>> list_blocks(const Datapath &dp) {
  auto all = dp.blocklist().dump();
  if (!all)
    return all.error();
  uint64_t now = monotonic_ns();
  std::vector<BlockEntry> out;
  out.reserve(all->size());
  for (const auto &[k, v] : *all) {
    BlockEntry e{core::prefix_of(k), v, 0, false};
    if (v.expires_ns) {
      e.expired = v.expires_ns <= now;
      e.remaining_ns = e.expired ? 0 : v.expires_ns - now;
    }
    out.push_back(e);
  }
  return out;
}

Result<SweepReport> sweep(Datapath &dp, uint64_t idle_ns) {
  SweepReport r;
  auto blocks = list_blocks(dp);
  if (!blocks)
    return blocks.error();
  for (const auto &b : *blocks) {
    if (!b.expired)
      continue;
    auto gone = dp.blocklist().erase(b.prefix.key);
    if (!gone)
      return gone.error();
    if (*gone)
      r.released.push_back(b);
  }
  if (!r.released.empty())
    if (auto st = dp.blocklist_removed(); !st)
      return st.error();
  if (idle_ns == 0)
    return r;
  uint64_t now = monotonic_ns();
  uint64_t cutoff = now > idle_ns ? now - idle_ns : 0;
  if (SourceSweeper *k = dp.source_sweeper()) {
    auto pass = k->run(cutoff);
    if (!pass)
      return pass.error();
    r.sources_seen += pass->sources_seen;
    r.sources_removed += pass->sources_removed;
    r.known_seen += pass->known_seen;
    r.known_removed += pass->known_removed;
    return r;
  }
  if (auto st = sweep_idle_from_user_space(dp, cutoff, r); !st)
    return st.error();
  return r;
}

Status sweep_idle_from_user_space(Datapath &dp, uint64_t cutoff_ns, SweepReport &r) {
  // Idle entries of a table, read out and deleted in batches.
  auto sweep_map = [&](bpf::Map<bg_src_key, bg_src_state> &m, size_t &seen,
                       size_t &removed) -> Status {
    auto all = m.dump();
    if (!all)
      return all.error();
    seen += all->size();
    std::vector<bg_src_key> idle;
    for (const auto &[k, v] : *all)
      if (v.last_seen_ns < cutoff_ns)
        idle.push_back(k);
    if (idle.empty())
      return {};
    auto n = m.erase_batch(idle);
    if (!n)
      return n.error();
    removed += *n;
    return {};
  };
  // Sources that proved themselves leave only when idle, like the others.
  if (auto st = sweep_map(dp.known_map(), r.known_seen, r.known_removed); !st)
    return st;
  return sweep_map(dp.source_map(), r.sources_seen, r.sources_removed);
}

}  // namespace bpfgate::agent
