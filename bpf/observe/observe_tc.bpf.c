/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Per-service request latency on tc ingress and egress (clsact). The logic
 * lives in bpf/observe/observe.h, so the benchmark runs the very same code. */
#include "observe/observe.h"

SEC("tc")
int bg_obs_tc_ingress(struct __sk_buff *skb) {
  return bg_obs_ingress(skb);
}

SEC("tc")
int bg_obs_tc_egress(struct __sk_buff *skb) {
  return bg_obs_egress(skb);
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
