// What attaching the XDP filter to an interface must do about what the
// interface already runs, decided over plain data (tested without a kernel):
// attach directly (a bpf_link; bpfgate alone on the interface) or through
// libxdp's dispatcher (beside other libxdp programs), and what is refused.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

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

// The plan, or why not (EBUSY: something there cannot coexist; EOPNOTSUPP:
// the kernel cannot run the dispatcher; EINVAL: a mode the dispatcher lacks).
Result<XdpAttachPlan> plan_xdp_attach(const XdpAttachRequest &r, const XdpPresent &present);

}  // namespace bpfgate::agent
