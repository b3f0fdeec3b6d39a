// The in-kernel sweeper of idle per-source entries (bpf/xdp/source_sweep.bpf.c):
// a program run with BPF_PROG_RUN that walks the filter's sources and known
// maps with bpf_for_each_map_elem and deletes, where they are, the entries
// last seen before a cutoff. Used by sweep() (features/xdp/blocklist.hpp) when the
// kernel loads it; sweep() falls back to sweep_idle_from_user_space()
// otherwise.
#pragma once

#include <cstdint>
#include <memory>

#include "util/result.hpp"

namespace bpfgate::agent {

class SourceSweeper {
 public:
  struct Pass {
    uint64_t sources_seen = 0;
    uint64_t sources_removed = 0;
    uint64_t known_seen = 0;
    uint64_t known_removed = 0;
  };
  // The filter's sources and known maps (the sweeper takes its own references).
  static Result<std::unique_ptr<SourceSweeper>> open(int sources_fd, int known_fd);
  // Deletes every entry of both maps whose last_seen_ns is before cutoff_ns.
  Result<Pass> run(uint64_t cutoff_ns);
  ~SourceSweeper();

 private:
  struct Impl;
  explicit SourceSweeper(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace bpfgate::agent
