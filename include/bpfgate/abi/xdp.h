/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The XDP filter's ABI: map keys, values and enums shared by the BPF program
 * and the C++ control plane. Defined once, here. Fixed-width types, explicit
 * padding; tests/unit/abi_test.cpp pins sizes and offsets.
 */
#ifndef BPFGATE_ABI_XDP_H
#define BPFGATE_ABI_XDP_H

#include <linux/types.h>

/* Names of the objects pinned under <bpffs>/bpfgate/<iface>/. */
#define BG_PIN_LINK "link"
#define BG_PIN_PROG "prog"
#define BG_PIN_SOURCES "sources"
#define BG_PIN_COUNTERS "counters"
#define BG_PIN_CONFIG "config"

/* Upper bounds the control plane enforces on operator input. */
#define BG_RATE_MAX_PPS 100000000ULL /* 100 Mpps per source */
#define BG_BURST_MAX 10000000ULL
#define BG_SOURCES_MAX (1U << 24) /* 16M per-source entries */

/* What the filter does with a frame. */
enum bg_verdict {
  BG_VERDICT_PASS = 0,
  BG_VERDICT_DROP = 1,
  BG_VERDICT_NR = 2,
};

/* Why. Counters are keyed by verdict x reason (bg_counter_key()). */
enum bg_reason {
  BG_REASON_OK = 0,          /* parsed, within limits */
  BG_REASON_NOT_IP = 1,      /* ARP, LLDP, any other ethertype: not ours to judge */
  BG_REASON_UNPARSEABLE = 2, /* truncated or malformed L2/L3 */
  BG_REASON_RATE_LIMIT = 3,  /* source over its token bucket */
  BG_REASON_NR = 4,
};

static inline __u32 bg_counter_key(__u32 verdict, __u32 reason) {
  return verdict * BG_REASON_NR + reason;
}
#define BG_COUNTER_NR ((int)BG_VERDICT_NR * (int)BG_REASON_NR)

/* Per-CPU counter value (counters map, BPF_MAP_TYPE_PERCPU_ARRAY). */
struct bg_counter {
  __u64 packets;
  __u64 bytes;
};

/* Per-source key: IPv6 address; IPv4 sources are stored v4-mapped (::ffff:a.b.c.d). */
struct bg_src_key {
  __u8 addr[16];
};

/* Per-source value (sources map, BPF_MAP_TYPE_LRU_HASH). Updated with atomics:
 * the same entry is shared by all CPUs, so the rate a source gets is global. */
struct bg_src_state {
  __u64 tat_ns;       /* GCRA theoretical arrival time (monotonic ns) */
  __u64 last_seen_ns; /* bpf_ktime_get_ns() of the last packet */
  __u64 packets;      /* all packets seen from this source */
  __u64 bytes;        /* all bytes seen from this source */
  __u64 drops;        /* packets dropped for this source */
  __u64 first_seen_ns;
};

/* Runtime settings (config map, BPF_MAP_TYPE_ARRAY, one entry at index 0).
 * The token bucket is run as GCRA: one token every emission_ns, a bucket of
 * `burst` tokens means a packet may arrive up to tolerance_ns early. */
struct bg_config {
  __u64 rate_pps;         /* 0: rate limiting off */
  __u64 burst;            /* bucket depth in packets */
  __u64 emission_ns;      /* 1e9 / rate_pps */
  __u64 tolerance_ns;     /* emission_ns * (burst - 1) */
  __u32 unparsed_verdict; /* enum bg_verdict for BG_REASON_UNPARSEABLE frames */
  __u32 attach_mode;      /* enum bg_attach_mode, informational */
  __u32 generation;       /* bumped by each `set`; lets readers see a change */
  __u32 _pad;
};

/* How the program is attached; stored in bg_config for status. */
enum bg_attach_mode {
  BG_ATTACH_NONE = 0,
  BG_ATTACH_NATIVE = 1,
  BG_ATTACH_GENERIC = 2,
  BG_ATTACH_OFFLOAD = 3,
};

#endif /* BPFGATE_ABI_XDP_H */
