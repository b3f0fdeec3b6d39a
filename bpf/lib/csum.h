/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Checksums fixed up incrementally (RFC 1624: HC' = ~(~HC + ~m + m') for
 * every 16-bit word m that becomes m'), over words read and written in
 * network order: the one's complement sum does not depend on byte order, so
 * no word is swapped. The words must lie at even offsets from the start of
 * what the checksum covers. No maps: the load balancer (bpf/lb/lb.h) and the
 * benchmarks' minimal DNAT (bench/bpf/lb_bench.bpf.c) use it.
 */
#ifndef BPFGATE_BPF_CSUM_H
#define BPFGATE_BPF_CSUM_H

#include <linux/types.h>
#include <bpf/bpf_helpers.h>

/* Adds to acc what replacing the n 16-bit words at old by those at new does
 * to a one's complement sum. */
static __always_inline __u32 bg_csum_diff(const void *old, const void *new, int n, __u32 acc) {
  const __u16 *o = old, *w = new;
#pragma unroll
  for (int i = 0; i < n; i++)
    acc += (__u16)~o[i] + (__u32)w[i];
  return acc;
}

static __always_inline __u16 bg_csum_fold32(__u32 s) {
  s = (s & 0xffff) + (s >> 16);
  s = (s & 0xffff) + (s >> 16);
  return (__u16)s;
}

/* The checksum field csum after words changed by delta (bg_csum_diff). */
static __always_inline __u16 bg_csum_update(__u16 csum, __u32 delta) {
  return (__u16)~bg_csum_fold32((__u32)(__u16)~csum + bg_csum_fold32(delta));
}

/* A UDP checksum of 0 means "none" (IPv4 only): a computed 0 is sent as 0xffff. */
static __always_inline __u16 bg_udp_csum_update(__u16 csum, __u32 delta) {
  __u16 c = bg_csum_update(csum, delta);
  return c ? c : 0xffff;
}

#endif /* BPFGATE_BPF_CSUM_H */
