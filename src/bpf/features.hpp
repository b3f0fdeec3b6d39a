// Feature probes: what the running kernel can do, asked before relying on it.
#pragma once

#include <linux/bpf.h>

#include <string>
#include <string_view>

#include "util/result.hpp"

namespace bpfgate::bpf {

bool has_map_type(bpf_map_type type);
bool has_prog_type(bpf_prog_type type);
// Whether programs of `type` may call `helper` (e.g. BPF_FUNC_tcp_raw_check_syncookie_ipv4).
bool has_helper(bpf_prog_type type, bpf_func_id helper);
std::string kernel_release();
// Whether the caller may load BPF programs and attach to interfaces.
bool has_bpf_privileges();
// The one privileges check before loading or attaching: EPERM with
// "<who> needs root, or CAP_BPF (or CAP_SYS_ADMIN) and CAP_NET_ADMIN, to <to>:
// run it with sudo" (who: "bpfgate", "bpfgate accel"; to: what it was about to do).
Status require_privileges(std::string_view who, std::string_view to);
// Whether an extension program (freplace, BPF_PROG_TYPE_EXT) may replace a
// global function of a loaded XDP program and be attached there: what libxdp's
// dispatcher does with every program it runs. Asked once (needs privileges);
// the error names the step the kernel refused and its errno.
Status freplace_support();
// Whether XDP programs may be loaded with BPF_F_XDP_HAS_FRAGS (frames of
// several buffers: an MTU above a page; Linux 5.18). Asked once.
bool xdp_frags_support();
// The largest MTU at which a single-buffer XDP program sees whole frames:
// a page less XDP's headroom (256), the skb_shared_info at its end (320) and
// an Ethernet header with two VLAN tags. Drivers differ a little; above it,
// native XDP needs frags.
int xdp_single_buffer_mtu();

}  // namespace bpfgate::bpf
