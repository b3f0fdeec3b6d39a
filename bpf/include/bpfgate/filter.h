/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The XDP filter's maps and pipeline, as one inline function so that the
 * production object (bpf/xdp_filter.bpf.c) and the benchmark objects (bench/)
 * run the very same code.
 *
 * Runtime settings live in the config map, so `bpfgate set` changes limits
 * without reloading. Per-source state lives in an LRU hash whose size bounds
 * memory; its entries are shared by all CPUs and updated atomically, so the
 * rate a source gets is the configured one whichever CPUs its packets hit.
 */
#ifndef BPFGATE_BPF_FILTER_H
#define BPFGATE_BPF_FILTER_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "bpfgate/abi/xdp.h"
#include "bpfgate/parse.h"

#define BG_CAS_TRIES 4

struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, 1);
  __type(key, __u32);
  __type(value, struct bg_config);
} bg_config SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_LRU_HASH);
  __uint(max_entries, 65536); /* set from --max-sources before load */
  __type(key, struct bg_src_key);
  __type(value, struct bg_src_state);
} bg_sources SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __uint(max_entries, BG_COUNTER_NR);
  __type(key, __u32);
  __type(value, struct bg_counter);
} bg_counters SEC(".maps");

static __always_inline int bg_count(__u32 verdict, __u32 reason, __u64 bytes) {
  __u32 key = bg_counter_key(verdict, reason);
  struct bg_counter *c = bpf_map_lookup_elem(&bg_counters, &key);
  if (c) {
    c->packets++;
    c->bytes += bytes;
  }
  return verdict == BG_VERDICT_DROP ? XDP_DROP : XDP_PASS;
}

static __always_inline struct bg_src_state *bg_source(const struct bg_src_key *key, __u64 now) {
  struct bg_src_state *st = bpf_map_lookup_elem(&bg_sources, key);
  if (st)
    return st;
  struct bg_src_state init = {.tat_ns = now, .first_seen_ns = now, .last_seen_ns = now};
  bpf_map_update_elem(&bg_sources, key, &init, BPF_NOEXIST);
  return bpf_map_lookup_elem(&bg_sources, key);
}

/* GCRA: conforming if the theoretical arrival time is at most tolerance_ns in
 * the future. A compare-and-swap keeps concurrent CPUs from sharing a token. */
static __always_inline int bg_conforms(struct bg_src_state *st, const struct bg_config *cfg,
                                       __u64 now) {
  for (int i = 0; i < BG_CAS_TRIES; i++) {
    __u64 old = *(volatile __u64 *)&st->tat_ns;
    __u64 tat = old > now ? old : now;
    if (tat - now > cfg->tolerance_ns)
      return 0;
    if (__sync_val_compare_and_swap(&st->tat_ns, old, tat + cfg->emission_ns) == old)
      return 1;
  }
  return 0; /* lost every race: only a source hammering several CPUs gets here */
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

  struct bg_packet pkt = {};
  int status = bg_parse(data, data_end, &pkt);
  if (status == BG_PARSE_NOT_IP)
    return bg_count(BG_VERDICT_PASS, BG_REASON_NOT_IP, len);
  if (status == BG_PARSE_BAD_L2 || status == BG_PARSE_BAD_L3)
    return bg_count(cfg->unparsed_verdict, BG_REASON_UNPARSEABLE, len);

  /* The source is known: it is accounted and limited even when its transport
   * header is malformed, so a broken header buys no way around the limit. */
  __u64 now = bpf_ktime_get_ns();
  struct bg_src_key key;
  __builtin_memcpy(key.addr, pkt.src, sizeof(key.addr));
  struct bg_src_state *st = bg_source(&key, now);
  if (!st)
    return bg_count(BG_VERDICT_PASS, BG_REASON_OK, len); /* map refused: fail open */

  __sync_fetch_and_add(&st->packets, 1);
  __sync_fetch_and_add(&st->bytes, len);
  st->last_seen_ns = now;

  if (cfg->rate_pps && !bg_conforms(st, cfg, now)) {
    __sync_fetch_and_add(&st->drops, 1);
    return bg_count(BG_VERDICT_DROP, BG_REASON_RATE_LIMIT, len);
  }
  if (status == BG_PARSE_BAD_L4) {
    if (cfg->unparsed_verdict == BG_VERDICT_DROP)
      __sync_fetch_and_add(&st->drops, 1);
    return bg_count(cfg->unparsed_verdict, BG_REASON_UNPARSEABLE, len);
  }
  return bg_count(BG_VERDICT_PASS, BG_REASON_OK, len);
}

#endif /* BPFGATE_BPF_FILTER_H */
