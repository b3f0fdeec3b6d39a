// The in-kernel sweeper of idle per-source entries (bpf/source_sweep.bpf.c):
// a map-element iterator over the filter's sources map that deletes, where
// they are, the entries last seen before a cutoff. Used by sweep()
// (agent/blocklist.hpp) when the kernel loads it; sweep() falls back to
// reading the entries out and deleting them in batches otherwise.
#pragma once

#include <cstdint>
#include <memory>

#include "util/result.hpp"

namespace bpfgate::agent {

class SourceSweeper {
 public:
  struct Pass {
    uint64_t seen = 0;
    uint64_t removed = 0;
  };
  // sources_fd: the filter's sources map (the sweeper takes its own reference).
  static Result<std::unique_ptr<SourceSweeper>> open(int sources_fd);
  // Deletes every entry whose last_seen_ns is before cutoff_ns.
  Result<Pass> run(uint64_t cutoff_ns);
  ~SourceSweeper();

 private:
  struct Impl;
  explicit SourceSweeper(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace bpfgate::agent
