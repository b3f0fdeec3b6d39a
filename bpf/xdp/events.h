/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The XDP filter's events and per-rule counters (include/bpfgate/abi/events.h):
 * auto-blocks, the first hit of each rule in a policy generation, and samples
 * of dropped frames, at most one per sample interval per CPU, so that an
 * attack cannot flood the agent. Used by the pipeline in bpf/xdp/filter.h.
 */
#ifndef BPFGATE_BPF_EVENTS_H
#define BPFGATE_BPF_EVENTS_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "bpfgate/abi/events.h"
#include "bpfgate/abi/xdp.h"
#include "xdp/maps.h"
#include "lib/parse.h"

/* Set between open and load (enum bg_event_transport). */
const volatile __u32 bg_event_transport = BG_EVENT_RINGBUF;

/* A ring buffer; a perf event array when the control plane makes it one. */
struct {
  __uint(type, BPF_MAP_TYPE_RINGBUF);
  __uint(max_entries, BG_EVENT_RING_BYTES);
} bg_events SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, 1);
  __type(key, __u32);
  __type(value, struct bg_event_config);
} bg_event_config SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __uint(max_entries, 1);
  __type(key, __u32);
  __type(value, struct bg_event_sampler);
} bg_event_sampler SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __uint(max_entries, BG_RULES_MAX);
  __type(key, __u32);
  __type(value, struct bg_rule_stats);
} bg_rule_stats SEC(".maps");

/* The generation in which each rule was last reported as hit. */
struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, BG_RULES_MAX);
  __type(key, __u32);
  __type(value, __u32);
} bg_rule_seen SEC(".maps");

/* 0 when the event went out; negative when the buffer refused it (full), which
 * is counted (BG_STAT_EVENTS_LOST: the agent reads too slowly, or not at all). */
static __always_inline long bg_emit(void *ctx, struct bg_event *e) {
  long err;
  if (bg_event_transport == BG_EVENT_PERFBUF)
    err = bpf_perf_event_output(ctx, &bg_events, BPF_F_CURRENT_CPU, e, sizeof(*e));
  else
    err = bpf_ringbuf_output(&bg_events, e, sizeof(*e), 0);
  if (err < 0)
    bg_stat(BG_STAT_EVENTS_LOST);
  return err;
}

static __always_inline void bg_event_of(struct bg_event *e, __u32 type,
                                        const struct bg_packet *pkt) {
  __builtin_memset(e, 0, sizeof(*e));
  e->type = type;
  __builtin_memcpy(e->addr, pkt->src, sizeof(e->addr));
  e->proto = pkt->l4_proto;
  e->dport = pkt->has_l4 ? bpf_ntohs(pkt->dport) : 0;
}

/* The functions below are global (not inlined): the verifier checks each once,
 * whatever path of the pipeline calls it. */

/* Reports a rule's first hit in its generation (see bg_rule_hit). */
__noinline int bg_rule_report(struct xdp_md *ctx, const struct bg_packet *pkt, __u32 rule_id,
                              __u32 generation) {
  if (!pkt)
    return 0;
  __u32 *seen = bpf_map_lookup_elem(&bg_rule_seen, &rule_id);
  if (!seen)
    return 0;
  __u32 old = *(volatile __u32 *)seen;
  if (old == generation || __sync_val_compare_and_swap(seen, old, generation) != old)
    return 0;
  struct bg_event e;
  bg_event_of(&e, BG_EVENT_RULE_HIT, pkt);
  e.ts_ns = bpf_ktime_get_ns();
  e.rule = rule_id;
  e.value = generation;
  if (bg_emit(ctx, &e) < 0) {
    __sync_val_compare_and_swap(seen, generation, old); /* not reported: the next hit tries */
    return 0;
  }
  return 1;
}

/* Counts a frame under its rule (not the default one) and reports the rule's
 * first hit in this generation. A report the buffer refuses is tried again
 * by the rule's next hit. Inline up to the report: a call per frame costs
 * more than the counting. */
static __always_inline void bg_rule_hit(struct xdp_md *ctx, const struct bg_packet *pkt,
                                        __u32 rule_id, __u32 generation, __u32 len) {
  if (rule_id == BG_RULE_DEFAULT)
    return;
  struct bg_rule_stats *rs = bpf_map_lookup_elem(&bg_rule_stats, &rule_id);
  if (rs) {
    if (rs->generation != generation) {
      rs->packets = 0;
      rs->bytes = 0;
      rs->generation = generation;
    }
    rs->packets++;
    rs->bytes += len;
  }
  __u32 *seen = bpf_map_lookup_elem(&bg_rule_seen, &rule_id);
  if (seen && *(volatile __u32 *)seen != generation)
    bg_rule_report(ctx, pkt, rule_id, generation);
}

/* A source just went on the blocklist. */
__noinline int bg_event_blocked(struct xdp_md *ctx, const struct bg_packet *pkt, __u32 rule_id,
                                __u64 ttl_ns, __u64 now) {
  if (!pkt)
    return 0;
  struct bg_event e;
  bg_event_of(&e, BG_EVENT_BLOCKED, pkt);
  e.ts_ns = now;
  e.reason = BG_BLOCK_AUTO;
  e.value = ttl_ns;
  e.rule = rule_id;
  e.prefixlen = 128;
  return bg_emit(ctx, &e) == 0;
}

/* A dropped frame: sampled at most once per interval per CPU. After a refused
 * sample the next BG_EVENT_SAMPLE_SKIP drops do not even read the clock, so a
 * flood costs an increment per frame. A sample the buffer refuses keeps its
 * count: the next sample stands for its drops too. */
__noinline int bg_event_drop_sample(struct xdp_md *ctx, const struct bg_packet *pkt, __u32 reason,
                                    __u32 rule_id, __u32 len) {
  __u32 zero = 0;
  struct bg_event_sampler *s = bpf_map_lookup_elem(&bg_event_sampler, &zero);
  if (!s || !pkt)
    return 0;
  const struct bg_event_config *cfg = bpf_map_lookup_elem(&bg_event_config, &zero);
  if (!cfg || !cfg->sample_interval_ns) {
    s->suppressed++;
    return 0;
  }
  __u64 now = bpf_ktime_get_ns();
  if (now < s->next_ns) {
    s->suppressed++;
    s->skip = BG_EVENT_SAMPLE_SKIP;
    return 0;
  }
  struct bg_event e;
  bg_event_of(&e, BG_EVENT_DROP_SAMPLE, pkt);
  e.ts_ns = now;
  e.reason = reason;
  e.rule = rule_id;
  e.len = len;
  e.value = s->suppressed;
  s->next_ns = now + cfg->sample_interval_ns;
  if (bg_emit(ctx, &e) < 0) {
    s->suppressed++; /* this drop was not sampled either */
    return 0;
  }
  s->suppressed = 0;
  return 1;
}

/* The skipped drops are counted inline: the call is for a sample. */
static __always_inline void bg_event_drop(struct xdp_md *ctx, const struct bg_packet *pkt,
                                          __u32 reason, __u32 rule_id, __u32 len) {
  __u32 zero = 0;
  struct bg_event_sampler *s = bpf_map_lookup_elem(&bg_event_sampler, &zero);
  if (s && s->skip) {
    s->skip--;
    s->suppressed++;
    return;
  }
  bg_event_drop_sample(ctx, pkt, reason, rule_id, len);
}

#endif /* BPFGATE_BPF_EVENTS_H */
