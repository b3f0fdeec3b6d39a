/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* The floor for the latency probes' benchmark (bench/probes.cpp): a tc
 * program that does nothing, on the same clsact hooks. */
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>

SEC("tc")
int bg_tc_empty(struct __sk_buff *skb) {
  (void)skb;
  return TC_ACT_UNSPEC; /* as the probes: no verdict */
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
