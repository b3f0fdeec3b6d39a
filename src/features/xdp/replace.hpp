// Replacing the running XDP filter program in place (an upgrade): this
// binary's program is loaded on the running filter's maps and swapped in with
// one bpf_link update, so no frame finds the interface without a filter and
// counters, policy, blocklist and per-source state carry over.
#pragma once

#include <cstdint>
#include <string>

#include "util/result.hpp"

namespace bpfgate::agent {

// Where a replacement program is pinned before it is renamed over "prog"
// (bpffs refuses names with a dot); a crash may leave it, detach removes it.
inline constexpr const char *kProgNextPin = "prog-next";

struct ReplaceReport {
  bool replaced = false;  // false: the running program is this binary's already
  uint32_t old_prog_id = 0;
  uint32_t new_prog_id = 0;
  uint32_t link_id = 0;
};

// Loads the filter program this binary carries, on the maps of the one
// attached to `iface` (found through the programs' map ids: pinned or not,
// every map the running program uses is kept; the new object's own
// read-only data is its own), then swaps it in with bpf_link_update and
// BPF_F_REPLACE against the program the link ran when it was read (a
// concurrent replace fails instead of being undone), and re-pins "prog".
// With `always` false, keeps the running program when its tag (the kernel's
// hash of its instructions) is the new one's. A filter attached through
// libxdp's dispatcher, or maps the new program cannot use (a changed
// layout), are refused with what to do: nothing is changed then.
Result<ReplaceReport> replace_program(const std::string &bpffs, const std::string &iface,
                                      bool always);

}  // namespace bpfgate::agent
