// FilterHarness: the real xdp_filter object loaded into the kernel (not
// attached anywhere), with typed access to its maps, for BPF unit tests.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "agent/filter.hpp"
#include "bpf/skeletons.hpp"
#include "core/limits.hpp"
#include "support/prog_runner.hpp"

namespace bpfgate::test {

class FilterHarness {
 public:
  // Loads the filter with `max_sources` per-source entries and the given limits.
  static Result<FilterHarness> load(const core::Limits &limits, uint32_t max_sources = 1024,
                                    bg_verdict unparsed = BG_VERDICT_PASS);

  // Runs the program once on `frame`; returns the XDP action.
  uint32_t run(const std::vector<uint8_t> &frame);
  int prog_fd() const;
  Status set_limits(const core::Limits &limits);

  // Counters summed over CPUs.
  agent::CounterTotals counters() const;
  uint64_t packets(bg_verdict v, bg_reason r) const;
  std::optional<bg_src_state> source(const std::string &addr) const;
  size_t source_count() const;

  // The one seam for time: GCRA depends only on (tat - now), so moving a
  // source's theoretical arrival time back by `ns` is exactly `ns` passing for
  // that source. The datapath keeps reading the real clock.
  void advance_time(const std::string &addr, uint64_t ns);

 private:
  explicit FilterHarness(bpf::XdpFilterSkel skel) : skel_(std::move(skel)) {}
  bpf::XdpFilterSkel skel_;
};

}  // namespace bpfgate::test
