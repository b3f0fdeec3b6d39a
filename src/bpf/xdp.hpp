// XDP attachment through bpf_link (kernel >= 5.9), in native, generic or
// offload mode, with auto fallback and errors that say what to do.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "bpf/fd.hpp"
#include "bpf/map.hpp"  // link_info
#include "bpf/xdp_mode.hpp"
#include "util/result.hpp"

namespace bpfgate::bpf {

// What is attached to an interface now, whoever attached it.
struct XdpQuery {
  uint32_t prog_id = 0;  // 0: nothing attached
  XdpMode mode = XdpMode::kAuto;
};
Result<XdpQuery> query_xdp(int ifindex);

struct XdpAttachment {
  UniqueFd link;
  XdpMode mode;               // the mode actually in effect
  std::string fallback_note;  // why auto did not get native, if it did not
};

// Attaches prog_fd to ifindex as a bpf_link. kAuto tries native, then generic.
Result<XdpAttachment> attach_xdp(int prog_fd, int ifindex, const std::string &iface, XdpMode mode);

// Removes a program attached the classic way (netlink, not a link), for --force.
Status detach_foreign_xdp(int ifindex, const XdpQuery &q);

// Interface name -> index, with an error that says what to check.
Result<int> ifindex_of(const std::string &iface);
// The interface's MTU in this network namespace.
Result<int> mtu_of(const std::string &iface);

}  // namespace bpfgate::bpf
