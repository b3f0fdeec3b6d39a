// Feature probes: what the running kernel can do, asked before relying on it.
#pragma once

#include <linux/bpf.h>

#include <string>

namespace bpfgate::bpf {

bool has_map_type(bpf_map_type type);
bool has_prog_type(bpf_prog_type type);
std::string kernel_release();
// Whether the caller may load BPF programs and attach to interfaces.
bool has_bpf_privileges();

}  // namespace bpfgate::bpf
