// The blocklist of one filter: manual entries with or without a TTL,
// auto-block entries the datapath adds, listing with what is left of each
// TTL, and sweeping expired entries.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "features/xdp/datapath.hpp"
#include "core/cidr.hpp"
#include "util/result.hpp"

namespace bpfgate::agent {

// CLOCK_MONOTONIC in ns: the clock of bpf_ktime_get_ns().
uint64_t monotonic_ns();

struct BlockEntry {
  core::Prefix prefix;
  bg_block value;
  uint64_t remaining_ns = 0;  // 0 with value.expires_ns == 0: never expires
  bool expired = false;       // awaiting the sweeper; no longer dropping
};

// ttl_ns 0: until unblocked.
Status block(Datapath &dp, const core::Prefix &p, uint64_t ttl_ns,
             uint32_t reason = BG_BLOCK_MANUAL);
// false when the prefix was not on the list.
Result<bool> unblock(Datapath &dp, const core::Prefix &p);
Result<std::vector<BlockEntry>> list_blocks(const Datapath &dp);

struct SweepReport {
  std::vector<BlockEntry> released;  // expired blocklist entries removed
  size_t sources_removed = 0;        // idle per-source entries removed
  size_t sources_seen = 0;           // entries of the sources table
  size_t known_removed = 0;          // the same for the known table
  size_t known_seen = 0;
};
// Removes expired blocks and per-source entries (sources and known maps)
// idle longer than idle_ns (0: keep them all): in the kernel where it loads
// the sweeper (features/xdp/source_sweep.hpp), else with sweep_idle_from_user_space().
Result<SweepReport> sweep(Datapath &dp, uint64_t idle_ns);
// Reads both per-source maps out and deletes the entries last seen before
// cutoff_ns in batches; adds to r's counts. What sweep() does where the kernel
// refuses the in-kernel sweeper.
Status sweep_idle_from_user_space(Datapath &dp, uint64_t cutoff_ns, SweepReport &r);

std::string to_string(bg_block_reason r);

}  // namespace bpfgate::agent
