// Feature probes: what the running kernel can do, asked before relying on it.
#pragma once

#include <linux/bpf.h>

#include <string>

namespace bpfgate::bpf {

bool has_map_type(bpf_map_type type);
bool has_prog_type(bpf_prog_type type);
// Whether programs of `type` may call `helper` (e.g. BPF_FUNC_tcp_raw_check_syncookie_ipv4).
bool has_helper(bpf_prog_type type, bpf_func_id helper);
std::string kernel_release();
// Whether the caller may load BPF programs and attach to interfaces.
bool has_bpf_privileges();

}  // namespace bpfgate::bpf
