/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The tc datapath: maps and the five stages as inline functions, so that the
 * production object (bpf/tc/tc.bpf.c, through bpf/tc/tc_progs.h) and the
 * benchmark objects run the very same code.
 *
 *   entry (ingress|egress) -> parse -> classify -> police -> mirror -> count
 *
 * Stages are chained by tail calls through bg_tc_stages: each stage ends by
 * tail-calling the next slot that holds a program, so an empty slot is a
 * disabled stage. What one stage tells the next travels in skb->cb (the
 * class, the verdict, flags), which belongs to the packet; the parsed headers
 * travel from parse to classify in a per-CPU scratch entry, safe because
 * nothing between the two can run another tc program on this CPU (the mirror
 * stage's clone, which can, comes later and reads only skb->cb).
 */
#ifndef BPFGATE_BPF_TC_H
#define BPFGATE_BPF_TC_H

#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>

#include "bpfgate/abi/tc.h"
#include "lib/gcra.h"
#include "lib/parse.h"

#define BG_TC_CAS_TRIES 4
#define BG_TC_PULL_LEN 128 /* bytes made linear for parsing when the head is shorter */

/* skb->cb words. */
#define BG_TC_CB_FLAGS 0
#define BG_TC_CB_CLASS 1 /* position + 1 of the packet's class; 0: none */
#define BG_TC_CB_VERDICT 2
#define BG_TC_CB_L3 3 /* offset of the IP header from the frame's start */

enum bg_tc_cb_flags {
  BG_TC_F_EGRESS = 1 << 0,
  BG_TC_F_PARSED = 1 << 1, /* the scratch entry holds this packet's headers */
  BG_TC_F_V6 = 1 << 2,
  BG_TC_F_GEN1 = 1 << 3, /* classified against generation 1 */
  BG_TC_F_MARKED = 1 << 4,
  BG_TC_F_MIRRORED = 1 << 5,
};

struct bg_tc_scratch {
  struct bg_packet pkt;
  __u8 dscp;
  __u8 _pad[7];
};

struct {
  __uint(type, BPF_MAP_TYPE_PROG_ARRAY);
  __uint(max_entries, BG_TC_STAGE_NR);
  __type(key, __u32);
  __type(value, __u32);
} bg_tc_stages SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, 1);
  __type(key, __u32);
  __type(value, struct bg_tc_config);
} bg_tc_config SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, BG_TC_GENERATIONS *BG_TC_CLASSES_MAX);
  __type(key, __u32);
  __type(value, struct bg_tc_class);
} bg_tc_classes SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, BG_TC_CLASSES_MAX);
  __type(key, __u32);
  __type(value, struct bg_tc_bucket);
} bg_tc_buckets SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __uint(max_entries, BG_TC_STATS_NR);
  __type(key, __u32);
  __type(value, struct bg_tc_stats);
} bg_tc_stats SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __uint(max_entries, 1);
  __type(key, __u32);
  __type(value, struct bg_tc_scratch);
} bg_tc_scratch SEC(".maps");

/* Tail-calls the first stage at or after `from` that is enabled; when none
 * is, the packet's verdict. Each tail call has a constant slot
 * (bpf_tail_call_static), which the JIT turns into a direct jump. */
static __always_inline int bg_tc_next(struct __sk_buff *skb, const __u32 from) {
  switch (from) {
    case BG_TC_STAGE_PARSE:
      bpf_tail_call_static(skb, &bg_tc_stages, BG_TC_STAGE_PARSE);
      __attribute__((fallthrough));
    case BG_TC_STAGE_CLASSIFY:
      bpf_tail_call_static(skb, &bg_tc_stages, BG_TC_STAGE_CLASSIFY);
      __attribute__((fallthrough));
    case BG_TC_STAGE_POLICE:
      bpf_tail_call_static(skb, &bg_tc_stages, BG_TC_STAGE_POLICE);
      __attribute__((fallthrough));
    case BG_TC_STAGE_MIRROR:
      bpf_tail_call_static(skb, &bg_tc_stages, BG_TC_STAGE_MIRROR);
      __attribute__((fallthrough));
    case BG_TC_STAGE_COUNT:
      bpf_tail_call_static(skb, &bg_tc_stages, BG_TC_STAGE_COUNT);
      __attribute__((fallthrough));
    default:
      break;
  }
  return (int)skb->cb[BG_TC_CB_VERDICT];
}

static __always_inline void bg_tc_begin(struct __sk_buff *skb, int egress) {
  skb->cb[BG_TC_CB_FLAGS] = egress ? BG_TC_F_EGRESS : 0;
  skb->cb[BG_TC_CB_CLASS] = 0;
  skb->cb[BG_TC_CB_VERDICT] = (__u32)TC_ACT_UNSPEC; /* pass, and let later filters run */
  skb->cb[BG_TC_CB_L3] = 0;
}

/* ---- parse ---- */

static __always_inline void bg_tc_do_parse(struct __sk_buff *skb) {
  __u32 zero = 0;
  struct bg_tc_scratch *s = bpf_map_lookup_elem(&bg_tc_scratch, &zero);
  if (!s)
    return;
  __u32 head = skb->data_end - skb->data;
  if (head < BG_TC_PULL_LEN && skb->len > head)
    bpf_skb_pull_data(skb, skb->len < BG_TC_PULL_LEN ? skb->len : BG_TC_PULL_LEN);
  void *data = (void *)(long)skb->data;
  void *data_end = (void *)(long)skb->data_end;

  __builtin_memset(s, 0, sizeof(*s));
  struct bg_cursor c = {.pos = data, .end = data_end};
  __be16 proto = 0;
  if (bg_parse_eth(&c, &s->pkt, &proto) < 0)
    return;
  __u32 l3_off = c.pos - data;
  int v6 = proto == bpf_htons(ETH_P_IPV6);
  int status;
  if (proto == bpf_htons(ETH_P_IP))
    status = bg_parse_ipv4(&c, &s->pkt);
  else if (v6)
    status = bg_parse_ipv6(&c, &s->pkt);
  else
    return;
  if (status == BG_PARSE_BAD_L3)
    return;
  l3_off &= 0xff;
  __u8 *ip = data + l3_off;
  if ((void *)(ip + 2) > data_end)
    return;
  /* IPv4: TOS is byte 1; IPv6: the traffic class straddles bytes 0 and 1. */
  __u8 tclass = v6 ? (__u8)(((ip[0] & 0x0f) << 4) | (ip[1] >> 4)) : ip[1];
  s->dscp = tclass >> 2;
  skb->cb[BG_TC_CB_L3] = l3_off;
  skb->cb[BG_TC_CB_FLAGS] |= BG_TC_F_PARSED | (v6 ? BG_TC_F_V6 : 0);
}

/* ---- classify ---- */

static __always_inline int bg_tc_addr_in(const __u8 addr[16], const __u64 want[2],
                                         const __u64 mask[2]) {
  __u64 a[2];
  __builtin_memcpy(a, addr, 16);
  return (a[0] & mask[0]) == want[0] && (a[1] & mask[1]) == want[1];
}

static __always_inline int bg_tc_port_in(__be16 port, __u16 lo, __u16 hi) {
  __u16 p = bpf_ntohs(port);
  return p >= lo && p <= hi;
}

static __always_inline int bg_tc_matches(const struct bg_tc_class *c, const struct bg_tc_scratch *s,
                                         __u8 dir) {
  const struct bg_tc_match *m = &c->match;
  __u32 f = m->flags;
  if (!(c->dirs & dir))
    return 0;
  if ((f & BG_TC_M_PROTO) && s->pkt.l4_proto != m->l4_proto)
    return 0;
  if ((f & BG_TC_M_DSCP) && s->dscp != m->dscp)
    return 0;
  if (f & (BG_TC_M_SPORT | BG_TC_M_DPORT | BG_TC_M_PORT)) {
    if (!s->pkt.has_l4 || s->pkt.fragment)
      return 0;
    if ((f & BG_TC_M_SPORT) && !bg_tc_port_in(s->pkt.sport, m->sport_lo, m->sport_hi))
      return 0;
    if ((f & BG_TC_M_DPORT) && !bg_tc_port_in(s->pkt.dport, m->dport_lo, m->dport_hi))
      return 0;
    if ((f & BG_TC_M_PORT) && !bg_tc_port_in(s->pkt.sport, m->dport_lo, m->dport_hi) &&
        !bg_tc_port_in(s->pkt.dport, m->dport_lo, m->dport_hi))
      return 0;
  }
  if ((f & BG_TC_M_SRC) && !bg_tc_addr_in(s->pkt.src, m->src, m->src_mask))
    return 0;
  if ((f & BG_TC_M_DST) && !bg_tc_addr_in(s->pkt.dst, m->dst, m->dst_mask))
    return 0;
  return 1;
}

/* Rewrites the DSCP of the packet's IP header, keeping ECN. IPv4's header
 * checksum is updated incrementally (TOS and checksum change together, so a
 * CHECKSUM_COMPLETE sum stays right); IPv6 has no header checksum, and
 * BPF_F_RECOMPUTE_CSUM keeps a CHECKSUM_COMPLETE sum right. The traffic class
 * is not part of any transport pseudo-header. */
static __always_inline void bg_tc_set_dscp(struct __sk_buff *skb, __u8 dscp) {
  __u32 l3_off = skb->cb[BG_TC_CB_L3] & 0xff;
  int v6 = skb->cb[BG_TC_CB_FLAGS] & BG_TC_F_V6;
  void *data = (void *)(long)skb->data;
  void *data_end = (void *)(long)skb->data_end;
  __u8 *ip = data + l3_off;
  if ((void *)(ip + 2) > data_end)
    return;
  __u8 b0 = ip[0], b1 = ip[1];
  if (!v6) {
    __u8 tos = (__u8)((dscp << 2) | (b1 & 3));
    if (tos == b1)
      return;
    __u8 old_w[2] = {b0, b1}, new_w[2] = {b0, tos};
    __u16 from, to;
    __builtin_memcpy(&from, old_w, 2);
    __builtin_memcpy(&to, new_w, 2);
    bpf_l3_csum_replace(skb, l3_off + 10 /* offsetof(struct iphdr, check) */, from, to, 2);
    bpf_skb_store_bytes(skb, l3_off + 1, &tos, 1, 0);
    return;
  }
  __u8 tclass = (__u8)(((b0 & 0x0f) << 4) | (b1 >> 4));
  __u8 want = (__u8)((dscp << 2) | (tclass & 3));
  if (want == tclass)
    return;
  __u8 w[2] = {(__u8)((b0 & 0xf0) | (want >> 4)), (__u8)((want << 4) | (b1 & 0x0f))};
  bpf_skb_store_bytes(skb, l3_off, w, 2, BPF_F_RECOMPUTE_CSUM);
}

static __always_inline __u32 bg_tc_gen(struct __sk_buff *skb) {
  return (skb->cb[BG_TC_CB_FLAGS] & BG_TC_F_GEN1) ? 1 : 0;
}

/* The class this packet was classified into (NULL: none), from the same
 * generation classify used. */
static __always_inline const struct bg_tc_class *bg_tc_class_of(struct __sk_buff *skb, __u32 *pos) {
  __u32 slot = skb->cb[BG_TC_CB_CLASS];
  if (slot == 0 || slot > BG_TC_CLASSES_MAX)
    return NULL;
  *pos = slot - 1;
  __u32 key = bg_tc_gen(skb) * BG_TC_CLASSES_MAX + *pos;
  return bpf_map_lookup_elem(&bg_tc_classes, &key);
}

static __always_inline void bg_tc_do_classify(struct __sk_buff *skb) {
  __u32 flags = skb->cb[BG_TC_CB_FLAGS];
  if (!(flags & BG_TC_F_PARSED))
    return;
  __u32 zero = 0;
  const struct bg_tc_scratch *s = bpf_map_lookup_elem(&bg_tc_scratch, &zero);
  const struct bg_tc_config *cfg = bpf_map_lookup_elem(&bg_tc_config, &zero);
  if (!s || !cfg)
    return;
  __u32 gen = cfg->active & 1;
  __u8 dir = (flags & BG_TC_F_EGRESS) ? BG_TC_DIR_EGRESS : BG_TC_DIR_INGRESS;
  const struct bg_tc_class *hit = NULL;
  __u32 pos = 0;
  for (__u32 i = 0; i < BG_TC_CLASSES_MAX; i++) {
    __u32 key = gen * BG_TC_CLASSES_MAX + i;
    const struct bg_tc_class *c = bpf_map_lookup_elem(&bg_tc_classes, &key);
    if (!c || !(c->flags & BG_TC_CLASS_VALID))
      break;
    if (bg_tc_matches(c, s, dir)) {
      hit = c;
      pos = i;
      break;
    }
  }
  if (!hit)
    return;
  skb->cb[BG_TC_CB_CLASS] = pos + 1;
  skb->cb[BG_TC_CB_FLAGS] = flags | (gen ? BG_TC_F_GEN1 : 0);
  if (hit->skb_priority)
    skb->priority = hit->skb_priority;
  if (hit->flags & BG_TC_CLASS_SET_DSCP)
    bg_tc_set_dscp(skb, hit->set_dscp);
}

/* ---- police ---- */

/* The bytes a packet puts on the wire: on egress the kernel has counted the
 * headers of every segment of a GSO packet (qdisc_pkt_len_init, before
 * clsact); elsewhere (ingress, BPF_PROG_TEST_RUN) the frame's length. */
static __always_inline __u64 bg_tc_wire_len(struct __sk_buff *skb) {
  __u32 wire = skb->wire_len;
  return wire > skb->len ? wire : skb->len;
}

/* GCRA over time: a packet conforms while the bucket is not empty, i.e. the
 * theoretical arrival time is at most `depth` ahead of now, and then pays its
 * whole cost. The bucket can so go up to one packet into debt: a GSO packet
 * larger than the bucket still gets through when the bucket has credit,
 * instead of never, and the long-run rate stays exact because every byte
 * that passes is paid for (bpf/lib/gcra.h; a race lost on every try does not
 * conform). */
static __always_inline int bg_tc_conforms(struct bg_tc_bucket *b, __u64 cost, __u64 depth,
                                          __u64 now) {
  return bg_gcra_take(&b->tat_ns, cost, depth, now, BG_TC_CAS_TRIES) == BG_GCRA_CONFORMS;
}

static __always_inline void bg_tc_do_police(struct __sk_buff *skb) {
  __u32 pos = 0;
  const struct bg_tc_class *c = bg_tc_class_of(skb, &pos);
  if (!c || !c->rate_bps)
    return;
  struct bg_tc_bucket *b = bpf_map_lookup_elem(&bg_tc_buckets, &pos);
  if (!b)
    return;
  __u64 cost = bg_tc_wire_len(skb) * 8000000000ULL / c->rate_bps;
  if (bg_tc_conforms(b, cost, c->burst_ns, bpf_ktime_get_ns()))
    return;
  if (c->exceed == BG_TC_EXCEED_MARK && (skb->cb[BG_TC_CB_FLAGS] & BG_TC_F_EGRESS)) {
    skb->cb[BG_TC_CB_FLAGS] |= BG_TC_F_MARKED;
    bg_tc_set_dscp(skb, c->exceed_dscp);
    return;
  }
  skb->cb[BG_TC_CB_VERDICT] = TC_ACT_SHOT;
}

/* ---- mirror ---- */

static __always_inline void bg_tc_do_mirror(struct __sk_buff *skb) {
  if (skb->cb[BG_TC_CB_VERDICT] == TC_ACT_SHOT)
    return;
  __u32 pos = 0;
  const struct bg_tc_class *c = bg_tc_class_of(skb, &pos);
  if (!c || !c->mirror_ifindex)
    return;
  struct bg_tc_stats *st = bpf_map_lookup_elem(&bg_tc_stats, &pos);
  if (!st)
    return;
  __u64 seq = st->mirror_seq++;
  __u32 every = c->mirror_sample ? c->mirror_sample : 1;
  if (seq % every)
    return;
  if (bpf_clone_redirect(skb, c->mirror_ifindex, 0) == 0)
    skb->cb[BG_TC_CB_FLAGS] |= BG_TC_F_MIRRORED;
}

/* ---- count ---- */

static __always_inline void bg_tc_do_count(struct __sk_buff *skb) {
  __u32 slot = skb->cb[BG_TC_CB_CLASS];
  __u32 key = slot && slot <= BG_TC_CLASSES_MAX ? slot - 1 : BG_TC_STATS_UNCLASSIFIED;
  struct bg_tc_stats *st = bpf_map_lookup_elem(&bg_tc_stats, &key);
  if (!st)
    return;
  __u32 flags = skb->cb[BG_TC_CB_FLAGS];
  __u64 len = bg_tc_wire_len(skb);
  st->packets++;
  st->bytes += len;
  if (flags & BG_TC_F_MARKED)
    st->marked++;
  if (flags & BG_TC_F_MIRRORED)
    st->mirrored++;
  if (skb->cb[BG_TC_CB_VERDICT] == TC_ACT_SHOT) {
    st->drops++;
    return;
  }
  __u64 now = bpf_ktime_get_ns();
  if (now - st->win_start_ns >= BG_TC_RATE_WINDOW_NS) {
    st->prev_bytes = st->win_bytes;
    st->prev_packets = st->win_packets;
    st->prev_ns = now - st->win_start_ns;
    st->win_start_ns = now;
    st->win_bytes = 0;
    st->win_packets = 0;
  }
  st->win_bytes += len;
  st->win_packets++;
}

#endif /* BPFGATE_BPF_TC_H */
