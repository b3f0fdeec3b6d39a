/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The XDP filter's events and per-rule counters, shared by the BPF side
 * (bpf/xdp/events.h) and the agent (src/features/observe/events.cpp).
 * Defined once, here; tests/unit/abi_test.cpp pins sizes and offsets.
 *
 * Events go through a BPF ring buffer, or, where the kernel has none (before
 * 5.8) or the operator asks for it, a perf event array: the map is declared
 * as a ring buffer and the control plane turns it into a perf event array
 * between open and load (bg_event_transport tells the program which helper
 * to call; the verifier drops the other branch).
 */
#ifndef BPFGATE_ABI_EVENTS_H
#define BPFGATE_ABI_EVENTS_H

#ifndef __VMLINUX_H__
#include <linux/types.h>
#endif

/* Pinned beside the filter's maps, under <bpffs>/bpfgate/<iface>/. */
#define BG_PIN_EVENTS "events"
#define BG_PIN_EVENT_CONFIG "event_config"
#define BG_PIN_RULE_STATS "rule_stats"

#define BG_EVENT_RING_BYTES (256 * 1024)
#define BG_EVENT_SAMPLE_SKIP 63 /* drops passed over, per CPU, after a refused sample */

enum bg_event_transport {
  BG_EVENT_RINGBUF = 0,
  BG_EVENT_PERFBUF = 1,
};

enum bg_event_type {
  BG_EVENT_BLOCKED = 1,     /* the datapath auto-blocked a source */
  BG_EVENT_RELEASED = 2,    /* a block expired and was swept (made by the agent) */
  BG_EVENT_RULE_HIT = 3,    /* a rule matched for the first time in this policy generation */
  BG_EVENT_DROP_SAMPLE = 4, /* one dropped frame, at most one per sample interval per CPU */
  BG_EVENT_MANUAL_BLOCK = 5 /* an operator's block seen by the agent (made by the agent) */
};

/* One event record, the same through either transport. */
struct bg_event {
  __u64 ts_ns;    /* bpf_ktime_get_ns() */
  __u32 type;     /* enum bg_event_type */
  __u32 reason;   /* DROP_SAMPLE: enum bg_reason; BLOCKED: enum bg_block_reason */
  __u8 addr[16];  /* the source (IPv4 v4-mapped) */
  __u64 value;    /* BLOCKED: TTL in ns; DROP_SAMPLE: drops not sampled since the last sample;
                     RULE_HIT: the policy generation */
  __u32 rule;     /* rule id (0: the default limit) */
  __u32 len;      /* DROP_SAMPLE: frame length */
  __u16 dport;    /* host order; ICMP: type << 8 | code */
  __u8 proto;     /* IPPROTO_*, 0 when unknown */
  __u8 prefixlen; /* BLOCKED: prefix length in the 128-bit space */
  __u32 _pad;
};

/* Runtime settings of the event stream (event_config, ARRAY, one entry). */
struct bg_event_config {
  __u64 sample_interval_ns; /* 0: no drop samples */
};

/* Drop sampler state, per CPU (PERCPU_ARRAY, one entry). */
struct bg_event_sampler {
  __u64 next_ns;    /* no sample before this */
  __u64 suppressed; /* drops not sampled since the last sample */
  __u32 skip;       /* drops to pass over before looking at the clock again */
  __u32 _pad;
};

/* Per-rule counters, per CPU (rule_stats, PERCPU_ARRAY indexed by rule id).
 * A CPU's slot restarts from zero when it first counts a packet under a new
 * policy generation (rule ids are renumbered by every apply); readers sum
 * only the slots whose generation is the running one. */
struct bg_rule_stats {
  __u64 packets;
  __u64 bytes;
  __u32 generation;
  __u32 _pad;
};

#endif /* BPFGATE_ABI_EVENTS_H */
