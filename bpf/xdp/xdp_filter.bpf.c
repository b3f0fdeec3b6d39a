/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* bpfgate XDP ingress filter: parse, per-source token bucket, per-CPU
 * counters. The pipeline lives in bpf/xdp/filter.h. A frame it passes goes
 * on to the program in bg_xdp_next (the load balancer), if there is one. */
#include "xdp/filter.h"

SEC("xdp")
int bg_xdp_filter(struct xdp_md *ctx) {
  int action = bg_filter(ctx);
  /* Counted already, as passed: a tail call into an empty slot falls
   * through, and frames the filter drops or answers (XDP_TX) never go on. */
  if (action == XDP_PASS)
    bpf_tail_call_static(ctx, &bg_xdp_next, BG_NEXT_LB);
  return action;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
