/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* bpfgate XDP ingress filter: parse, per-source token bucket, per-CPU
 * counters. The pipeline lives in bpf/xdp/filter.h. */
#include "xdp/filter.h"

SEC("xdp")
int bg_xdp_filter(struct xdp_md *ctx) {
  return bg_filter(ctx);
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
