/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Benchmark entry points around the load balancer (bpf/lb/lb.bpf.c, loaded
 * on its own by the control plane's code) and the filter (bpf/xdp/filter.h),
 * run through BPF_PROG_TEST_RUN by bench/lb_nspp.cpp.
 *
 * A repeat of test_run sees the frame as the previous repeat left it, and the
 * balancer rewrites its destination: every program here but bg_lbb_tx first
 * writes the case's frame (bg_lbb_frame, set from user space) back over the
 * packet, and with bg_lbb_rotate a new source address and port per packet, so
 * that every repeat is a frame to the VIP and, rotating, a new flow.
 *  - bg_lbb_tx:        the reference: an empty program returning XDP_TX;
 *  - bg_lbb_floor:     restore (and rotate), tail call into bg_lbb_tx: what the
 *                      harness adds to the balancer's own cost;
 *  - bg_lbb_lb:        restore (and rotate), tail call into the balancer
 *                      (slot BG_LBB_LB of bg_lbb_jump, filled by the bench);
 *  - bg_lbb_filter:    restore, the filter pipeline, then a tail call into an
 *                      empty slot: the production filter with no balancer;
 *  - bg_lbb_filter_lb: restore, the filter, then (for what it passes) a tail
 *                      call into bg_xdp_next, which holds the balancer: the
 *                      chain as the agent builds it;
 *  - bg_lbb_filter_ext: restore, the filter, its verdict: the first of two
 *                      programs in libxdp's dispatcher (the balancer the second,
 *                      run for what the filter passes), where freplace works;
 *  - bg_lbb_minimal:   restore, tail call into bg_lbb_min_dnat (slot
 *                      BG_LBB_MIN): the least any DNAT balancer with a table of
 *                      flows does for an IPv4 TCP frame of a known flow (one
 *                      array lookup by a hash of the 5-tuple, the compare, the
 *                      destination address and port written with both
 *                      checksums and the TTL, the MACs, a redirect), and
 *                      nothing else (no counters, health, expiry or generation
 *                      checks): a reference for what the balancer's
 *                      established path could cost at best.
 */
#include "xdp/filter.h"

#include "lb_bench.h"
#include "lib/csum.h"

#define BG_LBB_FRAME 96 /* every case's frame is this long */

enum { BG_LBB_TX = 0, BG_LBB_LB = 1, BG_LBB_EMPTY = 2, BG_LBB_MIN = 3, BG_LBB_SLOTS = 4 };

/* The case's frame, written over the packet before each repeat. */
__u8 bg_lbb_frame[BG_LBB_FRAME];
/* 0: the frame as it is; 4 or 6: a new source (low 16 bits of the address)
 * and port per packet, in that family. */
__u32 bg_lbb_rotate;

struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __uint(max_entries, 1);
  __type(key, __u32);
  __type(value, __u32);
} bg_lbb_seq SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_PROG_ARRAY);
  __uint(max_entries, BG_LBB_SLOTS);
  __type(key, __u32);
  __type(value, __u32);
} bg_lbb_jump SEC(".maps");

/* Offsets in an untagged frame: IPv4 source 26-29, IPv6 source 22-37; the
 * transport's source port right after a 20-byte IPv4 or 40-byte IPv6 header. */
static __always_inline int bg_lbb_restore(struct xdp_md *ctx) {
  void *data = (void *)(long)ctx->data;
  void *data_end = (void *)(long)ctx->data_end;
  if (data + BG_LBB_FRAME > data_end)
    return -1;
  __builtin_memcpy(data, bg_lbb_frame, BG_LBB_FRAME);
  __u32 family = bg_lbb_rotate;
  if (!family)
    return 0;
  __u32 zero = 0;
  __u32 *seq = bpf_map_lookup_elem(&bg_lbb_seq, &zero);
  if (!seq)
    return -1;
  __u32 n = (*seq)++;
  __u8 *p = data;
  __be16 port = bpf_htons((__u16)(0x8000 | (n & 0x7fff)));
  __be16 host = bpf_htons((__u16)(n >> 15));
  if (family == 4) {
    __builtin_memcpy(p + 28, &host, 2);
    __builtin_memcpy(p + 34, &port, 2);
  } else {
    __builtin_memcpy(p + 36, &host, 2);
    __builtin_memcpy(p + 54, &port, 2);
  }
  return 0;
}

SEC("xdp")
int bg_lbb_tx(struct xdp_md *ctx) {
  (void)ctx;
  return XDP_TX;
}

SEC("xdp")
int bg_lbb_floor(struct xdp_md *ctx) {
  if (bg_lbb_restore(ctx))
    return XDP_ABORTED;
  bpf_tail_call_static(ctx, &bg_lbb_jump, BG_LBB_TX);
  return XDP_ABORTED;
}

SEC("xdp")
int bg_lbb_lb(struct xdp_md *ctx) {
  if (bg_lbb_restore(ctx))
    return XDP_ABORTED;
  bpf_tail_call_static(ctx, &bg_lbb_jump, BG_LBB_LB);
  return XDP_ABORTED;
}

struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, 1 << BG_LBB_MIN_BITS);
  __type(key, __u32);
  __type(value, struct bg_lbb_min_flow);
} bg_lbb_min_flows SEC(".maps");

SEC("xdp")
int bg_lbb_min_dnat(struct xdp_md *ctx) {
  void *data = (void *)(long)ctx->data;
  void *data_end = (void *)(long)ctx->data_end;
  struct ethhdr *eth = data;
  struct iphdr *iph = (void *)(eth + 1);
  struct tcphdr *th = (void *)(iph + 1);
  if ((void *)(th + 1) > data_end || eth->h_proto != bpf_htons(ETH_P_IP) || iph->ihl != 5 ||
      iph->protocol != IPPROTO_TCP)
    return XDP_PASS;
  __u32 idx = bg_lbb_min_hash(iph->saddr, iph->daddr, th->source, th->dest);
  struct bg_lbb_min_flow *f = bpf_map_lookup_elem(&bg_lbb_min_flows, &idx);
  if (!f || f->saddr != iph->saddr || f->daddr != iph->daddr || f->sport != th->source ||
      f->dport != th->dest)
    return XDP_PASS;
  __u32 d = bg_csum_diff(&iph->daddr, &f->to_addr, 2, 0);
  __u32 l4d = bg_csum_diff(&th->dest, &f->to_port, 1, d);
  __u16 old = *(__u16 *)&iph->ttl;
  iph->ttl--;
  d = bg_csum_diff(&old, &iph->ttl, 1, d);
  iph->daddr = f->to_addr;
  th->dest = f->to_port;
  iph->check = bg_csum_update(iph->check, d);
  th->check = bg_csum_update(th->check, l4d);
  __builtin_memcpy(eth->h_dest, f->dmac, ETH_ALEN);
  __builtin_memcpy(eth->h_source, f->smac, ETH_ALEN);
  return bpf_redirect(f->ifindex, 0);
}

SEC("xdp")
int bg_lbb_minimal(struct xdp_md *ctx) {
  if (bg_lbb_restore(ctx))
    return XDP_ABORTED;
  bpf_tail_call_static(ctx, &bg_lbb_jump, BG_LBB_MIN);
  return XDP_ABORTED;
}

SEC("xdp")
int bg_lbb_filter(struct xdp_md *ctx) {
  if (bg_lbb_restore(ctx))
    return XDP_ABORTED;
  int action = bg_filter(ctx);
  if (action == XDP_PASS)
    bpf_tail_call_static(ctx, &bg_lbb_jump, BG_LBB_EMPTY);
  return action;
}

SEC("xdp")
int bg_lbb_filter_lb(struct xdp_md *ctx) {
  if (bg_lbb_restore(ctx))
    return XDP_ABORTED;
  int action = bg_filter(ctx);
  if (action == XDP_PASS)
    bpf_tail_call_static(ctx, &bg_xdp_next, BG_NEXT_LB);
  return action;
}

SEC("xdp")
int bg_lbb_filter_ext(struct xdp_md *ctx) {
  if (bg_lbb_restore(ctx))
    return XDP_ABORTED;
  return bg_filter(ctx);
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
