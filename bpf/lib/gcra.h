/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * GCRA on a bucket every CPU shares: a packet conforms while the bucket's
 * theoretical arrival time is at most the tolerance ahead of now, and then
 * moves it on by the packet's cost. A compare-and-swap keeps concurrent CPUs
 * from sharing a token; what a race lost on every try means is the caller's
 * to decide (the XDP filter passes and counts it, tc does not pass it).
 */
#ifndef BPFGATE_BPF_GCRA_H
#define BPFGATE_BPF_GCRA_H

#include <linux/types.h>
#include <bpf/bpf_helpers.h>

enum bg_gcra_result {
  BG_GCRA_OVER = 0,      /* over the limit: the bucket is unchanged */
  BG_GCRA_CONFORMS = 1,  /* conforming: the bucket paid `cost_ns` */
  BG_GCRA_CONTENDED = 2, /* every one of `tries` compare-and-swaps lost to another CPU */
};

static __always_inline enum bg_gcra_result bg_gcra_take(__u64 *tat_ns, __u64 cost_ns,
                                                        __u64 tolerance_ns, __u64 now, int tries) {
  for (int i = 0; i < tries; i++) {
    __u64 old = *(volatile __u64 *)tat_ns;
    __u64 tat = old > now ? old : now;
    if (tat - now > tolerance_ns)
      return BG_GCRA_OVER;
    if (__sync_val_compare_and_swap(tat_ns, old, tat + cost_ns) == old)
      return BG_GCRA_CONFORMS;
  }
  return BG_GCRA_CONTENDED;
}

#endif /* BPFGATE_BPF_GCRA_H */
