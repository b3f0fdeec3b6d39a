/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* The freplace probe (src/bpf/features.cpp): libxdp's dispatcher runs each
 * program as an extension (BPF_PROG_TYPE_EXT) that replaces one of its global
 * functions. bg_probe_target plays the dispatcher, bg_probe_ext the program. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

/* Global and not inlined: an extension can only replace such a function. */
__attribute__((noinline)) int bg_probe_slot(struct xdp_md *ctx) {
  volatile int verdict = XDP_PASS;
  if (!ctx)
    return XDP_ABORTED;
  return verdict;
}

SEC("xdp")
int bg_probe_target(struct xdp_md *ctx) {
  return bg_probe_slot(ctx);
}

SEC("freplace/bg_probe_slot")
int bg_probe_ext(struct xdp_md *ctx) {
  return XDP_PASS;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
