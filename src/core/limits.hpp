// Rate limits as the operator gives them, validated, and turned into the GCRA
// parameters the datapath runs (see bpf/xdp/filter.h).
#pragma once

#include <cstdint>
#include <string>

#include "bpfgate/abi/xdp.h"
#include "util/result.hpp"

namespace bpfgate::core {

struct Limits {
  uint64_t rate_pps = 0;  // packets per second per source
  uint64_t burst = 0;     // packets a source may send at once after being idle
  bool operator==(const Limits &) const = default;
};

inline constexpr uint64_t kDefaultRatePps = 10000;
inline constexpr uint32_t kDefaultMaxSources = 65536;
// New sources a filter lets in per second (and at once), all CPUs together.
inline constexpr uint64_t kDefaultNewSourcesPps = 10000;
// Frames of unproven sources (admitted, not known) a filter passes per second
// (and at once), all of them and all CPUs together: what a flood spread over
// many spoofed sources, each under its own limit, gets through.
inline constexpr uint64_t kDefaultUnprovenPps = 20000;
// Auto-blocks a second for the whole filter (auto_block.max_rate).
inline constexpr uint64_t kDefaultAutoBlockPps = 100;

// Errors name the setting, the value and the accepted range.
Status validate(const Limits &l);
Status validate_max_sources(uint64_t n);

// Fills rate, burst, emission and tolerance from validated limits.
void apply_limits(const Limits &l, bg_limit &out);
Limits limits_of(const bg_limit &l);
// Makes a limit of the whole filter into each CPU's share, for limits kept
// per CPU: rate_pps and burst stay the totals, emission and tolerance become
// those of rate/cpus and burst/cpus (at least 1).
void share_per_cpu(bg_limit &l, unsigned cpus);

// Whether a bucket of `l` keeps its rate when time advances a tick of
// `tick_ns` at a time (the kernel's coarse clock): tokens come tick_ns / emission
// at once, so the bucket must hold them, with a tick to spare. Unlimited: yes.
bool coarse_clock_ok(const bg_limit &l, uint64_t tick_ns);

// The same GCRA the datapath runs, for reasoning and tests in user space.
class Gcra {
 public:
  explicit Gcra(const Limits &l);
  // True if a packet arriving at now_ns conforms (and consumes a token).
  bool admit(uint64_t &tat_ns, uint64_t now_ns) const;

 private:
  uint64_t emission_ns_;
  uint64_t tolerance_ns_;
};

}  // namespace bpfgate::core
