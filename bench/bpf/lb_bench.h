/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* What bench/bpf/lb_bench.bpf.c and bench/lb_nspp.cpp share: the minimal
 * DNAT's flow table (bg_lbb_min_dnat). */
#ifndef BPFGATE_BENCH_LB_BENCH_H
#define BPFGATE_BENCH_LB_BENCH_H

#include <linux/types.h>

/* bg_lbb_min_flows has 1 << BG_LBB_MIN_BITS slots, a flow's slot the top bits
 * of bg_lbb_min_hash over its addresses and ports (as in the frame). */
#define BG_LBB_MIN_BITS 10

/* An IPv4 TCP flow's 5-tuple (network order) and where it goes. */
struct bg_lbb_min_flow {
  __be32 saddr, daddr;
  __be16 sport, dport;
  __be32 to_addr;
  __be16 to_port;
  __u16 _pad;
  __u32 ifindex;
  __u8 dmac[6], smac[6];
};

static inline __u32 bg_lbb_min_hash(__be32 saddr, __be32 daddr, __be16 sport, __be16 dport) {
  __u32 h = saddr * 0x9e3779b1U;
  h = (h ^ daddr) * 0x9e3779b1U;
  h = (h ^ ((__u32)sport << 16 | dport)) * 0x9e3779b1U;
  return h >> (32 - BG_LBB_MIN_BITS);
}

#endif /* BPFGATE_BENCH_LB_BENCH_H */
