/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The XDP filter's pipeline, as one inline function so that the production
 * object (bpf/xdp_filter.bpf.c) and the benchmark objects (bench/) run the
 * very same code:
 *
 *   parse -> ACL (longest prefix wins: allow passes unlimited, deny drops)
 *         -> blocklist -> rule by protocol/port (pass, drop or its own limit)
 *         -> per-source bucket -> per-prefix bucket -> verdict
 *
 * A source that stays over its limit for block_after_ns goes on the
 * blocklist for block_ttl_ns. Counters are per CPU, keyed verdict x reason.
 */
#ifndef BPFGATE_BPF_FILTER_H
#define BPFGATE_BPF_FILTER_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "bpfgate/abi/xdp.h"
#include "bpfgate/events.h"
#include "bpfgate/maps.h"
#include "bpfgate/parse.h"

#define BG_CAS_TRIES 4
#define BG_STREAK_GAP_NS 1000000000ULL /* a quiet second ends an over-limit streak */

static __always_inline int bg_count(__u32 verdict, __u32 reason, __u64 bytes) {
  __u32 key = bg_counter_key(verdict, reason);
  struct bg_counter *c = bpf_map_lookup_elem(&bg_counters, &key);
  if (c) {
    c->packets++;
    c->bytes += bytes;
  }
  return verdict == BG_VERDICT_DROP ? XDP_DROP : XDP_PASS;
}

/* bg_count for a verdict that may be a drop: drops are sampled as events. */
static __always_inline int bg_verdict(void *ctx, __u32 verdict, __u32 reason, __u64 bytes,
                                      const struct bg_packet *pkt, __u32 rule_id) {
  if (verdict == BG_VERDICT_DROP)
    bg_event_drop(ctx, pkt, reason, rule_id, bytes);
  return bg_count(verdict, reason, bytes);
}

/* Whether a source without state may get some now: this CPU's share of the
 * new-source GCRA (no atomics: a CPU runs one XDP program at a time). */
static __always_inline int bg_admit(const struct bg_limit *lim, __u64 now) {
  if (!lim->rate_pps)
    return 1;
  __u32 zero = 0;
  struct bg_admission *a = bpf_map_lookup_elem(&bg_admission, &zero);
  if (!a)
    return 1;
  __u64 tat = a->tat_ns > now ? a->tat_ns : now;
  if (tat - now > lim->tolerance_ns)
    return 0;
  a->tat_ns = tat + lim->emission_ns;
  return 1;
}

/* The bucket of key, made if missing. NULL with *refused set: a new source
 * over the new-source limit (admission is NULL for prefix buckets, which
 * only admitted sources make); NULL alone: the map refused the entry. */
static __always_inline struct bg_src_state *bg_bucket(const struct bg_src_key *key, __u64 now,
                                                      const struct bg_limit *admission,
                                                      int *refused) {
  struct bg_src_state *st = bpf_map_lookup_elem(&bg_sources, key);
  if (st)
    return st;
  if (admission && !bg_admit(admission, now)) {
    *refused = 1;
    return NULL;
  }
  struct bg_src_state init = {.tat_ns = now, .first_seen_ns = now, .last_seen_ns = now};
  bpf_map_update_elem(&bg_sources, key, &init, BPF_NOEXIST);
  return bpf_map_lookup_elem(&bg_sources, key);
}

/* GCRA: conforming if the theoretical arrival time is at most tolerance_ns in
 * the future. A compare-and-swap keeps concurrent CPUs from sharing a token. */
static __always_inline int bg_conforms(struct bg_src_state *st, const struct bg_limit *lim,
                                       __u64 now) {
  for (int i = 0; i < BG_CAS_TRIES; i++) {
    __u64 old = *(volatile __u64 *)&st->tat_ns;
    __u64 tat = old > now ? old : now;
    if (tat - now > lim->tolerance_ns)
      return 0;
    if (__sync_val_compare_and_swap(&st->tat_ns, old, tat + lim->emission_ns) == old)
      return 1;
  }
  return 0; /* lost every race: only a source hammering several CPUs gets here */
}

/* Accounts a packet to a bucket and runs it; 1 if it conforms. */
static __always_inline int bg_take(const struct bg_src_key *key, const struct bg_limit *lim,
                                   __u64 now, __u64 len, struct bg_src_state **out,
                                   const struct bg_limit *admission, int *refused) {
  struct bg_src_state *st = bg_bucket(key, now, admission, refused);
  *out = st;
  if (!st)
    return !*refused; /* map refused the entry: fail open */
  __sync_fetch_and_add(&st->packets, 1);
  __sync_fetch_and_add(&st->bytes, len);
  st->last_seen_ns = now;
  if (!lim->rate_pps || bg_conforms(st, lim, now))
    return 1;
  __sync_fetch_and_add(&st->drops, 1);
  return 0;
}

static __always_inline void bg_lpm_of(struct bg_lpm_key *k, const __u8 addr[16]) {
  k->prefixlen = 128;
  __builtin_memcpy(k->addr, addr, 16);
}

/* Auto-block: a source dropped at least once a second for block_after_ns
 * goes on the blocklist for block_ttl_ns. */
static __always_inline int bg_streak(struct bg_src_state *st, const struct bg_settings *s,
                                     const __u8 addr[16], __u64 now) {
  if (!s->block_after_ns || !st)
    return 0;
  if (!st->over_since_ns || now - st->last_drop_ns > BG_STREAK_GAP_NS)
    st->over_since_ns = now;
  st->last_drop_ns = now;
  if (now - st->over_since_ns < s->block_after_ns)
    return 0;
  struct bg_lpm_key k;
  bg_lpm_of(&k, addr);
  struct bg_block b = {
      .expires_ns = now + s->block_ttl_ns, .added_ns = now, .reason = BG_BLOCK_AUTO};
  int added = bpf_map_update_elem(&bg_blocklist, &k, &b, BPF_NOEXIST) == 0;
  st->over_since_ns = 0;
  return added;
}

/* Masks addr to a prefix of `len` bits (in the 128-bit space). */
static __always_inline void bg_mask(__u8 out[16], const __u8 in[16], __u32 len) {
#pragma unroll
  for (int i = 0; i < 16; i++) {
    __u32 bits = len > (__u32)i * 8 ? len - (__u32)i * 8 : 0;
    __u8 m = bits >= 8 ? 0xff : (__u8)(0xff << (8 - bits));
    out[i] = in[i] & m;
  }
}

/* The rule for this packet: by protocol and destination port, then by
 * protocol alone, else the default (rule 0). */
static __always_inline __u32 bg_rule_id(__u32 gen, const struct bg_packet *pkt) {
  if (pkt->has_l4 && (pkt->l4_proto == IPPROTO_TCP || pkt->l4_proto == IPPROTO_UDP)) {
    void *ports = bpf_map_lookup_elem(&bg_ports, &gen);
    if (ports) {
      __u32 slot = pkt->l4_proto == IPPROTO_TCP ? 0 : 1;
      __u32 idx = slot * 65536 + bpf_ntohs(pkt->dport);
      __u32 *id = bpf_map_lookup_elem(ports, &idx);
      if (id && *id)
        return *id;
    }
  }
  void *protos = bpf_map_lookup_elem(&bg_protos, &gen);
  if (protos) {
    __u32 p = pkt->l4_proto;
    __u32 *id = bpf_map_lookup_elem(protos, &p);
    if (id && *id)
      return *id;
  }
  return BG_RULE_DEFAULT;
}

/* The whole pipeline on one frame: returns an XDP action. */
static __always_inline int bg_filter(struct xdp_md *ctx) {
  void *data = (void *)(long)ctx->data;
  void *data_end = (void *)(long)ctx->data_end;
  __u64 len = data_end - data;
  __u32 zero = 0;

  const struct bg_config *cfg = bpf_map_lookup_elem(&bg_config, &zero);
  if (!cfg)
    return XDP_PASS;
  __u32 gen = cfg->active & 1;
  const struct bg_settings *s = &cfg->gen[gen];

  struct bg_packet pkt = {};
  int status = bg_parse(data, data_end, &pkt);
  if (status == BG_PARSE_NOT_IP)
    return bg_count(BG_VERDICT_PASS, BG_REASON_NOT_IP, len);
  if (status == BG_PARSE_BAD_L2 || status == BG_PARSE_BAD_L3)
    return bg_verdict(ctx, s->unparsed_verdict, BG_REASON_UNPARSEABLE, len, &pkt, 0);

  /* The source is known from here on: a broken transport header buys no way
   * around the ACL, the blocklist or the limits. */
  struct bg_lpm_key lk;
  bg_lpm_of(&lk, pkt.src);
  void *acl = (s->flags & BG_SET_ACL) ? bpf_map_lookup_elem(&bg_acl, &gen) : NULL;
  if (acl) {
    __u32 *action = bpf_map_lookup_elem(acl, &lk);
    if (action && *action == BG_ACL_ALLOW)
      return bg_count(BG_VERDICT_PASS, BG_REASON_ALLOW, len);
    if (action && *action == BG_ACL_DENY)
      return bg_verdict(ctx, BG_VERDICT_DROP, BG_REASON_DENY, len, &pkt, 0);
  }

  __u64 now = bpf_ktime_get_ns();
  struct bg_block *blk = bpf_map_lookup_elem(&bg_blocklist, &lk);
  if (blk && (!blk->expires_ns || blk->expires_ns > now)) {
    __sync_fetch_and_add(&blk->drops, 1);
    return bg_verdict(ctx, BG_VERDICT_DROP, BG_REASON_BLOCKLIST, len, &pkt, 0);
  }

  __u32 rule_id =
      status == BG_PARSE_OK && (s->flags & BG_SET_RULES) ? bg_rule_id(gen, &pkt) : BG_RULE_DEFAULT;
  void *rules = bpf_map_lookup_elem(&bg_rules, &gen);
  if (!rules)
    return bg_count(BG_VERDICT_PASS, BG_REASON_OK, len);
  const struct bg_rule *rule = bpf_map_lookup_elem(rules, &rule_id);
  if (!rule)
    return bg_count(BG_VERDICT_PASS, BG_REASON_OK, len);
  bg_rule_hit(ctx, rule_id, cfg->generation, &pkt, len);
  if (rule->action == BG_ACTION_DROP)
    return bg_verdict(ctx, BG_VERDICT_DROP, BG_REASON_RULE, len, &pkt, rule_id);
  if (rule->action == BG_ACTION_PASS)
    return bg_count(BG_VERDICT_PASS, BG_REASON_RULE, len);

  struct bg_src_key key = {.rule = (__u16)rule_id, .kind = BG_SRC_ADDR};
  __builtin_memcpy(key.addr, pkt.src, sizeof(key.addr));
  struct bg_src_state *st;
  int refused = 0;
  if (!bg_take(&key, &rule->limit, now, len, &st, &s->new_source_limit, &refused)) {
    if (refused)
      return bg_verdict(ctx, BG_VERDICT_DROP, BG_REASON_NEW_SOURCE, len, &pkt, rule_id);
    if (bg_streak(st, s, pkt.src, now))
      bg_event_blocked(ctx, &pkt, rule_id, s->block_ttl_ns, now);
    return bg_verdict(ctx, BG_VERDICT_DROP, BG_REASON_RATE_LIMIT, len, &pkt, rule_id);
  }

  if (s->prefix_limit.rate_pps) {
    int v4 = pkt.l3_proto == ETH_P_IP;
    struct bg_src_key pk = {.kind = BG_SRC_PREFIX};
    pk.prefixlen = v4 ? 96 + s->prefix_v4 : s->prefix_v6;
    bg_mask(pk.addr, pkt.src, pk.prefixlen);
    struct bg_src_state *pst;
    if (!bg_take(&pk, &s->prefix_limit, now, len, &pst, NULL, &refused)) {
      if (st)
        __sync_fetch_and_add(&st->drops, 1);
      return bg_verdict(ctx, BG_VERDICT_DROP, BG_REASON_PREFIX_LIMIT, len, &pkt, rule_id);
    }
  }

  if (status == BG_PARSE_BAD_L4) {
    if (s->unparsed_verdict == BG_VERDICT_DROP && st)
      __sync_fetch_and_add(&st->drops, 1);
    return bg_verdict(ctx, s->unparsed_verdict, BG_REASON_UNPARSEABLE, len, &pkt, rule_id);
  }
  return bg_count(BG_VERDICT_PASS, BG_REASON_OK, len);
}

#endif /* BPFGATE_BPF_FILTER_H */
