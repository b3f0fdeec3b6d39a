/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The XDP filter's ABI: map keys, values and enums shared by the BPF program
 * and the C++ control plane. Defined once, here. Fixed-width types, explicit
 * padding; tests/unit/abi_test.cpp pins sizes and offsets.
 *
 * Policy (ACL, rules, per-generation settings) is double-buffered: the
 * control plane fills generation !active beside the running one and flips
 * bg_config.active in one write, so a packet sees one whole policy or the
 * other. Dynamic state (per-source buckets, blocklist, counters) is not
 * generational and survives every apply.
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
#define BG_PIN_ACL "acl"
#define BG_PIN_PORTS "ports"
#define BG_PIN_PROTOS "protos"
#define BG_PIN_RULES "rules"
#define BG_PIN_BLOCKLIST "blocklist"
#define BG_PIN_RUNTIME "runtime"
#define BG_PIN_KNOWN "known"
#define BG_PIN_NOBLOCK "noblock"
#define BG_PIN_OPSTATS "opstats"
#define BG_PIN_HOT "hot"
#define BG_PIN_KNOWN_BITS "known_bits"
#define BG_PIN_KNOWN_SUM "known_sum"
#define BG_NOBLOCK_MAX 4096

/* Upper bounds the control plane enforces on operator input. */
#define BG_RATE_MAX_PPS 100000000ULL /* 100 Mpps per source */
#define BG_BURST_MAX 10000000ULL
#define BG_SOURCES_MAX (1U << 24) /* 16M per-source entries */
#define BG_ACL_MAX (1U << 20)     /* allow + deny prefixes */
#define BG_BLOCKLIST_MAX (1U << 18)
#define BG_RULES_MAX 256 /* rule 0 is the default limit */
#define BG_RULE_DEFAULT 0
#define BG_PORT_SLOTS 2 /* TCP, UDP */
#define BG_PORT_TABLE_SIZE (BG_PORT_SLOTS * 65536)
#define BG_GENERATIONS 2

/* What the filter does with a frame. */
enum bg_verdict {
  BG_VERDICT_PASS = 0,
  BG_VERDICT_DROP = 1,
  BG_VERDICT_NR = 2,
};

/* Why. Counters are keyed by verdict x reason (bg_counter_key()). */
enum bg_reason {
  BG_REASON_OK = 0,           /* parsed, within limits */
  BG_REASON_NOT_IP = 1,       /* ARP, LLDP, any other ethertype: not ours to judge */
  BG_REASON_UNPARSEABLE = 2,  /* truncated or malformed L2/L3/L4 */
  BG_REASON_RATE_LIMIT = 3,   /* source over its token bucket (default or rule's) */
  BG_REASON_ALLOW = 4,        /* allow list: passed without limits */
  BG_REASON_DENY = 5,         /* deny list */
  BG_REASON_BLOCKLIST = 6,    /* on the blocklist (manual or auto-block) */
  BG_REASON_RULE = 7,         /* a protocol/port rule whose action is pass or drop */
  BG_REASON_PREFIX_LIMIT = 8, /* the source's prefix over its token bucket */
  BG_REASON_NEW_SOURCE = 9,   /* a source without state while new sources are over their rate */
  BG_REASON_UNPROVEN = 10,    /* an unproven source while unproven sources are over their rate */
  BG_REASON_NR = 11,
};

static inline __u32 bg_counter_key(__u32 verdict, __u32 reason) {
  return verdict * BG_REASON_NR + reason;
}
#define BG_COUNTER_NR ((int)BG_VERDICT_NR * (int)BG_REASON_NR)

/* Events of the datapath that are not verdicts, counted per CPU in the same
 * counters map after the verdict counters (bg_stat_key(); `packets` only). */
enum bg_stat {
  BG_STAT_CAS_CONTENDED = 0,    /* a bucket's compare-and-swap lost every try: passed */
  BG_STAT_AUTOBLOCK_FAILED = 1, /* the blocklist refused an auto-block (full): streak kept */
  BG_STAT_AUTOBLOCK_CAPPED = 2, /* over the auto-block rate: left rate-limited, not blocked */
  BG_STAT_AUTOBLOCK_SPARED = 3, /* a proven source or a never-block prefix: not blocked */
  BG_STAT_PROVEN = 4,           /* sources that proved themselves (a valid SYN cookie) */
  BG_STAT_PROOF_FAILED = 5,     /* TCP frames of unproven sources checked that proved nothing */
  BG_STAT_KNOWN_FULL = 6,       /* proofs the known table had no room for */
  BG_STAT_SYN_PASSED = 7,       /* SYNs of sources without state passed statelessly */
  BG_STAT_PROVEN_CONNECTED = 8, /* proved by a connection of the host, or a handshake's ACK */
  BG_STAT_SYN_ANSWERED = 9,     /* held SYNs answered from XDP with a cookie SYN-ACK */
  BG_STAT_SYN_REFRESH = 10,     /* held SYNs passed so the listener accepts cookies again */
  BG_STAT_EVENTS_LOST = 11,     /* events the event buffer refused (full: the agent is behind) */
  BG_STAT_NO_STATE = 12,        /* frames passed because the per-source table refused an entry */
  BG_STAT_NR = 13,
};

static inline __u32 bg_stat_key(__u32 stat) {
  return BG_COUNTER_NR + stat;
}
#define BG_COUNTER_SLOTS (BG_COUNTER_NR + (int)BG_STAT_NR)

/* Counters of the operator's switches (dry-run, bypass), per CPU, in a map
 * of their own (opstats, BG_PIN_OPSTATS; struct bg_counter values): the
 * counters map keeps its layout, so a filter pinned by an older bpfgate is
 * still adopted and upgraded in place (the upgrade makes this map). Fixed
 * slots first, then one per reason, with room for more of both. */
enum bg_op_stat {
  BG_OP_BYPASSED = 0,        /* frames passed by the interface's bypass switch */
  BG_OP_WOULD_AUTOBLOCK = 1, /* auto-blocks dry-run did not make (once per streak) */
  BG_OP_WOULD_DROP = 16,     /* + enum bg_reason: frames dry-run passed that it would drop */
  BG_OP_SLOTS = 64,
};

/* Per-CPU counter value (counters map, BPF_MAP_TYPE_PERCPU_ARRAY). */
struct bg_counter {
  __u64 packets;
  __u64 bytes;
};

/* A token bucket run as GCRA: one token every emission_ns; a bucket of
 * `burst` tokens lets a packet arrive up to tolerance_ns early. */
struct bg_limit {
  __u64 rate_pps; /* 0: no limit */
  __u64 burst;
  __u64 emission_ns;  /* 1e9 / rate_pps */
  __u64 tolerance_ns; /* emission_ns * (burst - 1) */
};

enum bg_src_kind {
  BG_SRC_ADDR = 0,   /* one source address */
  BG_SRC_PREFIX = 1, /* a source prefix (prefix limits) */
};

/* Per-source key. Addresses are IPv6; IPv4 is stored v4-mapped
 * (::ffff:a.b.c.d). `rule` is the limit class: 0 for the default limit, N
 * for rule N's own limit, so one source has one bucket per class. */
struct bg_src_key {
  __u8 addr[16];
  __u16 rule;
  __u8 kind;      /* enum bg_src_kind */
  __u8 prefixlen; /* BG_SRC_PREFIX: prefix length in the 128-bit space */
  __u32 _pad;
};

/* Per-source value (sources map, BPF_MAP_TYPE_LRU_HASH, for every source
 * admitted; known map, BPF_MAP_TYPE_HASH, for sources that proved
 * themselves: a TCP ACK carrying a valid SYN cookie, which only a source
 * that received the host's SYN-ACK can send. Known entries are never
 * evicted by new ones: only the sweeper removes them when idle, and a full
 * known table refuses further proofs). Updated with
 * atomics: one entry is shared by all CPUs, so the rate a source gets is
 * global. */
struct bg_src_state {
  __u64 tat_ns;       /* GCRA theoretical arrival time (monotonic ns) */
  __u64 last_seen_ns; /* bpf_ktime_get_ns() of the last packet */
  __u64 packets;      /* packets seen in this class */
  __u64 bytes;
  __u64 drops; /* packets dropped by this bucket */
  __u64 first_seen_ns;
  __u64 over_since_ns; /* start of the current over-limit streak (auto-block) */
  __u64 last_drop_ns;
  /* The policy under which the ACL and the blocklist last let this source
   * through (bg_work.epoch: generation << 32 | bg_runtime.block_epoch, top
   * bit set); while it is current the datapath skips both lookups. */
  __u64 policy_epoch;
};

/* Which sources may be in the known table: a bitmap (known_bits map,
 * BPF_MAP_TYPE_ARRAY of BG_KNOWN_WORDS 64-bit words), one bit per hash of a
 * source key, set before the key goes into the known table (the datapath's
 * proof, or the control plane) and never cleared while the table may hold
 * it. A clear bit means the source is not known, so a frame of a source
 * without state (a spoofed flood) skips the known table's hash lookup, the
 * largest part of its cost. A set bit only means "look": a source removed
 * from the table, or another key of the same hash, costs that lookup again.
 * With 2^20 bits and the default 65,536 known sources at most, about 6 % of
 * other keys find their bit set. */
#define BG_KNOWN_BITS_LOG2 20
#define BG_KNOWN_WORDS (1U << (BG_KNOWN_BITS_LOG2 - 6))

/* Its summary (known_sum map, BG_KNOWN_SUM_WORDS 64-bit words): bit
 * b >> BG_KNOWN_SUM_SHIFT is set before any of the 16 bits b of known_bits
 * it stands for, so a clear summary bit says "not known" from 8 KiB that
 * stay in cache on a flood, where a random word of the 128 KiB bitmap missed
 * it (bench/run live: ~20 ns of a spoofed frame's ~90). With the default
 * 65,536 known sources at most, about 63 % of summary bits may be set: the
 * bitmap's word is then read too. */
#define BG_KNOWN_SUM_SHIFT 4
#define BG_KNOWN_SUM_WORDS (BG_KNOWN_WORDS >> BG_KNOWN_SUM_SHIFT)

/* The bit of a source key (struct bg_src_key): the same in the datapath and
 * the control plane. */
static inline __u32 bg_known_bit(const struct bg_src_key *k) {
  const __u8 *b = (const __u8 *)k; /* the address, rule, kind, prefix length: five words */
  __u32 h = 0x9e3779b9U;
  for (int i = 0; i < 5; i++) {
    __u32 w;
    __builtin_memcpy(&w, b + 4 * i, 4);
    h ^= w;
    h *= 0x85ebca6bU;
    h ^= h >> 13;
  }
  h *= 0xc2b2ae35U;
  h ^= h >> 16;
  return h >> (32 - BG_KNOWN_BITS_LOG2);
}

/* A CPU's short-lived copy of what the filter decided for a hot source
 * (hot map, BPF_MAP_TYPE_PERCPU_ARRAY of BG_HOT_SLOTS, the slot by a hash
 * of the key): tokens of the source's bucket (and of its prefix's) taken
 * ahead with one compare-and-swap, a drop decision valid until the bucket
 * has a token again, and counts not yet added to the shared entries. A
 * frame of a hot source then costs no hash lookup and no atomic operation.
 * Valid only under the policy it was made under (epoch) and for a short
 * time (BG_HOT_LEASE_NS for tokens, BG_HOT_DROP_NS for a drop); the counts
 * reach the shared entries at the next visit of the slow path, and readers
 * add them meanwhile (agent::Datapath::source_state). */
#define BG_HOT_SLOTS 64
#define BG_HOT_LEASE 32          /* tokens a hot source takes ahead, at most */
#define BG_HOT_HOT_NS 1000000ULL /* hot: its previous frame on this CPU within 1 ms */
/* Tokens taken ahead are used within 10 ms; the slow path's next visit of the
 * source on that CPU gives back what is left. A slot evicted for another
 * source, or left by a source whose frames moved to another CPU, keeps them:
 * a one-off loss of at most BG_HOT_LEASE - 1 frames of that source's
 * allowance per CPU it leaves (tests/bpf pins the exact-count tests to one CPU). */
#define BG_HOT_LEASE_NS 10000000ULL
#define BG_HOT_DROP_NS 250000000ULL /* a drop decision is looked at again after 250 ms */
struct bg_hot_slot {
  struct bg_src_key key; /* kind BG_SRC_ADDR; hot == 0: the slot is empty */
  __u64 epoch;           /* bg_work.epoch of the decision */
  __u64 decided_ns;      /* when the slow path last decided for it */
  __u64 seen_ns;         /* its last frame on this CPU */
  __u64 over_until_ns;   /* over its limit until then (0: not over) */
  __u32 tokens;          /* of the source's bucket, taken ahead */
  __u32 prefix_tokens;   /* of its prefix's bucket, taken ahead */
  __u64 packets;         /* not yet in the source's entry */
  __u64 bytes;
  __u64 drops;
  __u64 prefix_packets; /* not yet in the prefix's entry */
  __u64 prefix_bytes;
  __u8 hot;   /* the slot holds a source */
  __u8 known; /* its entry is in the known table (else the sources table) */
  __u8 _pad[6];
};

/* ACL (LPM trie, allow and deny in one: the longest prefix wins). */
struct bg_lpm_key {
  __u32 prefixlen; /* in the 128-bit space: an IPv4 /24 is 96 + 24 */
  __u8 addr[16];
};

enum bg_acl_action {
  BG_ACL_ALLOW = 1,
  BG_ACL_DENY = 2,
};

/* Rules: what a protocol/port match does (rules array, index = rule id). */
enum bg_action {
  BG_ACTION_LIMIT = 0, /* rate limit with the rule's own bucket */
  BG_ACTION_PASS = 1,  /* pass without limits */
  BG_ACTION_DROP = 2,
};

/* Written by the control plane at apply, not part of the policy. */
enum bg_rule_flags {
  /* Frames under this rule may read the kernel's coarse clock (one tick
   * behind, at 1/HZ resolution; a fine clock read costs ~30 ns in a VM):
   * every bucket the frame may be charged to (the rule's, the prefix's, a
   * CPU's share of new sources) spans at least two ticks, so tokens that
   * come a tick at a time fit in it and the rate is kept. */
  BG_RULE_COARSE_CLOCK = 1,
  /* Part of the policy (rules[].dry_run): a frame under this rule that would
   * be dropped (but by the deny list or the blocklist, which come before any
   * rule) is passed and counted as would-drop (BG_OP_WOULD_DROP); its
   * bucket's auto-block is counted, not made; held SYNs are not answered. */
  BG_RULE_DRY_RUN = 2,
};

struct bg_rule {
  struct bg_limit limit; /* BG_ACTION_LIMIT; limit.rate_pps 0 means unlimited */
  __u32 action;          /* enum bg_action */
  __u32 flags;           /* enum bg_rule_flags */
};

/* Blocklist (LPM trie): a prefix dropped until expires_ns. */
enum bg_block_reason {
  BG_BLOCK_MANUAL = 1,
  BG_BLOCK_AUTO = 2,  /* stayed over its rate limit for block_after_ns */
  BG_BLOCK_FLEET = 3, /* learned from the fleet (etcd); origin in bg_fleet_origin (fleet.h) */
};

struct bg_block {
  __u64 expires_ns; /* monotonic; 0: never */
  __u64 added_ns;
  __u64 drops;  /* packets dropped while blocked */
  __u32 reason; /* enum bg_block_reason */
  __u32 _pad;
};

/* Settings that belong to one policy generation. */
struct bg_settings {
  struct bg_limit prefix_limit; /* rate 0: prefix limits off */
  /* New sources: how fast sources without state may get some (rate 0: no
   * bound). rate_pps and burst are for the whole filter; emission_ns and
   * tolerance_ns are those of each CPU's share (bg_admission), which the
   * control plane writes. A source refused is dropped (BG_REASON_NEW_SOURCE)
   * and leaves no state: a flood of spoofed sources cannot churn the sources
   * map faster than this, and known sources keep their buckets. */
  struct bg_limit new_source_limit;
  __u64 block_after_ns; /* 0: auto-block off */
  __u64 block_ttl_ns;
  __u8 prefix_v4;         /* prefix length of IPv4 sources for prefix limits, e.g. 24 */
  __u8 prefix_v6;         /* e.g. 64 */
  __u16 flags;            /* enum bg_settings_flags, written by the control plane at apply */
  __u32 unparsed_verdict; /* enum bg_verdict for unparseable frames */
  /* At most this many auto-blocks (rate_pps a second, burst at once) for the
   * whole filter, each CPU its share as for new sources; beyond it a source
   * stays rate-limited and is counted (BG_STAT_AUTOBLOCK_CAPPED). */
  struct bg_limit block_limit;
  /* Unproven sources (admitted, not known): how many of their frames pass a
   * second, all of them together, each CPU its share as for new sources
   * (rate 0: no bound). Enforced while BG_SET_UNPROVEN is set: beyond it the
   * frame is dropped (BG_REASON_UNPROVEN) and its source keeps its token. A
   * spoofed flood spread over many sources, each under its own limit, so
   * passes at most this rate, and sources that proved themselves are not
   * charged. */
  struct bg_limit unproven_limit;
  /* The SYN-ACK the datapath answers a held SYN with (BG_SET_SYN_PROXY):
   * the MSS it advertises for IPv4 and IPv6 (the interface's MTU less the
   * headers), the window scale the kernel will use on the connection its
   * cookie makes, and which options it may offer (enum bg_syn_opts). */
  __u16 syn_mss4;
  __u16 syn_mss6;
  __u8 syn_wscale;
  __u8 syn_opts;
  __u16 _pad1;
};

/* What the SYN-ACK of a SYN answered from XDP may carry: the host's kernel
 * decodes them from the cookie's timestamp, so window scaling and SACK need
 * timestamps, and timestamps need net.ipv4.tcp_timestamps=2 (no per-peer
 * offset, so the kernel's later timestamps follow the SYN-ACK's). */
enum bg_syn_opts {
  BG_SYN_OPT_TS = 1,       /* timestamps (tcp_timestamps=2) */
  BG_SYN_OPT_SACK = 2,     /* SACK permitted (tcp_sack) */
  BG_SYN_OPT_WSCALE = 4,   /* window scaling (tcp_window_scaling) */
  BG_SYN_OPT_ASKED = 0x80, /* the policy asks for the SYN answer (limits.syn_proxy) */
};

/* admission: PERCPU_ARRAY, one entry: each CPU's GCRA for new sources. */
struct bg_admission {
  __u64 tat_ns;
};

/* early: PERCPU_ARRAY, one entry: what lets a frame of a source not known be
 * held back before the policy stage (bg_hold_early in bpf/xdp/filter.h): that
 * the default rule of policy generation `generation` limits, outside dry-run,
 * with an unproven sources' share. Set on a CPU by the first frame of a
 * source not known that the full pipeline brings to the share in a
 * generation; not pinned. */
struct bg_early {
  __u32 generation; /* bg_config.generation it holds for */
  __u8 armed;       /* 1: that generation's default rule is as said above */
  __u8 coarse;      /* the default rule reads the coarse clock */
  __u8 pad[2];
  /* The source its part of the share last held back on this CPU (the share
   * had room), and until when its part has none: its frames are held back
   * till then at the cost of a compare. */
  __u8 held_addr[16];
  __u64 held_until_ns;
};

/* What a generation's tables hold, so that the datapath skips lookups that
 * cannot match (each costs 20-40 ns). */
enum bg_settings_flags {
  BG_SET_ACL = 1,   /* the ACL has entries */
  BG_SET_RULES = 2, /* rules beyond the default: the port and protocol tables */
  BG_SET_PROVE = 4, /* TCP sources prove themselves with SYN cookies (see bg_known) */
  /* settings.unproven_limit is enforced: set only where sources can prove
   * themselves (BG_SET_PROVE, the kernel's helpers, tcp_syncookies=2), so
   * that real TCP clients are not left in the unproven class. */
  BG_SET_UNPROVEN = 8,
  /* A held SYN (of a source without state, or of an unproven one, over its
   * rate) is answered by the datapath with a SYN-ACK carrying the kernel's
   * cookie (XDP_TX), where a listener has the port: spoofed SYNs never reach
   * the listener, and a new client proves itself with its first ACK. Set
   * only with BG_SET_PROVE and tcp_syncookies=2 (the kernel accepts a cookie
   * only while it sends them itself, see bg_syn_answer). */
  BG_SET_SYN_PROXY = 16,
  /* dry_run: on: every frame the generation would drop is passed and counted
   * as would-drop by reason (BG_OP_WOULD_DROP); no auto-block is made (each
   * is counted, BG_OP_WOULD_AUTOBLOCK) and no SYN is answered. */
  BG_SET_DRY_RUN = 32,
};

/* Slots of the admission map: one GCRA per CPU for each kind of stateless
 * admission, so that one kind's flood cannot use up another's. */
#define BG_ADMIT_ONE_SOURCE_SLOTS 64
enum bg_admission_slot {
  BG_ADMIT_SOURCE = 0,   /* a source without state gets some (settings.new_source_limit) */
  BG_ADMIT_SYN = 1,      /* a SYN of a source without state passes without any (the same rate) */
  BG_ADMIT_BLOCK = 2,    /* an auto-block (settings.block_limit) */
  BG_ADMIT_UNPROVEN = 3, /* a frame of an unproven source (settings.unproven_limit) */
  /* The first of BG_ADMIT_ONE_SOURCE_SLOTS: one unproven source's part of
   * the unproven share (half of it), the source by a hash of its address. */
  BG_ADMIT_ONE_SOURCE = 4,
  BG_ADMIT_NR = BG_ADMIT_ONE_SOURCE + BG_ADMIT_ONE_SOURCE_SLOTS,
};

/* Runtime settings (config map, BPF_MAP_TYPE_ARRAY, one entry at index 0). */
struct bg_config {
  __u32 active;      /* generation in use: 0 or 1 */
  __u32 attach_mode; /* enum bg_attach_mode, informational */
  __u32 generation;  /* bumped by each apply; lets readers see a change */
  /* Not part of a generation: the operator's bypass switch (`bpfgate bypass
   * IFACE on`): nonzero passes every frame at once, counted (BG_OP_BYPASSED).
   * Written under the pin directory's lock like every write of this map. */
  __u8 bypass;
  /* The program runs with BPF_F_XDP_HAS_FRAGS (jumbo frames, several buffers
   * a frame): a program it tail-calls must be loaded with the same flag.
   * Written by the control plane at attach; 0 in pins of older versions. */
  __u8 frags;
  __u16 _pad;
  struct bg_settings gen[BG_GENERATIONS];
};

/* State shared by the datapath and the control plane that is no policy
 * (runtime map, ARRAY, one entry). */
struct bg_runtime {
  /* Nonzero while the blocklist may hold entries; the datapath skips its
   * lookup otherwise. The datapath sets it after each auto-block; the control
   * plane sets it after each block and, after removing entries, clears it
   * and sets it again if any entry is left (so an auto-block racing the clear
   * is always seen: its flag store follows its insert). */
  __u32 blocklist_live;
  /* Bumped after every change of the blocklist (atomically, by the datapath
   * after an auto-block and by the control plane through the map's mmap, after
   * adding or removing entries): a source entry that cached "not listed" under
   * an older value looks again, and a reader of the blocklist (the fleet's
   * scan) that saw this value need not read it again. */
  __u32 block_epoch;
};

/* How the program is attached; stored in bg_config for status. */
enum bg_attach_mode {
  BG_ATTACH_NONE = 0,
  BG_ATTACH_NATIVE = 1,
  BG_ATTACH_GENERIC = 2,
  BG_ATTACH_OFFLOAD = 3,
};

#endif /* BPFGATE_ABI_XDP_H */
