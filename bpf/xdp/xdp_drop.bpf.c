/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* The floor: an XDP program that drops everything. Benchmarks measure bpfgate
 * against it in the same run. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

SEC("xdp")
int bg_xdp_drop(struct xdp_md *ctx) {
  (void)ctx;
  return XDP_DROP;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
