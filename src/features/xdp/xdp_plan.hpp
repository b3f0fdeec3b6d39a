// What attaching the XDP filter to an interface must do about what the
// interface already runs, decided over plain data (tested without a kernel):
// attach directly (a bpf_link; bpfgate alone on the interface) or through
// libxdp's dispatcher (beside other libxdp programs), and what is refused.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "bpf/xdp.hpp"
#include "util/result.hpp"

namespace bpfgate::agent {

enum class XdpAttach { kDirect, kDispatcher };
std::string to_string(XdpAttach a);
std::optional<XdpAttach> parse_xdp_attach(const std::string &s);

// What the interface runs now (bpf::query_dispatcher).
struct XdpPresent {
  uint32_t prog_id = 0;     // 0: nothing
  bool dispatcher = false;  // prog_id is libxdp's dispatcher
  size_t dispatched = 0;    // programs the dispatcher runs
  bpf::XdpMode mode = bpf::XdpMode::kAuto;
};

struct XdpAttachRequest {
  std::string iface;
  XdpAttach attach = XdpAttach::kDirect;
  bpf::XdpMode mode = bpf::XdpMode::kAuto;
  bool force = false;
  // Dispatcher only: whether the kernel takes freplace programs
  // (bpf::freplace_support()) and its release, for the message.
  Status freplace;
  std::string kernel;
};

struct XdpAttachPlan {
  bool remove_foreign = false;  // --force: detach the program there first
};

// Whether to load the filter with BPF_F_XDP_HAS_FRAGS (xdp.frags): where the
// interface's MTU is above what a single-buffer XDP program sees whole
// (bpf::xdp_single_buffer_mtu()) and the kernel has frags. Below it, or in
// offload mode, the plain program (no cost, and the libxdp dispatcher's other
// programs need not support frags).
bool want_frags(int mtu, int single_buffer_mtu, bool kernel_frags, bpf::XdpMode mode);

// The plan, or why not (EBUSY: something there cannot coexist; EOPNOTSUPP:
// the kernel cannot run the dispatcher; EINVAL: a mode the dispatcher lacks).
Result<XdpAttachPlan> plan_xdp_attach(const XdpAttachRequest &r, const XdpPresent &present);

}  // namespace bpfgate::agent

namespace bpfgate::agent {

// What the agent does for one interface of its config, from what it sees:
// the interface's index now (live, 0: not in the namespace), the one the
// filter runs on (attached, 0: none, or no filter), and the one it was last
// seen on (last_seen, 0: never).
enum class IfaceStep {
  kRunning,    // the filter runs on this interface: nothing to do
  kAbsent,     // the interface is not there: wait for it (its filter, if any, is kept)
  kGoingAway,  // the device the filter ran on, being taken down: its removal follows
  kBringUp,    // attach: the pinned filter again, or a new one
};
std::string_view to_string(IfaceStep s);
// At a converge (start, reload).
IfaceStep converge_step(uint32_t live, uint32_t attached);
// At a link event: as at a converge, except that a device still listed under
// its old index with its filter gone is being deleted, not back.
IfaceStep link_step(uint32_t live, uint32_t attached, uint32_t last_seen);

}  // namespace bpfgate::agent
