/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The tc datapath's ABI: what bpf/tc/tc.bpf.c (through bpf/tc/tc.h) shares with
 * the control plane (src/features/tc/tc.cpp). Defined once, here; tests/unit/
 * abi_test.cpp pins sizes and offsets.
 *
 * Programs on clsact ingress and egress (direct-action) run a chain of
 * stages through a program array: parse -> classify -> police -> mirror ->
 * count. A stage whose slot is empty is skipped, so a stage is enabled or
 * disabled by writing one slot, without reloading the others.
 *
 * Classes live in an array (two generations of BG_TC_CLASSES_MAX entries;
 * the first entry without BG_TC_CLASS_VALID ends a generation); the first
 * class that matches a packet is its class. The control plane fills the
 * inactive generation and flips bg_tc_config.active in one write, so a
 * packet sees one whole set of classes or the other. Per-class state
 * (policing bucket, counters) is indexed by the class's position.
 */
#ifndef BPFGATE_ABI_TC_H
#define BPFGATE_ABI_TC_H

#include <linux/types.h>

/* Everything is pinned under <bpffs>/bpfgate-tc/<iface>/. */
#define BG_TC_PIN_DIR "bpfgate-tc"
#define BG_TC_PIN_PROG_INGRESS "prog_ingress"
#define BG_TC_PIN_PROG_EGRESS "prog_egress"
#define BG_TC_PIN_STAGES "stages"       /* the program array */
#define BG_TC_PIN_STAGE_PREFIX "stage_" /* + stage name: each stage's program */
#define BG_TC_PIN_CONFIG "config"
#define BG_TC_PIN_CLASSES "classes"
#define BG_TC_PIN_BUCKETS "buckets"
#define BG_TC_PIN_STATS "stats"

#define BG_TC_CLASSES_MAX 64
#define BG_TC_GENERATIONS 2
#define BG_TC_NAME_MAX 32
/* The stats array has one more slot: packets that matched no class. */
#define BG_TC_STATS_UNCLASSIFIED BG_TC_CLASSES_MAX
#define BG_TC_STATS_NR (BG_TC_CLASSES_MAX + 1)
/* The window over which a class's current rate is measured (per CPU). */
#define BG_TC_RATE_WINDOW_NS 1000000000ULL

/* Our filters' priority (and handle) on clsact. Lower runs first: ours run
 * before the observability probes (BG_OBS_TC_PRIORITY), and pass packets
 * on with TC_ACT_UNSPEC so that later filters still see them. */
#define BG_TC_PRIORITY 0x6267
/* The HTB hierarchy bpfgate sets up on egress: root BG_TC_HTB_MAJOR:,
 * parent class :1, one leaf per priority p at minor BG_TC_HTB_MINOR_BASE + p. */
#define BG_TC_HTB_MAJOR 0x6267
#define BG_TC_HTB_MINOR_BASE 0x10
#define BG_TC_PRIORITIES 8 /* 0 (served first) .. 7 */

/* The stages, in the order a packet goes through them; also their slots in
 * the program array. */
enum bg_tc_stage {
  BG_TC_STAGE_PARSE = 0,
  BG_TC_STAGE_CLASSIFY = 1,
  BG_TC_STAGE_POLICE = 2,
  BG_TC_STAGE_MIRROR = 3,
  BG_TC_STAGE_COUNT = 4,
  BG_TC_STAGE_NR = 5,
};

enum bg_tc_dir {
  BG_TC_DIR_INGRESS = 1,
  BG_TC_DIR_EGRESS = 2,
};

/* Which fields of a bg_tc_match take part. */
enum bg_tc_match_flags {
  BG_TC_M_PROTO = 1 << 0,
  BG_TC_M_SPORT = 1 << 1, /* source port in [sport_lo, sport_hi] */
  BG_TC_M_DPORT = 1 << 2, /* destination port in [dport_lo, dport_hi] */
  BG_TC_M_PORT = 1 << 3,  /* either port in [dport_lo, dport_hi] */
  BG_TC_M_SRC = 1 << 4,   /* source address under src_mask equals src */
  BG_TC_M_DST = 1 << 5,
  BG_TC_M_DSCP = 1 << 6,
};

/* Addresses are IPv6; IPv4 is v4-mapped (::ffff:a.b.c.d), so an IPv4 prefix
 * never matches an IPv6 packet. Addresses and masks are in network order,
 * as two 64-bit words; ports are in host order. */
struct bg_tc_match {
  __u64 src[2];
  __u64 src_mask[2];
  __u64 dst[2];
  __u64 dst_mask[2];
  __u16 sport_lo;
  __u16 sport_hi;
  __u16 dport_lo;
  __u16 dport_hi;
  __u8 l4_proto;
  __u8 dscp;
  __u16 _pad;
  __u32 flags; /* enum bg_tc_match_flags */
};

enum bg_tc_class_flags {
  BG_TC_CLASS_VALID = 1 << 0,    /* clear: the end of this generation */
  BG_TC_CLASS_SET_DSCP = 1 << 1, /* rewrite DSCP to set_dscp */
};

/* What a packet over its class's rate gets. */
enum bg_tc_exceed {
  BG_TC_EXCEED_DROP = 0,
  BG_TC_EXCEED_MARK = 1, /* egress only: DSCP rewritten to exceed_dscp, passed */
};

/* classes: ARRAY of BG_TC_GENERATIONS * BG_TC_CLASSES_MAX, index
 * generation * BG_TC_CLASSES_MAX + position. */
struct bg_tc_class {
  struct bg_tc_match match;
  char name[BG_TC_NAME_MAX];
  __u64 rate_bps;       /* policing rate in bits/s of Ethernet frames as sent (a GSO packet
                         * counts the headers of every segment); 0: none */
  __u64 burst_bytes;    /* bucket depth, for readers */
  __u64 burst_ns;       /* bucket depth as time at rate_bps: burst_bytes * 8e9 / rate_bps */
  __u32 skb_priority;   /* written to skb->priority (an HTB classid); 0: untouched */
  __u32 mirror_ifindex; /* clone to this interface's egress; 0: no mirror */
  __u32 mirror_sample;  /* mirror 1 packet in mirror_sample (per CPU); >= 1 */
  __u32 flags;          /* enum bg_tc_class_flags */
  __u8 dirs;            /* enum bg_tc_dir bits */
  __u8 exceed;          /* enum bg_tc_exceed */
  __u8 set_dscp;
  __u8 exceed_dscp;
  __u32 _pad;
};

/* buckets: ARRAY of BG_TC_CLASSES_MAX. The policer is a GCRA in time: a
 * packet of L bytes costs L * 8e9 / rate_bps ns; it conforms while
 * tat - now <= burst_ns (the bucket is not empty) and then moves tat by its
 * cost, so the bucket may go one packet into debt (a GSO packet larger than
 * the bucket is never stuck). One entry is shared by all CPUs
 * (compare-and-swap); a cache line each. */
struct bg_tc_bucket {
  __u64 tat_ns;
  __u64 _pad[7];
};

/* stats: PERCPU_ARRAY of BG_TC_STATS_NR (slot BG_TC_STATS_UNCLASSIFIED for
 * packets of no class). Written by the count stage, except mirror_seq (the
 * mirror stage's sampling sequence). The rate is measured over windows of
 * BG_TC_RATE_WINDOW_NS per CPU: win_* is the current one, prev_* the last
 * complete one; both count only what passed. */
struct bg_tc_stats {
  __u64 packets; /* every packet of the class, passed or not */
  __u64 bytes;
  __u64 drops;    /* dropped by the policer */
  __u64 marked;   /* over the rate and marked (egress) */
  __u64 mirrored; /* copies sent to the mirror interface */
  __u64 mirror_seq;
  __u64 win_start_ns;
  __u64 win_bytes;
  __u64 win_packets;
  __u64 prev_bytes;
  __u64 prev_packets;
  __u64 prev_ns; /* length of the last complete window */
};

/* What bpfgate set up on the interface and so removes at detach. */
enum bg_tc_owned {
  BG_TC_OWN_CLSACT = 1 << 0, /* the clsact qdisc was created by bpfgate */
  BG_TC_OWN_HTB = 1 << 1,    /* the HTB root qdisc (BG_TC_HTB_MAJOR:) */
};

/* config: ARRAY of one entry. Only `active` is read by the programs. */
struct bg_tc_config {
  __u32 active;       /* generation of classes in use: 0 or 1 */
  __u32 generation;   /* bumped by each apply */
  __u32 ifindex;      /* the interface attached to */
  __u32 owned;        /* enum bg_tc_owned */
  __u64 htb_rate_bps; /* the HTB root's rate; 0: no HTB */
  __u32 htb_default;  /* the priority unclassified traffic gets in HTB */
  __u32 _pad;
};

#endif /* BPFGATE_ABI_TC_H */
