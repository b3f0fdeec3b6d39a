// One XDP filter's maps as the control plane sees them, opened from a loaded
// skeleton or from its pins, with the atomic policy switch: apply() builds
// the next generation's inner maps beside the running ones and flips
// bg_config.active in one write.
#pragma once

#include <array>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "bpf/map.hpp"
#include "bpf/pin_set.hpp"
#include "bpfgate/abi/xdp.h"
#include "core/policy.hpp"
#include "util/result.hpp"

struct bpf_object;

namespace bpfgate::agent {

class SourceSweeper;

// The pin of the operator switches' counters (optional: older pins lack it).
bpf::PinSpec op_stats_pin();
bpf::PinSpec hot_pin();
bpf::PinSpec known_bits_pin();
bpf::PinSpec known_sum_pin();
// Sets, in the known_bits map `bits_fd` and its summary `sum_fd` (-1: none),
// the bits of every source in the known table `known_fd`: a program loaded
// beside a running one (replace) gets a new, empty bitmap or summary, which
// must cover the table before it runs.
Status mark_known_table(int known_fd, int bits_fd, int sum_fd);
// Adds to `st` (the entry of `key`) what hot slots counted of it and have
// not yet added: a source's own counts, or for a prefix bucket the counts of
// the sources in it (bg_hot_slot).
void add_hot_counts(const std::vector<bg_hot_slot> &slots, const bg_src_key &key, bg_src_state &st);

// Counters summed over CPUs, indexed by bg_counter_key(verdict, reason).
using CounterTotals = std::array<bg_counter, BG_COUNTER_NR>;
// Datapath events that are no verdict, summed over CPUs, indexed by enum bg_stat.
using StatTotals = std::array<uint64_t, BG_STAT_NR>;
// The operator switches' counters summed over CPUs, indexed by enum bg_op_stat.
using OpTotals = std::array<bg_counter, BG_OP_SLOTS>;

// What this network namespace's TCP says of the SYN answer (the sysctls it
// depends on, -1 where unreadable), and the options it may offer.
struct SynAnswerHost {
  int syncookies = -1;  // net.ipv4.tcp_syncookies: the answer needs 2
  int timestamps = -1;  // net.ipv4.tcp_timestamps: options need 2
  uint8_t opts = 0;     // enum bg_syn_opts the host allows
  uint8_t wscale = 0;   // the window scale the kernel uses on a cookie's connection
};
SynAnswerHost syn_answer_host();

struct SourceEntry {
  bg_src_key key;
  bg_src_state state;
  bool known = false;  // in the known table: proved itself
};

class Datapath {
 public:
  // From a loaded object that defines the filter's maps (bpf/xdp/maps.h): the
  // production skeleton's or a benchmark's; the fds are duplicated.
  static Result<Datapath> from_object(const bpf_object *obj);
  static Result<Datapath> from_pins(const std::string &dir);
  // Its maps as pinned (names from include/bpfgate/abi/xdp.h) and named in the
  // object, with their key and value sizes: the one list that makes, adopts,
  // pins (filter.cpp: filter_pins) and removes them.
  static std::vector<bpf::PinSpec> pin_specs();

  // Switches to `policy` atomically; counters and per-source state stay.
  Status apply(const core::PolicyImage &policy);
  // The policy the datapath runs now, read back from the kernel.
  Result<core::PolicyImage> active_policy() const;
  // Only its default rule (rule 0): what `status` shows, without a full read.
  Result<bg_rule> default_rule() const;

  Result<bg_config> config() const;
  Status set_attach_mode(uint32_t mode);
  // Whether the program was loaded with BPF_F_XDP_HAS_FRAGS (bg_config.frags):
  // what a program it tail-calls must match.
  Result<bool> frags() const;
  Status set_frags(bool frags);
  // The bypass switch (bg_config.bypass; the caller holds the pin lock).
  Status set_bypass(bool on);
  // Whether the program has the operator switches (dry-run, bypass) and
  // their counters: false for a filter pinned by an older bpfgate until it
  // is upgraded (which makes the opstats map).
  bool has_op_stats() const { return op_stats_.has_value(); }
  // Zeros where !has_op_stats().
  Result<OpTotals> op_stats() const;
  Result<CounterTotals> counters() const;
  Result<StatTotals> stats() const;
  // Every source's entry, with what the CPUs' hot slots counted of it and
  // have not yet added (bg_hot_slot): exact while no frame comes.
  Result<std::vector<SourceEntry>> sources() const;
  // One entry (known table first), hot slots' counts added; nullopt if none.
  Result<std::optional<bg_src_state>> source(const bg_src_key &key) const;
  // The CPUs' hot slots in use (none with pins of older versions).
  Result<std::vector<bg_hot_slot>> hot_slots() const;
  // Moves every CPU's hot slots `ns` into the past, as if that much time
  // had gone by (for tests that move an entry's clock by hand).
  Status age_hot(uint64_t ns);
  Result<uint32_t> max_sources() const;
  // Sources in the known table (they proved themselves), counted in one walk
  // of the table, and its capacity.
  Result<size_t> known_entries() const { return known_.count(); }
  Result<uint32_t> max_known() const;

  bpf::Map<bg_src_key, bg_src_state> &source_map() { return sources_; }
  bpf::Map<bg_src_key, bg_src_state> &known_map() { return known_; }
  bpf::Map<bg_lpm_key, bg_block> &blocklist() { return blocklist_; }
  // Keep the datapath's blocklist flag right (struct bg_runtime): after
  // adding entries, and after removing some.
  Status blocklist_added();
  Status blocklist_removed();
  // The blocklist's version: its map's id and bg_runtime.block_epoch, which
  // moves at every change of it (an auto-block, a block or removal by the
  // control plane), so a reader that saw the same version need not list the
  // blocklist again (a filter made anew has another map id). 0 if unreadable.
  uint64_t block_version() const;
  // Sets the known_bits of `keys` (bpfgate/abi/xdp.h), before they go into
  // the known table by the control plane.
  Status mark_known(const std::vector<bg_src_key> &keys);
  // The in-kernel sweeper of the sources map, loaded at the first call;
  // nullptr (and said once) where the kernel refuses it.
  SourceSweeper *source_sweeper();
  const bpf::Map<bg_lpm_key, bg_block> &blocklist() const { return blocklist_; }

 private:
  using Outer = bpf::Map<__u32, __u32>;
  static Datapath from_set(bpf::PinSet &s);  // takes the maps of pin_specs()
  // apply()'s steps: the generation after `active` in fresh inner maps (acl,
  // ports, protos, rules) and its settings shared per CPU in `set`; the inner
  // maps installed at `next` beside the running generation; the never-block
  // list and the switch to `next`.
  Result<std::array<bpf::UniqueFd, 4>> build_generation(const core::PolicyImage &p, uint32_t active,
                                                        bg_settings &set) const;
  Status install_generation(uint32_t next, const std::array<bpf::UniqueFd, 4> &inner);
  Status switch_generation(bg_config &cfg, uint32_t next, const std::vector<bg_lpm_key> &noblock);
  Datapath(bpf::Map<__u32, bg_config> config, std::array<Outer, 4> outer,
           bpf::Map<bg_lpm_key, bg_block> blocklist, bpf::Map<bg_src_key, bg_src_state> sources,
           bpf::PerCpuMap<__u32, bg_counter> counters, bpf::Map<__u32, bg_runtime> runtime,
           bpf::Map<bg_src_key, bg_src_state> known, bpf::Map<bg_lpm_key, __u32> noblock)
      : config_(std::move(config)),
        outer_(std::move(outer)),
        blocklist_(std::move(blocklist)),
        sources_(std::move(sources)),
        counters_(std::move(counters)),
        runtime_(std::move(runtime)),
        known_(std::move(known)),
        noblock_(std::move(noblock)) {}

  bpf::Map<__u32, bg_config> config_;
  std::array<Outer, 4> outer_;  // acl, ports, protos, rules
  bpf::Map<bg_lpm_key, bg_block> blocklist_;
  bpf::Map<bg_src_key, bg_src_state> sources_;
  bpf::PerCpuMap<__u32, bg_counter> counters_;
  bpf::Map<__u32, bg_runtime> runtime_;
  bpf::Map<bg_src_key, bg_src_state> known_;  // sources that proved themselves
  bpf::Map<bg_lpm_key, __u32> noblock_;
  std::optional<bpf::PerCpuMap<__u32, bg_counter>> op_stats_;  // absent in older pins
  std::optional<bpf::PerCpuMap<__u32, bg_hot_slot>> hot_;      // absent in older pins
  bpf::UniqueFd known_bits_;                                   // absent in older pins
  bpf::UniqueFd known_sum_;                                    // absent in older pins
  mutable uint32_t blocklist_id_ = 0;                          // block_version(): read once
  std::shared_ptr<SourceSweeper> sweeper_;
  bool sweeper_tried_ = false;
};

}  // namespace bpfgate::agent
