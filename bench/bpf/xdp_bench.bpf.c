/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Benchmark entry points around the filter pipeline (bpf/xdp/filter.h), run
 * through BPF_PROG_TEST_RUN by bench/xdp_nspp.cpp:
 *  - bg_bench_filter:        the pipeline, unchanged, on the frame as given;
 *  - bg_bench_rotate_filter: rewrites the low 32 bits of the IPv6 source
 *                            (2001:db8::/96 in the benchmark's frame) to the
 *                            next of bg_bench_nr_sources, then the pipeline;
 *  - bg_bench_rotate_drop:   the same rewrite, then XDP_DROP: the floor the
 *                            rotating case is measured against;
 *  - bg_bench_seed, bg_bench_rotate_seed: the seed-style reference, what the
 *                            project's first filter did: parse, one lookup of
 *                            the source in a hash (inserted if missing), one
 *                            counter in its value, a verdict (always pass);
 *  - bg_bench_stage_parse, bg_bench_stage_policy, bg_bench_stage_limit: the
 *                            pipeline's first one, two or three stages, then
 *                            XDP_DROP (no verdict counted, no drop event), so
 *                            differences give each stage's cost;
 *  - bg_bench_probe:         adds one to the IPv4 identification field and
 *                            drops; tells whether a repeat of test_run sees
 *                            the packet as the previous repeat left it.
 */
#include "xdp/filter.h"

/* Set between open and load: sources are <prefix of the frame's source>::0 .. nr - 1. */
const volatile __u32 bg_bench_nr_sources = 1;

/* Index of the next source, per CPU. test_run may move to another CPU when it
 * reschedules between repeats, so the benchmark pins itself to one CPU. */
struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __uint(max_entries, 1);
  __type(key, __u32);
  __type(value, __u32);
} bg_bench_seq SEC(".maps");

/* The IPv4 header of an untagged Ethernet frame, or NULL. */
static __always_inline struct iphdr *bg_bench_ipv4(struct xdp_md *ctx) {
  void *data = (void *)(long)ctx->data;
  void *data_end = (void *)(long)ctx->data_end;
  struct ethhdr *eth = data;
  struct iphdr *iph = data + sizeof(*eth);
  if ((void *)(iph + 1) > data_end)
    return NULL;
  if (eth->h_proto != bpf_htons(ETH_P_IP))
    return NULL;
  return iph;
}

/* The IPv6 header of an untagged Ethernet frame, or NULL. */
static __always_inline struct ipv6hdr *bg_bench_ipv6(struct xdp_md *ctx) {
  void *data = (void *)(long)ctx->data;
  void *data_end = (void *)(long)ctx->data_end;
  struct ethhdr *eth = data;
  struct ipv6hdr *ip6 = data + sizeof(*eth);
  if ((void *)(ip6 + 1) > data_end)
    return NULL;
  if (eth->h_proto != bpf_htons(ETH_P_IPV6))
    return NULL;
  return ip6;
}

/* Writes the next source address into the frame (its low 32 bits). The UDP
 * checksum is left stale: the pipeline does not check it and the frame goes
 * nowhere. Returns -1 if the frame is not IPv6 (the rotating cases feed IPv6,
 * whose documentation prefix has room for a million sources). */
static __always_inline int bg_bench_rotate_source(struct xdp_md *ctx) {
  struct ipv6hdr *ip6 = bg_bench_ipv6(ctx);
  if (!ip6)
    return -1;
  __u32 zero = 0;
  __u32 *seq = bpf_map_lookup_elem(&bg_bench_seq, &zero);
  if (!seq)
    return -1;
  __u32 idx = *seq;
  /* Wrap instead of `% nr`: the same sequence without a division. */
  *seq = idx + 1 >= bg_bench_nr_sources ? 0 : idx + 1;
  ip6->saddr.in6_u.u6_addr32[3] = bpf_htonl(idx);
  return 0;
}

/* The seed-style reference's map: a source address (IPv4 v4-mapped, as
 * bg_parse gives it) to a packet count. An LRU hash, as the first filter's,
 * sized like bg_sources before load. */
struct bg_bench_seed_key {
  __u8 addr[16];
};

struct {
  __uint(type, BPF_MAP_TYPE_LRU_HASH);
  __uint(max_entries, 65536);
  __type(key, struct bg_bench_seed_key);
  __type(value, __u64);
} bg_bench_seed_sources SEC(".maps");

static __always_inline int bg_bench_seed_filter(struct xdp_md *ctx) {
  void *data = (void *)(long)ctx->data;
  void *data_end = (void *)(long)ctx->data_end;
  struct bg_packet pkt = {};
  int status = bg_parse(data, data_end, &pkt);
  if (status == BG_PARSE_NOT_IP || status == BG_PARSE_BAD_L2 || status == BG_PARSE_BAD_L3)
    return XDP_PASS;
  struct bg_bench_seed_key key;
  __builtin_memcpy(key.addr, pkt.src, sizeof(key.addr));
  __u64 *count = bpf_map_lookup_elem(&bg_bench_seed_sources, &key);
  if (!count) {
    __u64 one = 1;
    bpf_map_update_elem(&bg_bench_seed_sources, &key, &one, BPF_NOEXIST);
    return XDP_PASS;
  }
  __sync_fetch_and_add(count, 1); /* shared by all CPUs, as the first filter's state */
  return XDP_PASS;
}

SEC("xdp")
int bg_bench_filter(struct xdp_md *ctx) {
  return bg_filter(ctx);
}

SEC("xdp")
int bg_bench_rotate_filter(struct xdp_md *ctx) {
  if (bg_bench_rotate_source(ctx) < 0)
    return XDP_ABORTED;
  return bg_filter(ctx);
}

SEC("xdp")
int bg_bench_rotate_drop(struct xdp_md *ctx) {
  if (bg_bench_rotate_source(ctx) < 0)
    return XDP_ABORTED;
  return XDP_DROP;
}

SEC("xdp")
int bg_bench_seed(struct xdp_md *ctx) {
  return bg_bench_seed_filter(ctx);
}

SEC("xdp")
int bg_bench_rotate_seed(struct xdp_md *ctx) {
  if (bg_bench_rotate_source(ctx) < 0)
    return XDP_ABORTED;
  return bg_bench_seed_filter(ctx);
}

/* XDP_DROP, after a call that reads w: the parser is inline, and without
 * the call the compiler drops the work of a stage whose result nobody
 * reads. Each stage program makes it, so it cancels out of the differences
 * but the last (the whole filter makes none). */
__noinline int bg_bench_use(struct bg_work *w) {
  return w && w->status == 255 ? XDP_PASS : XDP_DROP;
}

SEC("xdp")
int bg_bench_stage_parse(struct xdp_md *ctx) {
  struct bg_work w = {};
  bg_stage_parse(ctx, &w);
  return bg_bench_use(&w);
}

SEC("xdp")
int bg_bench_stage_policy(struct xdp_md *ctx) {
  struct bg_work w = {};
  bg_stage_parse(ctx, &w);
  bg_stage_policy(&w);
  return bg_bench_use(&w);
}

/* bg_filter() without its last step (count the verdict, sample a drop). */
SEC("xdp")
int bg_bench_stage_limit(struct xdp_md *ctx) {
  struct bg_work w = {};
  bg_stage_parse(ctx, &w);
  if (bg_stage_policy(&w) == BG_NEXT)
    bg_stage_limit(ctx, &w);
  return bg_bench_use(&w);
}

SEC("xdp")
int bg_bench_probe(struct xdp_md *ctx) {
  struct iphdr *iph = bg_bench_ipv4(ctx);
  if (!iph)
    return XDP_ABORTED;
  iph->id = bpf_htons(bpf_ntohs(iph->id) + 1);
  return XDP_DROP;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
