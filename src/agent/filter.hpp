// The XDP filter as the control plane sees it: attach (load, pin, attach),
// adopt a pinned one from any process, change its limits, read it, detach.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "bpf/fd.hpp"
#include "bpf/map.hpp"
#include "bpf/xdp.hpp"
#include "bpfgate/abi/xdp.h"
#include "core/limits.hpp"
#include "util/result.hpp"

namespace bpfgate::agent {

struct AttachOptions {
  std::string iface;
  bpf::XdpMode mode = bpf::XdpMode::kAuto;
  core::Limits limits;
  uint32_t max_sources = core::kDefaultMaxSources;
  bg_verdict unparsed_verdict = BG_VERDICT_PASS;
  bool force = false;  // replace an XDP program bpfgate did not attach
};

struct AttachReport {
  bpf::XdpMode mode;
  std::string note;  // e.g. why auto fell back to generic
  uint32_t prog_id = 0;
  uint32_t link_id = 0;
  uint32_t replaced_prog_id = 0;  // with --force, the program we removed
};

// Counters summed over CPUs, indexed by bg_counter_key(verdict, reason).
using CounterTotals = std::array<bg_counter, BG_COUNTER_NR>;

struct SourceEntry {
  bg_src_key key;
  bg_src_state state;
};

struct FilterStatus {
  std::string iface;
  uint32_t ifindex = 0;  // 0: the interface went away; the pins are stale
  uint32_t prog_id = 0;
  uint32_t link_id = 0;
  std::string mode;
  core::Limits limits;
  bg_verdict unparsed_verdict = BG_VERDICT_PASS;
  uint32_t max_sources = 0;
  CounterTotals counters{};
};

// A filter found pinned under <bpffs>/bpfgate/<iface>/; works from any process.
class PinnedFilter {
 public:
  static Result<PinnedFilter> open(const std::string &bpffs, const std::string &iface);

  const std::string &iface() const { return iface_; }
  Status set_limits(const core::Limits &limits);
  Result<bg_config> config() const;
  Result<FilterStatus> status() const;
  Result<CounterTotals> counters() const;
  Result<std::vector<SourceEntry>> sources() const;
  bpf::Map<bg_src_key, bg_src_state> &source_map() { return sources_; }

 private:
  PinnedFilter(std::string iface, bpf::UniqueFd link, bpf::Map<__u32, bg_config> config,
               bpf::Map<bg_src_key, bg_src_state> sources,
               bpf::PerCpuMap<__u32, bg_counter> counters)
      : iface_(std::move(iface)),
        link_(std::move(link)),
        config_(std::move(config)),
        sources_(std::move(sources)),
        counters_(std::move(counters)) {}

  std::string iface_;
  bpf::UniqueFd link_;
  bpf::Map<__u32, bg_config> config_;
  bpf::Map<bg_src_key, bg_src_state> sources_;
  bpf::PerCpuMap<__u32, bg_counter> counters_;
};

Result<AttachReport> attach(const std::string &bpffs, const AttachOptions &opts);
Status detach(const std::string &bpffs, const std::string &iface);
// Interfaces with a pin directory, whether or not the interface still exists.
Result<std::vector<std::string>> pinned_interfaces(const std::string &bpffs);

std::string to_string(bg_verdict v);
std::string to_string(bg_reason r);

}  // namespace bpfgate::agent
