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

/* As bg_gcra_take, taking up to `want` tokens at once where the bucket has
 * room for them: never more than half the room, so that other users of a
 * shared bucket are left their part. *taken says how many (1 when the bucket
 * is nearly empty, as bg_gcra_take). */
static __always_inline enum bg_gcra_result bg_gcra_take_n(__u64 *tat_ns, __u64 cost_ns,
                                                          __u64 tolerance_ns, __u64 now, __u32 want,
                                                          int tries, __u32 *taken) {
  for (int i = 0; i < tries; i++) {
    __u64 old = *(volatile __u64 *)tat_ns;
    __u64 tat = old > now ? old : now;
    if (tat - now > tolerance_ns)
      return BG_GCRA_OVER;
    __u64 n = 1;
    if (want > 1 && cost_ns) {
      n = ((tolerance_ns - (tat - now)) / cost_ns + 1) / 2;
      if (n > want)
        n = want;
      if (n < 1)
        n = 1;
    }
    if (__sync_val_compare_and_swap(tat_ns, old, tat + n * cost_ns) == old) {
      *taken = (__u32)n;
      return BG_GCRA_CONFORMS;
    }
  }
  return BG_GCRA_CONTENDED;
}

#endif /* BPFGATE_BPF_GCRA_H */
