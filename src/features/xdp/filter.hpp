// The XDP filter as the control plane sees it: attach (load, pin, attach),
// adopt a pinned one from any process, change its policy, read it, detach.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "features/xdp/datapath.hpp"
#include "features/observe/events.hpp"
#include "features/xdp/xdp_plan.hpp"
#include "bpf/fd.hpp"
#include "bpf/skeletons.hpp"
#include "bpf/xdp.hpp"
#include "bpf/xdp_dispatcher.hpp"
#include "core/limits.hpp"
#include "core/policy.hpp"
#include "util/result.hpp"

namespace bpfgate::agent {

struct AttachOptions {
  std::string iface;
  bpf::XdpMode mode = bpf::XdpMode::kAuto;
  // Directly (a bpf_link: bpfgate alone on the interface), or through
  // libxdp's dispatcher beside other XDP programs, at `priority` (lower first).
  XdpAttach attach = XdpAttach::kDirect;
  unsigned priority = bpf::kDefaultXdpPriority;
  core::Limits limits{core::kDefaultRatePps, core::kDefaultRatePps};
  uint32_t max_sources = core::kDefaultMaxSources;
  // New sources let in per second and at once, all CPUs together (rate 0: no bound).
  core::Limits new_sources{core::kDefaultNewSourcesPps, core::kDefaultNewSourcesPps};
  // Frames of unproven sources passed per second and at once, all of them and
  // all CPUs together (rate 0: no bound).
  core::Limits unproven{core::kDefaultUnprovenPps, core::kDefaultUnprovenPps};
  bg_verdict unparsed_verdict = BG_VERDICT_PASS;
  bool syn_proxy = false;  // held SYNs answered by the datapath (limits.syn_proxy)
  bool force = false;      // replace an XDP program bpfgate did not attach
  // The policy to start with; when empty, a default limit from `limits`.
  const core::PolicyImage *policy = nullptr;
  // Events (features/observe/events.hpp): ring or perf buffer, and at most one sample of
  // a dropped frame per CPU per interval (0: no samples).
  EventBufferChoice event_buffer = EventBufferChoice::kAuto;
  uint64_t drop_sample_interval_ns = 100'000'000ULL;
  // Load with BPF_F_XDP_HAS_FRAGS: attach() decides it from the interface's
  // MTU (want_frags); what the caller sets is not read.
  bool frags = false;
};

struct AttachReport {
  bpf::XdpMode mode;
  std::string note;  // e.g. why auto fell back to generic
  uint32_t prog_id = 0;
  uint32_t link_id = 0;           // 0 through the dispatcher (libxdp holds the link)
  uint32_t replaced_prog_id = 0;  // with --force, the program we removed
  XdpAttach attach = XdpAttach::kDirect;
  unsigned priority = 0;  // through the dispatcher
  // Loaded with BPF_F_XDP_HAS_FRAGS (the interface's MTU is above a page): a
  // program the filter tail-calls must be loaded so too (Datapath::frags()).
  bool frags = false;
};

struct FilterStatus {
  std::string iface;
  uint32_t ifindex = 0;  // 0: the interface went away; the pins are stale
  uint32_t prog_id = 0;
  uint32_t link_id = 0;
  std::string mode;
  XdpAttach attach = XdpAttach::kDirect;
  unsigned priority = 0;     // through the dispatcher: the filter's run priority there
  core::Limits limits;       // the default limit
  core::Limits new_sources;  // new sources let in per second (rate 0: no bound)
  core::Limits unproven;     // frames of unproven sources passed per second (rate 0: no bound)
  bool unproven_enforced = false;  // BG_SET_UNPROVEN: see Datapath::apply
  bool syn_proxy_asked = false;    // limits.syn_proxy is on
  bool syn_proxy = false;          // BG_SET_SYN_PROXY: held SYNs answered by the datapath
  bool dry_run = false;            // BG_SET_DRY_RUN: the generation's drops are passed
  bool bypass = false;             // bg_config.bypass: every frame passes
  bool frags = false;              // loaded with BPF_F_XDP_HAS_FRAGS (jumbo frames)
  bool op_stats = false;           // the program has dry-run and bypass (not older pins)
  OpTotals ops{};                  // would-drop and bypass counters (enum bg_op_stat)
  bg_verdict unparsed_verdict = BG_VERDICT_PASS;
  uint32_t max_sources = 0;
  uint32_t generation = 0;
  CounterTotals counters{};
  StatTotals stats{};          // datapath events (enum bg_stat)
  uint64_t known_sources = 0;  // entries of the known table (sources that proved themselves)
  uint32_t max_known = 0;
};

// A filter found pinned under <bpffs>/bpfgate/<iface>/; works from any process.
// Attached directly, its bpf_link is pinned there ("link"); through libxdp's
// dispatcher, only its program ("prog"): libxdp pins the link under
// <bpffs>/xdp/ and replaces it whenever another program joins or leaves.
class PinnedFilter {
 public:
  static Result<PinnedFilter> open(const std::string &bpffs, const std::string &iface);

  const std::string &iface() const { return iface_; }
  // Changes the default limit, and the new-source limit if given (rate 0:
  // no bound); a policy switch like any other.
  Status set_limits(const core::Limits &limits, std::optional<core::Limits> new_sources = {},
                    std::optional<core::Limits> unproven = {});
  // Switches to `policy`, holding the pin directory's lock so that two
  // processes never fill the same generation.
  Status apply(const core::PolicyImage &policy);
  // The bypass switch (bg_config.bypass), under the pin directory's lock:
  // every frame passes at once while on. EOPNOTSUPP for a program older
  // than the switch (upgrade it first).
  Status set_bypass(bool on);
  Result<FilterStatus> status() const;
  Result<CounterTotals> counters() const { return dp_.counters(); }
  Result<std::vector<SourceEntry>> sources() const { return dp_.sources(); }
  Datapath &datapath() { return dp_; }
  const Datapath &datapath() const { return dp_; }
  // The interface the filter is attached to (0: gone, or no longer in the
  // interface's dispatcher).
  Result<uint32_t> ifindex() const;
  XdpAttach attach() const { return link_.valid() ? XdpAttach::kDirect : XdpAttach::kDispatcher; }

 private:
  PinnedFilter(std::string iface, std::string dir, bpf::UniqueFd link, bpf::UniqueFd prog,
               Datapath dp)
      : iface_(std::move(iface)),
        dir_(std::move(dir)),
        link_(std::move(link)),
        prog_(std::move(prog)),
        dp_(std::move(dp)) {}
  // Through the dispatcher: the interface and the filter's entry there.
  struct Dispatched {
    uint32_t ifindex = 0;  // 0: not in the interface's dispatcher
    uint32_t prog_id = 0;
    unsigned priority = 0;
  };
  Result<Dispatched> dispatched() const;
  // The parts of status().
  Status read_attachment(FilterStatus &s) const;
  Status read_settings(FilterStatus &s) const;
  Status read_counters(FilterStatus &s) const;

  std::string iface_;
  std::string dir_;
  bpf::UniqueFd link_;  // attached directly
  bpf::UniqueFd prog_;  // through the dispatcher
  Datapath dp_;
};

Result<AttachReport> attach(const std::string &bpffs, const AttachOptions &opts);
// Whether XDP programs may call bpf_tcp_raw_check_syncookie_* (asked once).
bool syncookie_helpers();
// Between open and load of the filter object: its per-source tables sized
// to `max_sources` entries each (admitted and known), and the SYN-cookie
// proof compiled in where the kernel has the helpers (Linux 6.0).
// (Inline: a skeleton's type has internal linkage.)
inline void prepare_filter(bpf::XdpFilterSkel &skel, uint32_t max_sources) {
  bpf_map__set_max_entries(skel->maps.bg_sources, max_sources);
  bpf_map__set_max_entries(skel->maps.bg_known, max_sources);
  skel->rodata->bg_have_syncookie = syncookie_helpers() ? 1 : 0;
}
// Between open and load: the filter loaded with BPF_F_XDP_HAS_FRAGS (as
// SEC("xdp.frags") would), so that it attaches natively where the MTU is
// above a page; it reads the headers in the first buffer and counts the
// whole frame's length.
inline void prepare_frags(bpf::XdpFilterSkel &skel, bool frags) {
  if (!frags)
    return;
  bpf_program *p = skel->progs.bg_xdp_filter;
  bpf_program__set_flags(p, bpf_program__flags(p) | BPF_F_XDP_HAS_FRAGS);
  skel->rodata->bg_frags = 1;
}
// Attaches the filter pinned for `iface` again, to the interface that now
// bears the name, when its link is defunct (the interface was deleted and
// made again: a VM's tap, a bond, a veth): the same program on the same
// maps, so the policy, per-source state, known sources, blocklist and
// counters carry over. Refused: ENOTSUP where that cannot be (offloaded, or
// through the dispatcher, which went with the interface: the caller attaches
// anew), EBUSY when the new interface already runs another XDP program.
Result<AttachReport> reattach(const std::string &bpffs, const std::string &iface,
                              bpf::XdpMode mode);
Status detach(const std::string &bpffs, const std::string &iface);
// Interfaces with a pin directory, whether or not the interface still exists.
Result<std::vector<std::string>> pinned_interfaces(const std::string &bpffs);

std::string to_string(bg_verdict v);
std::string to_string(bg_reason r);

// The verdict x reason pairs the XDP pipeline (bpf/xdp/filter.h)
// can produce, declared once: /metrics exports these and no other (the
// counters of every other pair stay 0). tests/bpf/verdict_pairs_test.cpp
// produces each with a crafted frame and fails on a pair it does not produce.
struct VerdictReason {
  bg_verdict verdict;
  bg_reason reason;
};
inline constexpr VerdictReason kVerdictReasons[] = {
    // bg_stage_policy: the frame's source cannot be trusted, or is not IP.
    {BG_VERDICT_PASS, BG_REASON_NOT_IP},
    {BG_VERDICT_PASS, BG_REASON_UNPARSEABLE},  // unparsed: pass (the default)
    {BG_VERDICT_DROP, BG_REASON_UNPARSEABLE},  // unparsed: drop
    // bg_check_lists: the ACL (longest prefix) and the blocklist.
    {BG_VERDICT_PASS, BG_REASON_ALLOW},
    {BG_VERDICT_DROP, BG_REASON_DENY},
    {BG_VERDICT_DROP, BG_REASON_BLOCKLIST},
    // bg_stage_limit: a rule's action, then the buckets.
    {BG_VERDICT_PASS, BG_REASON_RULE},
    {BG_VERDICT_DROP, BG_REASON_RULE},
    {BG_VERDICT_DROP, BG_REASON_NEW_SOURCE},
    {BG_VERDICT_DROP, BG_REASON_UNPROVEN},
    {BG_VERDICT_DROP, BG_REASON_RATE_LIMIT},
    {BG_VERDICT_DROP, BG_REASON_PREFIX_LIMIT},
    {BG_VERDICT_PASS, BG_REASON_OK},
};
// A datapath event's name, the same in `status -j` ("events") and in
// /metrics (bpfgate_<name>_total), and what it counts (the metric's HELP).
struct StatName {
  const char *name;
  const char *help;
};
const StatName &stat_name(bg_stat s);

}  // namespace bpfgate::agent
