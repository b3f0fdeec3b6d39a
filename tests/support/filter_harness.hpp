// FilterHarness: the real xdp_filter object loaded into the kernel (not
// attached anywhere), with typed access to its maps, for BPF unit tests.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "features/xdp/filter.hpp"
#include "features/xdp/datapath.hpp"
#include <memory>
#include "core/limits.hpp"
#include "support/prog_runner.hpp"

namespace bpfgate::test {

// A policy compiled from YAML under a one-interface config ("test.yaml");
// a config error fails the test and gives an empty policy.
core::PolicyImage policy_from_yaml(const std::string &yaml);

class FilterHarness {
 public:
  // Loads the filter with `max_sources` per-source entries and the given limits.
  static Result<FilterHarness> load(const core::Limits &limits, uint32_t max_sources = 1024,
                                    bg_verdict unparsed = BG_VERDICT_PASS);
  // Loads the filter with a compiled config.
  static Result<FilterHarness> load(const core::PolicyImage &policy, uint32_t max_sources = 1024);
  // The same for tests that cannot go on without it: a failure fails the test and aborts.
  static FilterHarness load_or_abort(const core::PolicyImage &policy, uint32_t max_sources);
  agent::Datapath &datapath() { return dp_; }

  // Runs the program once on `frame`; returns the XDP action.
  uint32_t run(const std::vector<uint8_t> &frame);
  int prog_fd() const;
  Status set_limits(const core::Limits &limits);

  // Counters summed over CPUs.
  agent::CounterTotals counters() const;
  uint64_t packets(bg_verdict v, bg_reason r) const;
  // The default-limit bucket of one address (or of rule `rule`'s limit).
  std::optional<bg_src_state> source(const std::string &addr, uint16_t rule = 0) const;
  // The bucket of a source prefix (prefix limits), e.g. "198.18.7.0/24".
  std::optional<bg_src_state> prefix(const std::string &cidr) const;
  size_t source_count() const;
  // Whether addr's bucket (of rule `rule`) is in the known table: it proved itself.
  bool known(const std::string &addr, uint16_t rule = 0) const;
  uint64_t stat(bg_stat s) const;
  // This CPU's bg_early (what lets a frame be held back before the policy stage).
  bg_early early(unsigned cpu) const;

  // The one seam for time: GCRA depends only on (tat - now), so moving a
  // source's theoretical arrival time back by `ns` is exactly `ns` passing for
  // that source. The datapath keeps reading the real clock.
  void advance_time(const std::string &addr, uint64_t ns, uint16_t rule = 0);

 private:
  FilterHarness(std::shared_ptr<void> skel, int prog_fd, agent::Datapath dp)
      : skel_(std::move(skel)), prog_fd_(prog_fd), dp_(std::move(dp)) {}
  std::shared_ptr<void> skel_;  // the loaded skeleton (its type has internal linkage)
  int prog_fd_;
  agent::Datapath dp_;
};

// The filter built to lose every compare-and-swap (tests/bpf/cas_lost_filter.bpf.c),
// loaded, with its datapath and its program; a failure fails the test and aborts.
struct CasLostFilter {
  std::shared_ptr<void> obj;  // the bpf_object, closed last
  agent::Datapath dp;
  int prog_fd;
};
CasLostFilter load_cas_lost_filter_or_abort();
// A test build of the filter (tests/bpf/NAME.bpf.o, program PROG), its
// per-source table sized max_sources (0: as built).
CasLostFilter load_test_filter_or_abort(const std::string &name, const std::string &prog,
                                        uint32_t max_sources = 0);

}  // namespace bpfgate::test
