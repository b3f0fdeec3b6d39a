// A bound on how many lines a second a log writes of something an attacker can
// drive (the agent's `event: ...` lines): at most `rate` a second and `burst`
// at once, by the same GCRA the datapath's buckets run. The lines over it are
// counted, and the next line written says how many were left out.
// Time is the caller's (monotonic ns): tests drive it.
#pragma once

#include <cstdint>

#include "core/limits.hpp"

namespace bpfgate::core {

class LineLimiter {
 public:
  explicit LineLimiter(const Limits &l) : gcra_(l), limits_(l) {}

  // True: write the line (first the count of take_left_out(), if any).
  bool admit(uint64_t now_ns);
  // Lines refused since the last call (0 if none); resets the count.
  uint64_t take_left_out();
  // Lines refused since the start.
  uint64_t left_out_total() const { return total_; }
  const Limits &limits() const { return limits_; }

 private:
  Gcra gcra_;
  Limits limits_;
  uint64_t tat_ns_ = 0;
  uint64_t pending_ = 0;
  uint64_t total_ = 0;
};

}  // namespace bpfgate::core
