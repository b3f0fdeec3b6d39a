/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* An XDP program that passes everything. A veth takes the frames its peer's
 * XDP program sends back (XDP_TX: bpfgate's SYN answer) only while its own
 * NAPI runs, which an XDP program of its own guarantees (GRO alone does not
 * on every kernel): tests and benchmarks attach this one there. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

SEC("xdp")
int bg_xdp_pass(struct xdp_md *ctx) {
  (void)ctx;
  return XDP_PASS;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
