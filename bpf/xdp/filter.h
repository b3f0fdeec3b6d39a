/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The XDP filter's pipeline, as one inline function so that the production
 * object (bpf/xdp/xdp_filter.bpf.c) and the benchmark objects (bench/) run the
 * very same code:
 *
 *   parse -> ACL (longest prefix wins: allow passes unlimited, deny drops)
 *         -> blocklist -> rule by protocol/port (pass, drop or its own limit)
 *         -> unproven sources' share -> per-source bucket -> per-prefix bucket
 *         -> verdict
 *
 * A source that has not proved itself (a TCP ACK with a valid SYN cookie,
 * or that completes a handshake the host keeps a request socket for, or a
 * frame of a connection the host has, moves it to bg_known) shares one
 * rate with every other such source (settings.unproven_limit), checked
 * right after the known table and before the table of admitted sources: a
 * spoofed flood spread over many addresses, each under its own limit,
 * passes at most that rate. A SYN held back so (or refused admission) is
 * answered here with the kernel's SYN cookie (bg_syn_answer, XDP_TX) where
 * the policy asks and the host allows: the client's ACK then proves it.
 *
 * A source with state skips the ACL and blocklist lookups while the answer
 * cached in its entry is of the policy in force (see bg_take), and frames
 * whose buckets all span two kernel ticks read the coarse clock
 * (BG_RULE_COARSE_CLOCK): on a known source the pipeline costs one hash
 * lookup per bucket and one compare-and-swap each. A source whose frames
 * come close together on one CPU costs neither: its buckets are charged up
 * to BG_HOT_LEASE tokens ahead, and its drop decision and counts are kept,
 * in that CPU's hot slot (struct bg_hot_slot, bg_hot_take) for a few
 * milliseconds, under the policy in force.
 *
 * A source that stays over its limit for block_after_ns goes on the
 * blocklist for block_ttl_ns. Counters are per CPU, keyed verdict x reason.
 *
 * Verification stays linear: each stage is a global (not inlined) function
 * that the verifier checks once, on its own, instead of once for every path
 * through the stages before it (the whole pipeline inlined made Linux 6.1's
 * verifier give up after 1,000,000 instructions). On 6.1 a global function
 * takes the context, scalars or pointers to sized memory and returns a
 * scalar, so the stages share their state through one struct bg_work on the
 * entry program's stack. tests/bpf/verifier_budget_test.cpp holds every
 * program under 100,000 processed instructions.
 */
#ifndef BPFGATE_BPF_FILTER_H
#define BPFGATE_BPF_FILTER_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "bpfgate/abi/xdp.h"
#include "xdp/maps.h"
#include "xdp/events.h"
#include "lib/gcra.h"
#include "lib/parse.h"

#ifndef BG_CAS_TRIES
#define BG_CAS_TRIES 4 /* a test object builds with 0 to see every race lost */
#endif
#define BG_STREAK_GAP_NS 1000000000ULL /* a quiet second ends an over-limit streak */
/* A source without a proof tries one with its TCP ACKs this long after it got
 * its bucket: a client's handshake comes first; a source that never proved
 * itself (the kernel did not answer with cookies) stops paying for checks. */
#define BG_PROOF_WINDOW_NS 10000000000ULL

/* A stage's result: a verdict and its reason, or BG_NEXT to go on. */
#define BG_RES(verdict, reason) ((int)((verdict) | ((reason) << 8)))
#define BG_NEXT (-1)
#define BG_BYPASS (-2) /* the interface's bypass switch is on (bg_config.bypass) */

/* What the stages know of the frame, on the entry program's stack. */
struct bg_work {
  struct bg_packet pkt;
  __u64 now;   /* the clock (coarse where w->coarse), 0 until a stage needs it */
  __u64 epoch; /* the policy a source entry's cached list result must match */
  /* The rule's limit (BG_ACTION_LIMIT), copied once by the policy stage. */
  __u64 emission_ns;
  __u64 tolerance_ns;
  /* The frame took a token of the unproven sources' share (its emission_ns,
   * what giving it back takes); 0 if it took none. */
  __u64 shared_ns;
  __u64 over_until; /* the source's bucket refused the frame: it has a token again then */
  __u32 len;
  __u32 generation;
  __u32 rule_id;
  __u32 listed; /* BG_TAKE_LISTED: the ACL's or the blocklist's BG_RES */
  /* Bytes, not words: the struct is on the entry program's stack, which
   * Linux 6.1 counts with every call below it into one 512-byte bound. */
  __u8 limited; /* the rule's limit has a rate */
  __u8 action;  /* enum bg_action of the rule */
  __u8 coarse;  /* BG_RULE_COARSE_CLOCK: w->now may come from the coarse clock */
  __u8 status;  /* enum bg_parse_status */
  __u8 gen;     /* the active policy generation: 0 or 1 */
  __u8 blocked; /* the source went on the blocklist with this frame */
  __u8 known;   /* the source's bucket is in bg_known: it proved itself */
  __u8 young;   /* the source got its bucket less than BG_PROOF_WINDOW_NS ago */
  __u8 dry;     /* enum bg_dry: what dry-run covers of this frame */
  /* This CPU's hot slot (struct bg_hot_slot) holds the source and saw its
   * previous frame within BG_HOT_HOT_NS: its buckets are charged ahead. */
  __u8 hot;
  __u8 lease;        /* tokens of the source's bucket taken ahead by this frame */
  __u8 prefix_lease; /* and of its prefix's */
  __u8 early;        /* enum bg_early_state: what bg_hold_early found */
};

/* What bg_hold_early found of a frame it let go on to the pipeline. */
enum bg_early_state {
  BG_EARLY_NONE = 0,  /* nothing: bg_unproven_first looks */
  BG_EARLY_KNOWN = 1, /* its source's known bit is set: bg_unproven_first says BG_NEXT */
  BG_EARLY_TAKEN = 2, /* not known, and a token of the unproven share taken (w->shared_ns) */
  BG_EARLY_ARMED = 3, /* bg_early_memo: this CPU is armed for the policy in force (bg_early_gate) */
};

/* What dry-run covers of a frame: every drop (the generation's dry_run), or
 * those of its rule (the rule's dry_run: not the deny list's nor the
 * blocklist's, which come before any rule). */
enum bg_dry {
  BG_DRY_ALL = 1,
  BG_DRY_RULE = 2,
};

/* Set between open and load where the program is loaded with
 * BPF_F_XDP_HAS_FRAGS (a frame may span several buffers): a frame's length
 * is then the whole frame's, not its first buffer's. The headers are read
 * from the first buffer either way. */
const volatile __u32 bg_frags = 0;

static __always_inline __u32 bg_frame_len(struct xdp_md *ctx) {
  if (bg_frags)
    return bpf_xdp_get_buff_len(ctx);
  return ctx->data_end - ctx->data;
}

/* Cleared between open and load where the kernel lacks bpf_tcp_raw_check_syncookie_*
 * (Linux 6.0). Without them the proof is dead code the verifier never sees. */
const volatile __u32 bg_have_syncookie = 1;

enum bg_take_result {
  BG_TAKE_OK = 0,       /* conforming (or unlimited): charged */
  BG_TAKE_OVER = 1,     /* over its limit */
  BG_TAKE_REFUSED = 2,  /* no bucket yet, and new sources are over their rate */
  BG_TAKE_NOSTATE = 3,  /* the map refused the entry: fail open */
  BG_TAKE_LISTED = 4,   /* the ACL or the blocklist decided (w->listed): no bucket */
  BG_TAKE_UNPROVEN = 5, /* not known, and unproven sources are over their rate: no state touched */
};

#define BG_EPOCH_VALID (1ULL << 63)

static __always_inline const struct bg_settings *bg_settings_of(const struct bg_config *cfg,
                                                                __u32 gen) {
  return gen ? &cfg->gen[1] : &cfg->gen[0];
}

/* The settings of the generation the frame in w started under (w->gen). */
static __always_inline const struct bg_settings *bg_work_settings(const struct bg_work *w) {
  __u32 zero = 0;
  const struct bg_config *cfg = bpf_map_lookup_elem(&bg_config, &zero);
  return cfg ? bg_settings_of(cfg, w->gen & 1) : NULL;
}

static __always_inline int bg_count(__u32 verdict, __u32 reason, __u64 bytes) {
  __u32 key = bg_counter_key(verdict, reason);
  struct bg_counter *c = bpf_map_lookup_elem(&bg_counters, &key);
  if (c) {
    c->packets++;
    c->bytes += bytes;
  }
  return verdict == BG_VERDICT_DROP ? XDP_DROP : XDP_PASS;
}

/* Whether a source without state may get some now: this CPU's share of the
 * new-source GCRA (no atomics: a CPU runs one XDP program at a time). */
static __always_inline int bg_admit(__u32 slot, const struct bg_limit *lim, __u64 now) {
  if (!lim->rate_pps)
    return 1;
  struct bg_admission *adm = bpf_map_lookup_elem(&bg_admission, &slot);
  if (!adm)
    return 1;
  __u64 tat = adm->tat_ns > now ? adm->tat_ns : now;
  if (tat - now > lim->tolerance_ns)
    return 0;
  adm->tat_ns = tat + lim->emission_ns;
  return 1;
}

/* Gives back the token bg_admit() took in this CPU's share of `slot` (see
 * bg_stage_limit for which frames do). */
static __always_inline void bg_unadmit(__u32 slot, __u64 emission_ns) {
  struct bg_admission *adm = bpf_map_lookup_elem(&bg_admission, &slot);
  if (adm)
    adm->tat_ns -= emission_ns;
}

/* GCRA (bpf/lib/gcra.h): conforming if the theoretical arrival time is at
 * most tolerance_ns in the future. A packet whose every try lost to other
 * CPUs' updates of the same bucket passes and is counted as contended: losing
 * a race is no evidence of being over the limit, and must never feed
 * auto-block. */
static __always_inline int bg_conforms(struct bg_src_state *st, __u64 emission_ns,
                                       __u64 tolerance_ns, __u64 now, __u32 want, __u32 *taken) {
  enum bg_gcra_result r =
      bg_gcra_take_n(&st->tat_ns, emission_ns, tolerance_ns, now, want, BG_CAS_TRIES, taken);
  if (r == BG_GCRA_CONTENDED) {
    bg_stat(BG_STAT_CAS_CONTENDED);
    *taken = 1;
    return 1;
  }
  return r == BG_GCRA_CONFORMS;
}

/* This CPU's hot slot of a source (struct bg_hot_slot): by a hash of its
 * address and rule. */
/* A hash of a source address (and `salt`) for picking a per-CPU slot. */
static __always_inline __u32 bg_addr_hash(const __u8 addr[16], __u32 salt) {
  __u32 a[4];
  __builtin_memcpy(a, addr, 16);
  __u32 h = a[0] ^ a[1] ^ a[2] ^ a[3] ^ salt;
  h ^= h >> 16;
  h *= 0x45d9f3bU;
  h ^= h >> 16;
  return h;
}

static __always_inline struct bg_hot_slot *bg_hot_of(const __u8 addr[16], __u32 rule) {
  __u32 i = bg_addr_hash(addr, rule) & (BG_HOT_SLOTS - 1);
  return bpf_map_lookup_elem(&bg_hot, &i);
}

static __always_inline int bg_hot_holds(const struct bg_hot_slot *h, const __u8 addr[16],
                                        __u32 rule) {
  __u64 a[2], b[2];
  __builtin_memcpy(a, h->key.addr, 16);
  __builtin_memcpy(b, addr, 16);
  return h->hot && a[0] == b[0] && a[1] == b[1] && h->key.rule == (__u16)rule;
}

/* Whether a hot slot may decide w's frames: exactly where the slow path
 * would decide them by the source's bucket alone, i.e. a parsed frame of a
 * source that proved itself, or of any source where there is no unproven
 * share and no proof to look for (TCP under BG_SET_PROVE). */
static __always_inline int bg_hot_fits(const struct bg_work *w, const struct bg_settings *s,
                                       __u32 known) {
  if (w->status != BG_PARSE_OK)
    return 0;
  if (known)
    return 1;
  if (s->flags & BG_SET_UNPROVEN)
    return 0;
  return !((s->flags & BG_SET_PROVE) && w->pkt.l4_proto == IPPROTO_TCP);
}

/* Auto-block: a source dropped at least once a second for block_after_ns
 * goes on the blocklist for block_ttl_ns. Not a weapon: a source that proved
 * itself (its address can be forged by a flood, which then only spends its
 * bucket) and a never-block prefix are spared, and auto-blocks are capped
 * per second (counted). A blocklist that refuses the entry (full) is counted
 * and the streak goes on, so the source is blocked as soon as there is room. */
static __always_inline int bg_streak(struct bg_src_state *st, const struct bg_settings *s,
                                     const __u8 addr[16], __u64 now, __u32 known, __u32 dry) {
  if (!st->over_since_ns || now - st->last_drop_ns > BG_STREAK_GAP_NS)
    st->over_since_ns = now;
  st->last_drop_ns = now;
  if (now - st->over_since_ns < s->block_after_ns)
    return 0;
  struct bg_lpm_key k = {.prefixlen = 128};
  __builtin_memcpy(k.addr, addr, 16);
  if (known || bpf_map_lookup_elem(&bg_noblock, &k)) {
    st->over_since_ns = 0;
    bg_stat(BG_STAT_AUTOBLOCK_SPARED);
    return 0;
  }
  if (dry) {
    st->over_since_ns = 0; /* counted once per streak of block_after_ns */
    bg_op_count(BG_OP_WOULD_AUTOBLOCK, 0);
    return 0;
  }
  if (!bg_admit(BG_ADMIT_BLOCK, &s->block_limit, now)) {
    bg_stat(BG_STAT_AUTOBLOCK_CAPPED); /* the streak goes on: blocked when the cap allows */
    return 0;
  }
  struct bg_block b = {
      .expires_ns = now + s->block_ttl_ns, .added_ns = now, .reason = BG_BLOCK_AUTO};
  long err = bpf_map_update_elem(&bg_blocklist, &k, &b, BPF_NOEXIST);
  if (err && err != -17 /* EEXIST: another CPU blocked it */) {
    bg_stat(BG_STAT_AUTOBLOCK_FAILED);
    return 0;
  }
  st->over_since_ns = 0;
  if (err)
    return 0;
  __u32 zero = 0;
  struct bg_runtime *rt = bpf_map_lookup_elem(&bg_runtime, &zero);
  if (rt) {
    rt->blocklist_live = 1;                    /* after the insert: see struct bg_runtime */
    __sync_fetch_and_add(&rt->block_epoch, 1); /* cached "not listed" results look again */
  }
  return 1;
}

/* 0: the pipeline without the known_bits map, as bpfgate built it before
 * (tests/bpf/known_bits_off_filter.bpf.c: an upgrade from such a program). */
#ifndef BG_KNOWN_BITS_ON
#define BG_KNOWN_BITS_ON 1
#endif

/* 0: the pipeline without the known_sum map, as bpfgate built it before
 * (tests/bpf/known_sum_off_filter.bpf.c: an upgrade from such a program). */
#ifndef BG_KNOWN_SUM_ON
#define BG_KNOWN_SUM_ON BG_KNOWN_BITS_ON
#endif

/* Sets `bit` of a 64-bit word array map, atomically. */
static __always_inline void bg_set_bit(void *map, __u32 bit) {
  __u32 word = bit >> 6;
  __u64 *w = bpf_map_lookup_elem(map, &word);
  if (w)
    __sync_fetch_and_or(w, 1ULL << (bit & 63));
}

/* Whether `key` may be in the known table: its bit in bg_known_sum, then in
 * bg_known_bits (an unreadable word says "look"). */
static __always_inline int bg_maybe_known(const struct bg_src_key *key) {
  if (!BG_KNOWN_BITS_ON)
    return 1;
  __u32 bit = bg_known_bit(key);
  if (BG_KNOWN_SUM_ON) {
    __u32 sbit = bit >> BG_KNOWN_SUM_SHIFT;
    __u32 sword = sbit >> 6;
    const __u64 *sw = bpf_map_lookup_elem(&bg_known_sum, &sword);
    if (sw && !((*sw >> (sbit & 63)) & 1))
      return 0;
  }
  __u32 word = bit >> 6;
  const __u64 *w = bpf_map_lookup_elem(&bg_known_bits, &word);
  return !w || (*w >> (bit & 63)) & 1;
}

/* The bucket key of w's source (BG_SRC_ADDR, under its rule) or of its
 * prefix (BG_SRC_PREFIX). */
static __always_inline void bg_key_of(struct bg_src_key *key, const struct bg_work *w,
                                      const struct bg_settings *s, __u32 kind);

/* The ACL (longest prefix wins: allow passes unlimited, deny drops) and the
 * blocklist on w's source: a BG_RES, or BG_NEXT when neither decides. */
__noinline int bg_check_lists(struct bg_work *w) {
  const struct bg_settings *s = w ? bg_work_settings(w) : NULL;
  if (!s)
    return BG_NEXT;
  __u32 gen = w->gen & 1;
  struct bg_lpm_key lk = {.prefixlen = 128};
  __builtin_memcpy(lk.addr, w->pkt.src, 16);
  if (s->flags & BG_SET_ACL) {
    void *acl = bpf_map_lookup_elem(&bg_acl, &gen);
    if (acl) {
      __u32 *action = bpf_map_lookup_elem(acl, &lk);
      if (action && *action == BG_ACL_ALLOW)
        return BG_RES(BG_VERDICT_PASS, BG_REASON_ALLOW);
      if (action && *action == BG_ACL_DENY)
        return BG_RES(BG_VERDICT_DROP, BG_REASON_DENY);
    }
  }
  __u32 zero = 0;
  const struct bg_runtime *rt = bpf_map_lookup_elem(&bg_runtime, &zero);
  if (!rt || rt->blocklist_live) {
    struct bg_block *blk = bpf_map_lookup_elem(&bg_blocklist, &lk);
    if (blk) {
      if (!w->now)
        w->now = bpf_ktime_get_coarse_ns(); /* a block's expiry is not to the tick */
      if (!blk->expires_ns || blk->expires_ns > w->now) {
        __sync_fetch_and_add(&blk->drops, 1);
        return BG_RES(BG_VERDICT_DROP, BG_REASON_BLOCKLIST);
      }
    }
  }
  return BG_NEXT;
}

/* One unproven source's part of this CPU's unproven share: half its rate and
 * half its burst, in a slot of the admission map by a hash of the source's
 * address (two sources in one slot, 1 in BG_ADMIT_ONE_SOURCE_SLOTS, share
 * its half). A source flooding within its own limit from a real address so
 * leaves the other half to every other unproven source this CPU receives
 * frames of. Its frames over that part are held back before any lookup of
 * the admitted table, as frames over the share are (bg_hold_unproven), and
 * never reach its bucket, which sees only what the part lets through: where
 * its own limit is above the part it never goes over that limit, and is
 * counted as unproven, not rate-limited nor auto-blocked (its address is
 * unproven, as on a host whose share per CPU is below the limit anyway). */
static __always_inline __u32 bg_one_source_slot(const struct bg_work *w) {
  return BG_ADMIT_ONE_SOURCE + (bg_addr_hash(w->pkt.src, 0) & (BG_ADMIT_ONE_SOURCE_SLOTS - 1));
}

static __always_inline void bg_one_source_limit(struct bg_limit *half,
                                                const struct bg_limit *share) {
  half->rate_pps = share->rate_pps;
  half->emission_ns = 2 * share->emission_ns;
  half->tolerance_ns =
      share->tolerance_ns > share->emission_ns ? share->tolerance_ns - share->emission_ns : 0;
}

/* 0 where w's source has room in its part now (nothing taken), else the
 * time it has room again. */
static __always_inline __u64 bg_one_source_wait(const struct bg_work *w,
                                                const struct bg_settings *s) {
  struct bg_limit half;
  bg_one_source_limit(&half, &s->unproven_limit);
  __u32 slot = bg_one_source_slot(w);
  const struct bg_admission *adm = bpf_map_lookup_elem(&bg_admission, &slot);
  if (!adm || adm->tat_ns <= w->now || adm->tat_ns - w->now <= half.tolerance_ns)
    return 0;
  return adm->tat_ns - half.tolerance_ns;
}

/* Takes a token of w's source's part: its frame passes on the share. */
static __always_inline void bg_one_source_take(const struct bg_work *w,
                                               const struct bg_settings *s) {
  struct bg_limit half;
  bg_one_source_limit(&half, &s->unproven_limit);
  bg_admit(bg_one_source_slot(w), &half, w->now);
}

/* A source not known, under the unproven sources' share: BG_TAKE_OK with a
 * token of the share taken (w->shared_ns, given back if the frame is
 * dropped), else held back: BG_TAKE_UNPROVEN, or BG_TAKE_LISTED where the
 * lists decide, as an allow-listed source is never held back (a denied or
 * blocked one is dropped either way: counted here as unproven). Where the
 * source's part alone held it back (the share had room), *wait (where not
 * NULL) is set to the time the part has room again. */
static __always_inline int bg_hold_unproven(struct bg_work *w, const struct bg_settings *s,
                                            __u64 *wait) {
  if (bg_admit(BG_ADMIT_UNPROVEN, &s->unproven_limit, w->now)) {
    __u64 part = bg_one_source_wait(w, s);
    if (!part) {
      w->shared_ns = s->unproven_limit.emission_ns;
      return BG_TAKE_OK;
    }
    bg_unadmit(BG_ADMIT_UNPROVEN, s->unproven_limit.emission_ns);
    if (wait)
      *wait = part;
  }
  int r = s->flags & BG_SET_ACL ? bg_check_lists(w) : BG_NEXT;
  if (r != BG_NEXT) {
    w->listed = r;
    return BG_TAKE_LISTED;
  }
  return BG_TAKE_UNPROVEN;
}

/* Charges the frame to its source's bucket (kind BG_SRC_ADDR: the rule's
 * limit, made if missing and admitted; auto-block) or to its prefix's
 * (BG_SRC_PREFIX); returns an enum bg_take_result.
 *
 * A source's own entry also holds what the ACL and the blocklist said of it
 * under the policy of w->epoch: while that is the policy in force, a frame
 * of a source with state costs one hash lookup and one compare-and-swap,
 * not two prefix-trie lookups more. A source without state, or whose entry
 * is older than the policy, is looked up in both lists first (BG_TAKE_LISTED
 * if they decide). Per-source counts are atomic: one source flooding from
 * every CPU at once is counted exactly (plain adds lost 5-25 % of them in
 * tests/bpf/shared_bucket_test.cpp). */
__noinline int bg_take(struct bg_work *w, __u32 kind) {
  const struct bg_settings *s = w ? bg_work_settings(w) : NULL;
  if (!s)
    return BG_TAKE_NOSTATE;
  __u64 now = w->now;
  __u64 emission_ns = w->emission_ns;
  __u64 tolerance_ns = w->tolerance_ns;
  __u32 limited = w->limited;
  if (kind != BG_SRC_ADDR) {
    emission_ns = s->prefix_limit.emission_ns;
    tolerance_ns = s->prefix_limit.tolerance_ns;
    limited = s->prefix_limit.rate_pps != 0;
  }
  struct bg_src_key key;
  bg_key_of(&key, w, s, kind);
  struct bg_src_state *st = NULL;
  if (kind == BG_SRC_ADDR && (s->flags & BG_SET_UNPROVEN) && !w->shared_ns) {
    /* Known sources first: they are not charged to the unproven share, and
     * a frame the share refuses costs no lookup of the (large) table of
     * admitted sources and touches no state. (Without the share, admitted
     * sources are looked up first, below: one lookup for them.) The limit
     * stage's bg_unproven_first came first and found the source's known bit
     * set, or it would have decided (w->shared_ns set: not known, a token of
     * the share taken): the bit is not looked at again. */
    st = bpf_map_lookup_elem(&bg_known, &key);
    w->known = st != NULL;
    if (!st) {
      int held = bg_hold_unproven(w, s, NULL);
      if (held != BG_TAKE_OK)
        return held;
    }
  }
  if (!st)
    st = bpf_map_lookup_elem(&bg_sources, &key);
  if (kind == BG_SRC_ADDR) {
    if (!st && !(s->flags & BG_SET_UNPROVEN)) {
      st = bg_maybe_known(&key) ? bpf_map_lookup_elem(&bg_known, &key) : NULL;
      w->known = st != NULL;
    }
    __u64 epoch = w->epoch;
    if (!st || !(epoch & BG_EPOCH_VALID) || st->policy_epoch != epoch) {
      int r = bg_check_lists(w);
      if (r != BG_NEXT) {
        w->listed = r;
        return BG_TAKE_LISTED;
      }
      if (st)
        st->policy_epoch = epoch;
    }
  }
  if (!st) {
    if (kind == BG_SRC_ADDR && !bg_admit(BG_ADMIT_SOURCE, &s->new_source_limit, now))
      return BG_TAKE_REFUSED;
    struct bg_src_state init = {.tat_ns = now,
                                .first_seen_ns = now,
                                .last_seen_ns = now,
                                .policy_epoch = kind == BG_SRC_ADDR ? w->epoch : 0};
    bpf_map_update_elem(&bg_sources, &key, &init, BPF_NOEXIST);
    st = bpf_map_lookup_elem(&bg_sources, &key);
    if (!st)
      return BG_TAKE_NOSTATE;
  }
  if (kind == BG_SRC_ADDR)
    w->young = now - st->first_seen_ns < BG_PROOF_WINDOW_NS;
  /* What this CPU's hot slot of the source counted since its last visit
   * here goes into the entry, and the tokens it took ahead and did not use
   * go back (under the policy they were taken under). */
  __u64 packets = 1, bytes = w->len, drops = 0, back = 0;
  struct bg_hot_slot *h = bg_hot_of(w->pkt.src, w->rule_id);
  if (h && bg_hot_holds(h, w->pkt.src, w->rule_id)) {
    if (kind == BG_SRC_ADDR) {
      packets += h->packets;
      bytes += h->bytes;
      drops = h->drops;
      back = h->epoch == w->epoch ? h->tokens : 0;
      h->packets = h->bytes = h->drops = 0;
      h->tokens = 0;
      w->hot = now - h->seen_ns < BG_HOT_HOT_NS && bg_hot_fits(w, s, w->known);
    } else {
      packets += h->prefix_packets;
      bytes += h->prefix_bytes;
      back = h->epoch == w->epoch ? h->prefix_tokens : 0;
      h->prefix_packets = h->prefix_bytes = 0;
      h->prefix_tokens = 0;
    }
  }
  __sync_fetch_and_add(&st->packets, packets);
  __sync_fetch_and_add(&st->bytes, bytes);
  if (drops)
    __sync_fetch_and_add(&st->drops, drops);
  if (back && limited)
    __sync_fetch_and_add(&st->tat_ns, -(back * emission_ns));
  st->last_seen_ns = now;
  __u32 want = w->hot ? BG_HOT_LEASE : 1;
  __u32 taken = want;
  if (!limited || bg_conforms(st, emission_ns, tolerance_ns, now, want, &taken)) {
    if (kind == BG_SRC_ADDR)
      w->lease = taken - 1;
    else
      w->prefix_lease = taken - 1;
    return BG_TAKE_OK;
  }
  __sync_fetch_and_add(&st->drops, 1);
  if (kind == BG_SRC_ADDR) {
    w->over_until = *(volatile __u64 *)&st->tat_ns - tolerance_ns;
    if (s->block_after_ns)
      w->blocked = bg_streak(st, s, w->pkt.src, now, w->known, w->dry);
  }
  return BG_TAKE_OVER;
}

/* The frame charged to its source's bucket was dropped after all: counts the
 * drop there, and with `refund` gives the token back (a later bucket refused
 * the frame, so the source keeps what it did not use). */
__noinline int bg_untake(struct bg_work *w, __u32 refund) {
  const struct bg_settings *s = w ? bg_work_settings(w) : NULL;
  if (!s)
    return 0;
  struct bg_src_key key;
  bg_key_of(&key, w, s, BG_SRC_ADDR);
  struct bg_src_state *st =
      bpf_map_lookup_elem(w->known ? (void *)&bg_known : (void *)&bg_sources, &key);
  if (!st)
    return 0;
  __sync_fetch_and_add(&st->drops, 1);
  if (refund && w->limited)
    __sync_fetch_and_add(&st->tat_ns, -((1 + (__u64)w->lease) * w->emission_ns));
  if (refund)
    w->lease = 0;
  return 1;
}

/* The prefix bucket key of `addr` (kind BG_SRC_PREFIX). */
static __always_inline void bg_prefix_key(struct bg_src_key *key, const __u8 addr[16], __u32 v4,
                                          const struct bg_settings *s);

/* Puts what an evicted hot slot still holds (counts not yet in the shared
 * entries) into its source's and its prefix's entries. Its tokens taken
 * ahead are not given back: it was idle for BG_HOT_LEASE_NS, and they are
 * at most BG_HOT_LEASE - 1. */
static __always_inline void bg_hot_flush(struct bg_hot_slot *h, const struct bg_settings *s) {
  struct bg_src_key key = h->key;
  if (h->packets) {
    struct bg_src_state *st =
        bpf_map_lookup_elem(h->known ? (void *)&bg_known : (void *)&bg_sources, &key);
    if (st) {
      __sync_fetch_and_add(&st->packets, h->packets);
      __sync_fetch_and_add(&st->bytes, h->bytes);
      __sync_fetch_and_add(&st->drops, h->drops);
    }
  }
  if (h->prefix_packets) {
    __u64 w0;
    __u32 w2;
    __builtin_memcpy(&w0, key.addr, 8);
    __builtin_memcpy(&w2, key.addr + 8, 4);
    __u32 v4 = !w0 && w2 == bpf_htonl(0xffff);
    bg_prefix_key(&key, h->key.addr, v4, s);
    struct bg_src_state *st = bpf_map_lookup_elem(&bg_sources, &key);
    if (st) {
      __sync_fetch_and_add(&st->packets, h->prefix_packets);
      __sync_fetch_and_add(&st->bytes, h->prefix_bytes);
    }
  }
}

/* A hot slot's decision for w's frame: BG_NEXT where the slow path has to
 * decide (no slot of this source, another policy, no token left, a drop
 * decision that expired). */
static __always_inline int bg_hot_take(struct bg_work *w, const struct bg_settings *s) {
  struct bg_hot_slot *h = bg_hot_of(w->pkt.src, w->rule_id);
  if (!h || !bg_hot_holds(h, w->pkt.src, w->rule_id) || h->epoch != w->epoch ||
      !bg_hot_fits(w, s, h->known))
    return BG_NEXT;
  __u64 now = w->now;
  __u64 len = w->len;
  if (h->over_until_ns) {
    if (now >= h->over_until_ns || now - h->decided_ns >= BG_HOT_DROP_NS)
      return BG_NEXT;
    h->seen_ns = now;
    h->packets++;
    h->bytes += len;
    h->drops++;
    w->known = h->known;
    return BG_RES(BG_VERDICT_DROP, BG_REASON_RATE_LIMIT);
  }
  __u32 prefix = s->prefix_limit.rate_pps != 0;
  if (!h->tokens || (prefix && !h->prefix_tokens) || now - h->decided_ns >= BG_HOT_LEASE_NS)
    return BG_NEXT;
  h->tokens--;
  h->seen_ns = now;
  h->packets++;
  h->bytes += len;
  if (prefix) {
    h->prefix_tokens--;
    h->prefix_packets++;
    h->prefix_bytes += len;
  }
  w->known = h->known;
  return BG_RES(BG_VERDICT_PASS, BG_REASON_OK);
}

/* After the slow path decided w's frame by the source's bucket (passed, or
 * over its limit): this CPU's hot slot keeps the decision and the tokens
 * taken ahead. A slot another source used within BG_HOT_LEASE_NS stays
 * that source's, unless this one proved itself and that one did not. */
__noinline int bg_hot_keep(struct bg_work *w) {
  const struct bg_settings *s = w ? bg_work_settings(w) : NULL;
  if (!s || !bg_hot_fits(w, s, w->known))
    return 0;
  struct bg_hot_slot *h = bg_hot_of(w->pkt.src, w->rule_id);
  if (!h)
    return 0;
  __u64 now = w->now;
  if (!bg_hot_holds(h, w->pkt.src, w->rule_id)) {
    if (h->hot && now - h->seen_ns < BG_HOT_LEASE_NS && (h->known || !w->known))
      return 0;
    if (h->hot)
      bg_hot_flush(h, s);
    __builtin_memset(h, 0, sizeof(*h));
    __builtin_memcpy(h->key.addr, w->pkt.src, 16);
    h->key.rule = (__u16)w->rule_id;
    h->key.kind = BG_SRC_ADDR;
    h->hot = 1;
  }
  h->known = w->known != 0;
  h->epoch = w->epoch;
  h->decided_ns = now;
  h->seen_ns = now;
  h->over_until_ns = w->over_until;
  h->tokens = w->lease;
  h->prefix_tokens = w->prefix_lease;
  return 1;
}

/* A mask of the first `bits` (0..64) bits of a big-endian 64-bit word. */
static __always_inline __u64 bg_mask64(__u32 bits) {
  if (!bits)
    return 0;
  return bpf_cpu_to_be64(~0ULL << (64 - (bits & 63 ? bits & 63 : 64)));
}

/* Masks addr to a prefix of `len` bits (in the 128-bit space). Two words, no
 * branch per byte: a loop over bytes with a branch each was 2^16 paths to
 * the verifier. */
static __always_inline void bg_mask(__u8 out[16], const __u8 in[16], __u32 len) {
  __u64 w[2];
  __builtin_memcpy(w, in, 16);
  __u32 hi = len >= 64 ? 64 : len;
  __u32 lo = len > 64 ? (len >= 128 ? 64 : len - 64) : 0;
  w[0] &= bg_mask64(hi);
  w[1] &= bg_mask64(lo);
  __builtin_memcpy(out, w, 16);
}

static __always_inline void bg_key_of(struct bg_src_key *key, const struct bg_work *w,
                                      const struct bg_settings *s, __u32 kind) {
  __builtin_memset(key, 0, sizeof(*key));
  if (kind == BG_SRC_ADDR) {
    key->rule = (__u16)w->rule_id;
    key->kind = BG_SRC_ADDR;
    __builtin_memcpy(key->addr, w->pkt.src, 16);
    return;
  }
  bg_prefix_key(key, w->pkt.src, w->pkt.l3_proto == ETH_P_IP, s);
}

static __always_inline void bg_prefix_key(struct bg_src_key *key, const __u8 addr[16], __u32 v4,
                                          const struct bg_settings *s) {
  __builtin_memset(key, 0, sizeof(*key));
  __u32 plen = v4 ? 96 + s->prefix_v4 : s->prefix_v6;
  key->kind = BG_SRC_PREFIX;
  key->prefixlen = plen;
  bg_mask(key->addr, addr, plen);
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

/* The TCP header of w's frame, or NULL where it is out of reach. */
static __always_inline struct tcphdr *bg_tcphdr(struct xdp_md *ctx, const struct bg_work *w) {
  void *data = (void *)(long)ctx->data;
  void *data_end = (void *)(long)ctx->data_end;
  __u32 l4 = w->pkt.l4_off;
  if (l4 > 512)
    return NULL;
  struct tcphdr *th = data + l4;
  if ((void *)(th + 1) > data_end)
    return NULL;
  return th;
}

/* Whether the frame is a TCP ACK (no SYN, RST or FIN) that carries a SYN
 * cookie of this host's kernel: only a source that received the host's
 * SYN-ACK can send one, so its address is not forged. Needs the kernel to
 * answer SYNs with cookies (net.ipv4.tcp_syncookies=2, or 1 while the SYN
 * queue overflows). */
static __always_inline int bg_cookie_ok(struct xdp_md *ctx, const struct bg_work *w) {
  void *data = (void *)(long)ctx->data;
  void *data_end = (void *)(long)ctx->data_end;
  __u32 l3 = w->pkt.l3_off;
  struct tcphdr *th = bg_tcphdr(ctx, w);
  if (l3 > 64 || !th)
    return 0;
  long err;
  if (w->pkt.l3_proto == ETH_P_IP) {
    struct iphdr *iph = data + l3;
    if ((void *)(iph + 1) > data_end)
      return 0;
    err = bpf_tcp_raw_check_syncookie_ipv4(iph, th);
  } else {
    struct ipv6hdr *ip6 = data + l3;
    if ((void *)(ip6 + 1) > data_end)
      return 0;
    err = bpf_tcp_raw_check_syncookie_ipv6(ip6, th);
  }
  return err == 0;
}

/* The socket tuple of w's frame, as the socket lookup helpers take it;
 * returns its size. */
static __always_inline __u32 bg_tuple_of(struct bpf_sock_tuple *t, const struct bg_work *w) {
  if (w->pkt.l3_proto == ETH_P_IP) {
    __builtin_memcpy(&t->ipv4.saddr, &w->pkt.src[12], 4);
    __builtin_memcpy(&t->ipv4.daddr, &w->pkt.dst[12], 4);
    t->ipv4.sport = w->pkt.sport;
    t->ipv4.dport = w->pkt.dport;
    return sizeof(t->ipv4);
  }
  __builtin_memcpy(t->ipv6.saddr, w->pkt.src, 16);
  __builtin_memcpy(t->ipv6.daddr, w->pkt.dst, 16);
  t->ipv6.sport = w->pkt.sport;
  t->ipv6.dport = w->pkt.dport;
  return sizeof(t->ipv6);
}

/* The one field of the kernel's request socket the proof reads, relocated
 * against the running kernel's BTF (CO-RE): the ISN of the SYN-ACK it sent. */
struct tcp_request_sock {
  __u32 snt_isn;
} __attribute__((preserve_access_index));

/* The TCP header's acknowledgment number (host order) of w's frame; 0 where
 * the header is out of reach (no handshake ACK acknowledges ISN 2^32 - 1). */
static __always_inline __u32 bg_ack_seq(struct xdp_md *ctx, const struct bg_work *w) {
  const struct tcphdr *th = bg_tcphdr(ctx, w);
  return th ? bpf_ntohl(th->ack_seq) : 0;
}

/* Whether the frame belongs to a TCP connection of this host, in the
 * interface's network namespace: one past its handshake (a full socket that
 * is no listener: a source that completed a handshake with the host, with or
 * without cookies, or whose connection predates the filter), or the ACK that
 * completes a handshake the host's kernel keeps a request socket for (a SYN
 * that went to the stack while the kernel was not sending cookies,
 * net.ipv4.tcp_syncookies=1 or 0): its acknowledgment number is the ISN of the
 * host's SYN-ACK plus one, which only the host and the real peer know. A
 * forged frame finds a connection only by naming a real peer's address and
 * port, and a request socket's only by guessing 32 bits as well. */
static __always_inline int bg_connected(struct xdp_md *ctx, const struct bg_work *w) {
  struct bpf_sock_tuple t = {};
  __u32 size = bg_tuple_of(&t, w);
  struct bpf_sock *sk = bpf_skc_lookup_tcp(ctx, &t, size, BPF_F_CURRENT_NETNS, 0);
  if (!sk)
    return 0;
  int ok = 0;
  __u32 state = sk->state;
  if (state == BPF_TCP_NEW_SYN_RECV) {
    struct tcp_request_sock *req = bpf_skc_to_tcp_request_sock(sk);
    if (req && (w->pkt.tcp_flags & 0x17) == 0x10)
      ok = bg_ack_seq(ctx, w) == req->snt_isn + 1;
  } else {
    ok = state != BPF_TCP_LISTEN && state != BPF_TCP_TIME_WAIT;
  }
  bpf_sk_release(sk);
  return ok;
}

/* Whether the TCP frame of an unproven source proves its address is not
 * forged: an ACK carrying this host's SYN cookie, the ACK completing a
 * handshake the host keeps a request socket for, or any frame of a
 * connection the host has established. Counted by which proof held (the
 * last two as connected). */
__noinline int bg_prove(struct xdp_md *ctx, struct bg_work *w) {
  if (!w)
    return 0;
  __u8 f = w->pkt.tcp_flags & 0x17; /* FIN SYN RST ACK */
  if (f == 0x10 && bg_have_syncookie && bg_cookie_ok(ctx, w)) {
    bg_stat(BG_STAT_PROVEN);
    return 1;
  }
  if (bg_connected(ctx, w)) {
    bg_stat(BG_STAT_PROVEN_CONNECTED);
    return 1;
  }
  bg_stat(BG_STAT_PROOF_FAILED);
  return 0;
}

/* Moves the source of w, which just proved itself, into bg_known (its
 * bucket as it was, or a fresh one); 1 if it is there now. */
__noinline int bg_promote(struct bg_work *w) {
  const struct bg_settings *s = w ? bg_work_settings(w) : NULL;
  if (!s)
    return 0;
  struct bg_src_key key;
  bg_key_of(&key, w, s, BG_SRC_ADDR);
  struct bg_src_state init = {.tat_ns = w->now, .first_seen_ns = w->now, .last_seen_ns = w->now};
  struct bg_src_state *old = bpf_map_lookup_elem(&bg_sources, &key);
  if (old)
    __builtin_memcpy(&init, old, sizeof(init));
  init.over_since_ns = 0;
  /* Its bits first: a CPU that finds the entry finds them set. */
  if (BG_KNOWN_BITS_ON) {
    __u32 bit = bg_known_bit(&key);
    if (BG_KNOWN_SUM_ON)
      bg_set_bit(&bg_known_sum, bit >> BG_KNOWN_SUM_SHIFT);
    bg_set_bit(&bg_known_bits, bit);
  }
  long err = bpf_map_update_elem(&bg_known, &key, &init, BPF_NOEXIST);
  if (err && err != -17 /* EEXIST: another CPU promoted it */) {
    bg_stat(BG_STAT_KNOWN_FULL);
    return 0;
  }
  if (old)
    bpf_map_delete_elem(&bg_sources, &key);
  w->known = 1;
  return 1;
}

/* The SYN answer (BG_SET_SYN_PROXY): a held SYN gets its SYN-ACK from the
 * datapath, carrying the cookie the host's kernel would have sent
 * (bpf_tcp_raw_gen_syncookie_*, Linux 6.0), so spoofed SYNs never reach the
 * listener and a new client proves itself with its first ACK (bg_prove).
 *
 * The kernel accepts a cookie ACK on a listener only while that listener
 * sent cookies itself in the last two minutes (tcp_synq_no_recent_overflow):
 * with tcp_syncookies=2 it does for every SYN it sees. So a port to which no
 * SYN was passed for BG_SYN_FRESH_S gets this SYN passed instead (the kernel
 * answers it with a cookie and its listener accepts cookies again). Per port,
 * not per listener: two listeners of one port on different addresses share
 * a stamp here (counted as refreshes when one goes stale). */
#define BG_SYN_FRESH_S 60   /* of the kernel's 120 s: an ACK has a minute to come */
#define BG_SYN_NONE 0       /* not answered: the SYN goes on as a held SYN */
#define BG_SYN_ANSWERED 1   /* the frame is now the SYN-ACK: XDP_TX */
#define BG_SYN_REFRESH 2    /* pass it: the port's listener needs a cookie of its own */
#define BG_SYN_BROKEN 3     /* the frame was changed and could not be finished: drop it */
#define BG_RES_TX (1 << 16) /* with a BG_RES: the frame goes back out (XDP_TX) */

/* Per destination port, in units of 2^30 ns (about a second): when a SYN to
 * it last went to the stack (`seen`), and when a listener was last looked
 * for, with the answer in the top bit (`checked`): one socket lookup per port
 * and second, not one per SYN of a flood (a listener that opens or closes
 * is seen within a second). Not pinned: a new program starts with every port
 * stale and unchecked. */
struct bg_syn_port {
  __u32 seen;
  __u32 checked;
};
static struct bg_syn_port bg_syn_ports[65536];

/* The entry of a port. The mask after a barrier: Linux 6.1's verifier loses
 * the bounds of a byte swap. */
static __always_inline struct bg_syn_port *bg_syn_port_of(__be16 dport) {
  __u32 port = bpf_ntohs(dport);
  barrier_var(port);
  return &bg_syn_ports[port & 0xffff];
}

static __always_inline __u32 bg_seconds(__u64 ns) {
  return (__u32)(ns >> 30) | 1; /* never 0: 0 is "never" */
}

/* Notes that a SYN to `dport` went to the stack (with tcp_syncookies=2 the
 * kernel answered it with a cookie). Written at most once a unit. */
static __always_inline void bg_syn_seen(__be16 dport, __u64 now) {
  struct bg_syn_port *p = bg_syn_port_of(dport);
  __u32 t = bg_seconds(now);
  if (p->seen != t)
    p->seen = t;
}

/* The SYN's TCP header, copied out of the frame, and the options the
 * answer needs from it. */
struct bg_synopt {
  __u8 buf[64]; /* the SYN's TCP header, options at 20 */
  __u32 len;    /* its length (20 to 60) */
  __u32 off;    /* bg_synopt_step's cursor */
  __u32 tsval;  /* the client's timestamp, to echo */
  /* What the walk found, each 0 or 1 (the window scale's value beside). The
   * answer uses them in arithmetic, never in a branch: Linux 6.1's verifier
   * can take a flag the bpf_loop callback set for the value it had before,
   * and then drop the branch that reads it as dead code (the answer lost
   * its SACK option there). */
  __u8 has_ws;
  __u8 wscale;
  __u8 sack;
  __u8 ts;
};

/* One TCP option (bpf_loop's callback, checked once by the verifier): 1 ends
 * the walk. */
static long bg_synopt_step(__u32 i, void *arg) {
  struct bg_synopt *o = arg;
  __u32 off = o->off;
  if (off >= o->len || off >= 60)
    return 1;
  __u8 kind = o->buf[off & 63];
  if (kind == 0) /* end of options */
    return 1;
  if (kind == 1) { /* no-op */
    o->off = off + 1;
    return 0;
  }
  if (off + 1 >= o->len)
    return 1;
  __u32 olen = o->buf[(off + 1) & 63];
  if (olen < 2 || off + olen > o->len)
    return 1;
  if (kind == 3 && olen == 3) {
    o->has_ws = 1;
    o->wscale = o->buf[(off + 2) & 63];
  } else if (kind == 4 && olen == 2)
    o->sack = 1;
  else if (kind == 8 && olen == 10) {
    o->ts = 1;
    o->tsval = (__u32)o->buf[(off + 2) & 63] << 24 | (__u32)o->buf[(off + 3) & 63] << 16 |
               (__u32)o->buf[(off + 4) & 63] << 8 | (__u32)o->buf[(off + 5) & 63];
  }
  o->off = off + olen;
  return 0;
}

/* Whether a listener of this host has the SYN's destination (a closed port
 * is not answered: the SYN goes on as a held one, and the kernel's RST, if
 * it passes, tells the truth). */
static __always_inline int bg_syn_listener(struct xdp_md *ctx, const struct bg_work *w) {
  struct bpf_sock_tuple t = {};
  __u32 size = bg_tuple_of(&t, w);
  struct bpf_sock *sk = bpf_skc_lookup_tcp(ctx, &t, size, BPF_F_CURRENT_NETNS, 0);
  if (!sk)
    return 0;
  int ok = sk->state == BPF_TCP_LISTEN;
  bpf_sk_release(sk);
  return ok;
}

/* The MSS the SYN-ACK advertises: the settings', or the interface's MTU less
 * the IP and TCP headers, as the kernel's own SYN-ACK would. */
static __always_inline __u16 bg_syn_mss(struct xdp_md *ctx, const struct bg_settings *s, __u32 v6) {
  __u16 mss = v6 ? s->syn_mss6 : s->syn_mss4;
  if (mss)
    return mss;
  __u32 mtu = 0;
  bpf_check_mtu(ctx, 0, &mtu, 0, 0);
  if (mtu < 1280)
    mtu = 1500;
  if (mtu > 65535)
    mtu = 65535;
  return (__u16)(mtu - (v6 ? 60 : 40));
}

static __always_inline __u16 bg_csum_fold(__s64 sum) {
  __u64 s = (__u32)sum;
  s = (s & 0xffff) + (s >> 16);
  s = (s & 0xffff) + (s >> 16);
  return (__u16)~s;
}

/* The options of the SYN-ACK: MSS; with timestamps, SACK permitted (or two
 * no-ops) and the timestamps; with both, a no-op and the window scale.
 * Returns their length (4, 16 or 20): never more than the client's own
 * options that asked for them, so the answer fits in the SYN's frame. Built
 * without a branch on what the client sent (see struct bg_synopt). */
static __always_inline __u32 bg_synack_options(__u8 out[20], const struct bg_synopt *o,
                                               const struct bg_settings *s, __u16 mss, __u64 now) {
  __u32 opts = s->syn_opts;
  /* without timestamps the kernel's cookie keeps no other option */
  __u32 ts = o->ts & opts & 1;
  __u32 sack = ts & o->sack & (opts >> 1) & 1;
  __u32 wv = o->wscale;
  __u32 ws = ts & o->has_ws & (opts >> 2) & (((__u32)(14 - wv) >> 31) ^ 1) & 1;
  /* The kernel's cookie timestamp: its millisecond clock with the client's
   * options in the low 6 bits (window scale, 0xf for none; SACK 0x10). */
  __u32 code = (0xf + ws * (wv - 0xf)) | sack << 4;
  __u32 now_ms = (__u32)(now / 1000000);
  __u32 tsval = (now_ms & ~63U) | code;
  if (tsval > now_ms)
    tsval -= 64;
  out[0] = 2;
  out[1] = 4;
  out[2] = mss >> 8;
  out[3] = mss & 0xff;
  out[4] = 1 + 3 * sack; /* SACK permitted (4, 2) or two no-ops */
  out[5] = 1 + sack;
  out[6] = 8;
  out[7] = 10;
  __be32 v = bpf_htonl(tsval);
  __builtin_memcpy(&out[8], &v, 4);
  v = bpf_htonl(o->tsval);
  __builtin_memcpy(&out[12], &v, 4);
  out[16] = 1;
  out[17] = 1 + 2 * ws; /* the window scale (3, 3, ours) */
  out[18] = 1 + 2 * ws;
  out[19] = 1 + ws * (s->syn_wscale - 1);
  return 4 + 12 * ts + 4 * ws;
}

/* Turns the held SYN in the frame into its SYN-ACK (BG_SYN_ANSWERED), or
 * says to pass it (BG_SYN_REFRESH) or to go on (BG_SYN_NONE). Frames with IP
 * options or IPv6 extension headers are not answered. */
__noinline int bg_syn_answer(struct xdp_md *ctx, struct bg_work *w) {
  const struct bg_settings *s = w ? bg_work_settings(w) : NULL;
  if (!s || !bg_have_syncookie || !(s->flags & BG_SET_SYN_PROXY))
    return BG_SYN_NONE;
  __u32 v6 = w->pkt.l3_proto != ETH_P_IP;
  __u32 l3 = w->pkt.l3_off;
  __u32 l4 = w->pkt.l4_off;
  if (w->pkt.fragment || l3 > 64 || l4 != l3 + (v6 ? 40 : 20))
    return BG_SYN_NONE;
  __u64 now = bpf_ktime_get_ns(); /* the kernel's TCP clock: timestamps follow it */
  struct bg_syn_port *port = bg_syn_port_of(w->pkt.dport);
  __u32 t = bg_seconds(now);
  __u32 checked = port->checked;
  __u32 listening = checked >> 31;
  if ((checked & 0x7fffffff) != (t & 0x7fffffff)) {
    listening = bg_syn_listener(ctx, w);
    port->checked = (t & 0x7fffffff) | listening << 31;
  }
  if (!listening)
    return BG_SYN_NONE;
  if (!port->seen || t - port->seen > BG_SYN_FRESH_S) {
    port->seen = t;
    return BG_SYN_REFRESH;
  }

  __u8 doff;
  if (bpf_xdp_load_bytes(ctx, l4 + 12, &doff, 1))
    return BG_SYN_NONE;
  __u32 extra = (doff >> 4) * 4 - 20; /* options: 0 to 40 bytes (a wrap is > 40) */
  if (extra > 40)
    return BG_SYN_NONE;
  barrier_var(extra); /* so th_len is 20 + [0, 40] to the verifier, never below 20 */
  __u32 th_len = 20 + extra;
  /* The TCP header on the stack: the cookie helper reads th_len bytes, which
   * the verifier proves of a stack buffer, not of a variable packet range. */
  struct bg_synopt o = {.off = 20};
  if (bpf_xdp_load_bytes(ctx, l4, o.buf, th_len))
    return BG_SYN_NONE;
  o.len = th_len;
  /* The IP header too: a packet pointer at a variable offset loses its
   * proven range on the way to the helper. */
  union {
    struct iphdr v4;
    struct ipv6hdr v6;
  } ip; /* the SYN's, then the answer's */
  __s64 cookie;
  if (v6) {
    if (bpf_xdp_load_bytes(ctx, l3, &ip.v6, sizeof(ip.v6)))
      return BG_SYN_NONE;
    cookie = bpf_tcp_raw_gen_syncookie_ipv6(&ip.v6, (struct tcphdr *)o.buf, th_len);
  } else {
    if (bpf_xdp_load_bytes(ctx, l3, &ip.v4, sizeof(ip.v4)))
      return BG_SYN_NONE;
    cookie = bpf_tcp_raw_gen_syncookie_ipv4(&ip.v4, (struct tcphdr *)o.buf, th_len);
  }
  if (cookie < 0)
    return BG_SYN_NONE;
  bpf_loop(40, bg_synopt_step, &o, 0);
  __be32 isn;
  __builtin_memcpy(&isn, &o.buf[4], 4);
  __u16 mss = bg_syn_mss(ctx, s, v6);

  /* The answer: the frame's own L2 header (MACs swapped, VLAN tags kept),
   * an IP header without options and a TCP header of 24 to 40 bytes, built on the
   * stack and stored with bpf_xdp_store_bytes (no variable packet offsets
   * for the verifier to prove). */
  __u8 mac[12];
  if (bpf_xdp_load_bytes(ctx, 0, mac, 12))
    return BG_SYN_NONE;
  /* The answer's TCP header takes the place of the SYN's, read above (the
   * stack is what Linux 6.1 counts against its 512 bytes, bpf_loop's
   * callback frame included). */
  struct bg_synack {
    struct tcphdr th;
    __u8 opts[20];
  } *tcp = (struct bg_synack *)o.buf;
  __builtin_memset(tcp, 0, sizeof(*tcp));
  tcp->th.source = w->pkt.dport;
  tcp->th.dest = w->pkt.sport;
  tcp->th.seq = bpf_htonl((__u32)cookie);
  tcp->th.ack_seq = bpf_htonl(bpf_ntohl(isn) + 1);
  tcp->th.syn = 1;
  tcp->th.ack = 1;
  tcp->th.window = bpf_htons((__u16)(65535 / mss * mss));
  __u32 tcp_len = 20 + bg_synack_options(tcp->opts, &o, s, mss, now);
  if (tcp_len > 40)
    return BG_SYN_NONE; /* cannot be: for the verifier */
  tcp->th.doff = tcp_len / 4;
  /* The pseudo-header's sum: the addresses where the IP header holds them,
   * the protocol and length as its last words (the seed). */
  __s64 sum;
  __builtin_memset(&ip, 0, sizeof(ip));
  __u32 ip_len = v6 ? sizeof(struct ipv6hdr) : sizeof(struct iphdr);
  if (v6) {
    ip.v6.version = 6;
    ip.v6.payload_len = bpf_htons(tcp_len);
    ip.v6.nexthdr = IPPROTO_TCP;
    ip.v6.hop_limit = 64;
    __builtin_memcpy(&ip.v6.saddr, w->pkt.dst, 16);
    __builtin_memcpy(&ip.v6.daddr, w->pkt.src, 16);
    sum = bpf_csum_diff(NULL, 0, (__be32 *)&ip.v6.saddr, 32,
                        bpf_htonl(tcp_len) + bpf_htonl(IPPROTO_TCP));
  } else {
    ip.v4.version = 4;
    ip.v4.ihl = 5;
    ip.v4.tot_len = bpf_htons(20 + tcp_len);
    ip.v4.frag_off = bpf_htons(0x4000); /* DF */
    ip.v4.ttl = 64;
    ip.v4.protocol = IPPROTO_TCP;
    __builtin_memcpy(&ip.v4.saddr, &w->pkt.dst[12], 4);
    __builtin_memcpy(&ip.v4.daddr, &w->pkt.src[12], 4);
    ip.v4.check = bg_csum_fold(bpf_csum_diff(NULL, 0, (__be32 *)&ip.v4, 20, 0));
    sum =
        bpf_csum_diff(NULL, 0, (__be32 *)&ip.v4.saddr, 8, bpf_htonl((IPPROTO_TCP << 16) | tcp_len));
  }
  tcp->th.check = bg_csum_fold(bpf_csum_diff(NULL, 0, (__be32 *)tcp, tcp_len, sum));

  /* Shorter than the SYN but for an unpadded SYN without options (on a
   * veth a frame has no tailroom to grow into: such a SYN goes on). */
  int delta = (int)(l4 + tcp_len) - (int)(w->len);
  if (delta && bpf_xdp_adjust_tail(ctx, delta))
    return BG_SYN_NONE;
  /* The frame is no longer the SYN: a failed store (which cannot be, the
   * frame is l4 + tcp_len bytes long) drops it. */
  if (bpf_xdp_store_bytes(ctx, 0, mac + 6, 6) || bpf_xdp_store_bytes(ctx, 6, mac, 6) ||
      bpf_xdp_store_bytes(ctx, l3, &ip, ip_len) || bpf_xdp_store_bytes(ctx, l4, tcp, tcp_len))
    return BG_SYN_BROKEN;
  return BG_SYN_ANSWERED;
}

/* Stage 1: parse the frame into w->pkt. Inline: the parser's paths end in
 * a few states of w that the stages after it, global functions, do not
 * multiply, and a call per frame costs more here than in a stage that
 * branches. */
static __always_inline int bg_stage_parse(struct xdp_md *ctx, struct bg_work *w) {
  void *data = (void *)(long)ctx->data;
  void *data_end = (void *)(long)ctx->data_end;
  w->len = bg_frame_len(ctx);
  w->status = bg_parse(data, data_end, &w->pkt);
  return 0;
}

/* Stage 2: what the policy says of the frame before any list or bucket:
 * frames without a trustworthy source, the policy in force (w->epoch) and
 * the rule the frame falls under (w->rule_id, its action and limit). */
__noinline int bg_stage_policy(struct bg_work *w) {
  if (!w)
    return BG_RES(BG_VERDICT_PASS, BG_REASON_OK);
  __u32 zero = 0;
  const struct bg_config *cfg = bpf_map_lookup_elem(&bg_config, &zero);
  if (!cfg)
    return BG_RES(BG_VERDICT_PASS, BG_REASON_OK);
  if (cfg->bypass)
    return BG_BYPASS;
  __u32 gen = cfg->active & 1;
  const struct bg_settings *s = bg_settings_of(cfg, gen);
  w->gen = gen;
  w->generation = cfg->generation;
  w->dry = s->flags & BG_SET_DRY_RUN ? BG_DRY_ALL : 0;

  __u32 status = w->status;
  if (status == BG_PARSE_NOT_IP)
    return BG_RES(BG_VERDICT_PASS, BG_REASON_NOT_IP);
  if (status == BG_PARSE_BAD_L2 || status == BG_PARSE_BAD_L3)
    return BG_RES(s->unparsed_verdict & 1, BG_REASON_UNPARSEABLE);

  /* The source is known from here on: a broken transport header buys no way
   * around the ACL, the blocklist or the limits. */
  const struct bg_runtime *rt = bpf_map_lookup_elem(&bg_runtime, &zero);
  if (rt)
    w->epoch = BG_EPOCH_VALID | (__u64)cfg->generation << 32 | rt->block_epoch;
  __u32 rule_id = status == BG_PARSE_OK && (s->flags & BG_SET_RULES) ? bg_rule_id(gen, &w->pkt)
                                                                     : BG_RULE_DEFAULT;
  w->rule_id = rule_id;
  void *rules = bpf_map_lookup_elem(&bg_rules, &gen);
  if (!rules)
    return BG_RES(BG_VERDICT_PASS, BG_REASON_OK);
  const struct bg_rule *rule = bpf_map_lookup_elem(rules, &rule_id);
  if (!rule)
    return BG_RES(BG_VERDICT_PASS, BG_REASON_OK);
  w->action = rule->action;
  w->coarse = (rule->flags & BG_RULE_COARSE_CLOCK) != 0;
  if (rule->flags & BG_RULE_DRY_RUN)
    w->dry |= BG_DRY_RULE;
  w->limited = rule->limit.rate_pps != 0;
  w->emission_ns = rule->limit.emission_ns;
  w->tolerance_ns = rule->limit.tolerance_ns;
  return BG_NEXT;
}

/* Whether w is IPv6 neighbour discovery from the link: an ICMPv6 router or
 * neighbour solicitation or advertisement, or a redirect (types 133-137, code
 * 0), unfragmented, with hop limit 255, which no router forwards (RFC 4861
 * 6.1.2, 7.1.1: receivers discard any other). It is IPv6's ARP, and ARP is
 * never charged (BG_REASON_NOT_IP): a host's first frames are its neighbour
 * discovery, and the gateway's own solicitation of a host is answered from
 * an address the filter has never seen, which under a flood the new-source
 * and unproven shares held back for seconds (bench/RESULTS.md: a newcomer's
 * first request took 2-2.5 s under IPv6 floods, 2 ms under IPv4's). */
static __always_inline int bg_is_ndp(struct xdp_md *ctx, const struct bg_work *w) {
  if (w->status != BG_PARSE_OK || w->pkt.l4_proto != IPPROTO_ICMPV6 || w->pkt.fragment ||
      w->pkt.l3_proto != ETH_P_IPV6)
    return 0;
  __u16 type_code = bpf_ntohs(w->pkt.dport); /* the parser's type << 8 | code */
  if (type_code < (133 << 8) || type_code > (137 << 8) || (type_code & 0xff))
    return 0;
  void *data = (void *)(long)ctx->data;
  void *data_end = (void *)(long)ctx->data_end;
  __u32 l3 = w->pkt.l3_off;
  if (l3 > 64) /* Ethernet and at most two VLAN tags: 22 */
    return 0;
  struct ipv6hdr *ip6 = data + l3;
  if ((void *)(ip6 + 1) > data_end)
    return 0;
  return ip6->hop_limit == 255;
}

/* Whether bg_hold_early may look at w's frame: parsed, not ICMPv6 (neighbour
 * discovery is never held) nor a TCP segment with ACK and without SYN (held,
 * it may prove its source: bg_prove). */
static __always_inline int bg_early_fits(const struct bg_work *w) {
  __u8 p = w->pkt.l4_proto;
  if (w->status != BG_PARSE_OK || p == IPPROTO_ICMPV6)
    return 0;
  return p != IPPROTO_TCP || (w->pkt.tcp_flags & 0x12) != 0x10;
}

/* Arms this CPU's bg_early for w's generation: w's frame, one bg_hold_early
 * fits, of a source not known, is under the default rule, which limits
 * (bg_limit_frame got here), outside dry-run, with an unproven share
 * (bg_unproven_first got here). One write per CPU and generation. */
static __always_inline void bg_early_arm(const struct bg_work *w) {
  if (w->rule_id != BG_RULE_DEFAULT || w->dry || !bg_early_fits(w))
    return;
  __u32 zero = 0;
  struct bg_early *e = bpf_map_lookup_elem(&bg_early, &zero);
  if (e && (!e->armed || e->generation != w->generation)) {
    e->generation = w->generation;
    e->coarse = w->coarse;
    e->armed = 1;
    e->held_until_ns = 0; /* held under the policy before: the new one decides */
  }
}

/* Whether w's source is the one this CPU's part of the share last held
 * back, and its part has no room yet: held without a look at the known bit,
 * the share or the lists (a source that proves itself meanwhile, or that a
 * block lists, waits for that time, at most its part's emission interval and
 * a tick: the frame is dropped either way). One source flooding so costs a
 * frame one compare. */
static __always_inline int bg_early_held(const struct bg_early *e, const struct bg_work *w) {
  if (e->held_until_ns <= w->now)
    return 0;
  __u64 a[2], b[2];
  __builtin_memcpy(a, e->held_addr, 16);
  __builtin_memcpy(b, w->pkt.src, 16);
  return a[0] == b[0] && a[1] == b[1];
}

/* This CPU's bg_early (*e) and the active generation (*gen) with its
 * settings, where w's frame fits (bg_early_fits), the CPU is armed for the
 * policy in force and the bypass switch is off; else NULL: bg_hold_early and
 * its memo decide nothing. */
static __always_inline const struct bg_settings *bg_early_gate(const struct bg_work *w,
                                                               struct bg_early **e, __u32 *gen) {
  if (!BG_KNOWN_BITS_ON || !bg_early_fits(w))
    return NULL;
  __u32 zero = 0;
  struct bg_early *ce = bpf_map_lookup_elem(&bg_early, &zero);
  const struct bg_config *cfg = bpf_map_lookup_elem(&bg_config, &zero);
  if (!ce || !cfg || !ce->armed || ce->generation != cfg->generation || cfg->bypass)
    return NULL;
  *e = ce;
  *gen = cfg->active & 1;
  return bg_settings_of(cfg, *gen);
}

/* The unproven share's decision on a frame before the policy stage, for a
 * frame the full pipeline would bring to bg_unproven_first under the default
 * rule of an armed generation (bg_early_arm): a BG_RES where the frame is
 * held back (or the lists decide it: bg_hold_unproven), as the pipeline
 * would decide it, else BG_NEXT with w->early saying what was found. A
 * flood of spoofed sources, and one source over its part of the share, so
 * cost a frame the parser, one call, two array lookups, the known bit, the
 * clock and the share's buckets, and not the policy stage, the limit stage's
 * call and its settings read again (bench/run live, spoofed IPv4 UDP: 186-214
 * ns a frame before, 106-129 after). Not where the SYN answer is on. A
 * global function: inline, its stack would take Linux 6.1's combined bound
 * (512 bytes) over on the way to the SYN answer. */
__noinline int bg_hold_early(struct bg_work *w) {
  if (!w)
    return BG_NEXT;
  struct bg_early *e;
  __u32 gen;
  const struct bg_settings *s = bg_early_gate(w, &e, &gen);
  if (!s)
    return BG_NEXT;
  __u32 tcp = w->pkt.l4_proto == IPPROTO_TCP;
  if (tcp && (s->flags & BG_SET_SYN_PROXY)) /* a held SYN may be answered */
    return BG_NEXT;
  if ((s->flags & BG_SET_RULES) && bg_rule_id(gen, &w->pkt) != BG_RULE_DEFAULT)
    return BG_NEXT;
  w->gen = gen;
  if (!w->now)
    w->now = e->coarse ? bpf_ktime_get_coarse_ns() : bpf_ktime_get_ns();
  int taken = BG_TAKE_UNPROVEN;
  if (!bg_early_held(e, w)) {
    struct bg_src_key key;
    bg_key_of(&key, w, s, BG_SRC_ADDR);
    if (bg_maybe_known(&key)) {
      w->early = BG_EARLY_KNOWN;
      return BG_NEXT;
    }
    w->known = 0;
    __u64 wait = 0;
    taken = bg_hold_unproven(w, s, &wait);
    if (taken == BG_TAKE_OK) {
      w->early = BG_EARLY_TAKEN;
      return BG_NEXT;
    }
    if (taken == BG_TAKE_LISTED)
      return w->listed;
    if (wait) { /* its part held it back: the next frames until then are held here */
      __builtin_memcpy(e->held_addr, w->pkt.src, 16);
      e->held_until_ns = wait;
    }
  }
  /* A held SYN passes on the SYN budget (bg_limit_frame). */
  if (tcp && (w->pkt.tcp_flags & 0x17) == 0x02 && (s->flags & BG_SET_PROVE) &&
      bg_admit(BG_ADMIT_SYN, &s->new_source_limit, w->now)) {
    bg_stat(BG_STAT_SYN_PASSED);
    return BG_RES(BG_VERDICT_PASS, BG_REASON_OK);
  }
  return BG_RES(BG_VERDICT_DROP, BG_REASON_UNPROVEN);
}

/* Before the call to bg_hold_early, inline: whether it may decide (this
 * CPU armed for the policy in force: w->early = BG_EARLY_ARMED, else the
 * call is not made), and for a frame neither TCP nor under rules (the call
 * looks up its rule), bg_early_held: BG_RES of a frame held back, else
 * BG_NEXT, with w->now read where the memo was live. Inline: for one source
 * flooding, the call cost as much as the rest. */
static __always_inline int bg_early_memo(struct bg_work *w) {
  struct bg_early *e;
  __u32 gen;
  const struct bg_settings *s = bg_early_gate(w, &e, &gen);
  if (!s)
    return BG_NEXT;
  w->early = BG_EARLY_ARMED;
  if (w->pkt.l4_proto == IPPROTO_TCP || !e->held_until_ns || (s->flags & BG_SET_RULES))
    return BG_NEXT;
  w->now = e->coarse ? bpf_ktime_get_coarse_ns() : bpf_ktime_get_ns();
  return bg_early_held(e, w) ? BG_RES(BG_VERDICT_DROP, BG_REASON_UNPROVEN) : BG_NEXT;
}

/* A source under the unproven sources' share whose bit in bg_known_bits is
 * clear never proved itself (the bit is set before a proof's insert and never
 * cleared): no hot slot holds it for the share (bg_hot_fits), and over the
 * share its frame is held back here, inline, as bg_take would hold it. On a
 * flood of spoofed sources that is most frames, and the bucket stage's call
 * cost them more than its work (bench/run live). Returns BG_NEXT where
 * bg_take decides (the source may be known, or there is no share); else
 * BG_TAKE_UNPROVEN or BG_TAKE_LISTED, or BG_TAKE_OK with w->shared_ns set:
 * not known, and a token of the share taken, which bg_take then skips. */
static __always_inline int bg_unproven_first(struct bg_work *w, const struct bg_settings *s) {
  if (w->early == BG_EARLY_KNOWN)
    return BG_NEXT;
  if (w->early == BG_EARLY_TAKEN)
    return BG_TAKE_OK;
  if (!BG_KNOWN_BITS_ON || !(s->flags & BG_SET_UNPROVEN) || !s->unproven_limit.rate_pps)
    return BG_NEXT;
  struct bg_src_key key;
  bg_key_of(&key, w, s, BG_SRC_ADDR);
  if (bg_maybe_known(&key))
    return BG_NEXT;
  w->known = 0;
  bg_early_arm(w);
  return bg_hold_unproven(w, s, NULL);
}

/* Stage 3: the ACL and the blocklist (through the source's entry where it
 * has one; for a source not known, after the unproven sources' share), the
 * rule's action, then the per-source and per-prefix buckets. A frame the
 * prefix refuses gives back its source's token. Neighbour discovery from
 * the link (bg_is_ndp) goes through the lists only, and passes counted as
 * allowed. */
static __always_inline int bg_limit_frame(struct xdp_md *ctx, struct bg_work *w,
                                          const struct bg_settings *s) {
  __u32 rule_id = w->rule_id;
  if (w->action != BG_ACTION_LIMIT) {
    int r = bg_check_lists(w);
    if (r != BG_NEXT)
      return r;
    bg_rule_hit(ctx, &w->pkt, rule_id, w->generation, w->len);
    if (w->action == BG_ACTION_DROP)
      return BG_RES(BG_VERDICT_DROP, BG_REASON_RULE);
    return BG_RES(BG_VERDICT_PASS, BG_REASON_RULE);
  }

  if (bg_is_ndp(ctx, w)) {
    int r = bg_check_lists(w);
    if (r != BG_NEXT)
      return r;
    bg_rule_hit(ctx, &w->pkt, rule_id, w->generation, w->len);
    return BG_RES(BG_VERDICT_PASS, BG_REASON_ALLOW);
  }
  if (!w->now)
    w->now = w->coarse ? bpf_ktime_get_coarse_ns() : bpf_ktime_get_ns();
  int taken = bg_unproven_first(w, s);
  if (taken == BG_NEXT) {
    int hot = bg_hot_take(w, s);
    if (hot != BG_NEXT) {
      bg_rule_hit(ctx, &w->pkt, rule_id, w->generation, w->len);
      return hot;
    }
  }
  if (taken == BG_NEXT || taken == BG_TAKE_OK)
    taken = bg_take(w, BG_SRC_ADDR);
  if (taken == BG_TAKE_LISTED)
    return w->listed;
  if (taken == BG_TAKE_NOSTATE)
    bg_stat(BG_STAT_NO_STATE); /* failed open: counted, never silent */
  bg_rule_hit(ctx, &w->pkt, rule_id, w->generation, w->len);
  __u32 charged = taken == BG_TAKE_OK; /* a token of the source's bucket */
  if (!w->known && (s->flags & BG_SET_PROVE) && w->pkt.l4_proto == IPPROTO_TCP &&
      w->status == BG_PARSE_OK) {
    __u8 f = w->pkt.tcp_flags & 0x17; /* FIN SYN RST ACK */
    __u32 held = taken == BG_TAKE_REFUSED || taken == BG_TAKE_UNPROVEN;
    if ((f & 0x12) == 0x10 && (w->young || held) && bg_prove(ctx, w) && bg_promote(w) && held)
      taken = BG_TAKE_OK; /* a proof needs no admission */
    else if (f == 0x02 && held) {
      /* A SYN of a source without state, or of an unproven one over the
       * unproven share: answered here with the kernel's cookie where the
       * SYN answer is on (its first ACK then proves the client), else passed
       * on a budget of its own that a flood of other sources cannot use up
       * (the kernel answers it with a cookie and keeps nothing). */
      int a = (s->flags & BG_SET_SYN_PROXY) && !w->dry ? bg_syn_answer(ctx, w) : BG_SYN_NONE;
      if (a == BG_SYN_ANSWERED) {
        bg_stat(BG_STAT_SYN_ANSWERED);
        return BG_RES(BG_VERDICT_DROP,
                      taken == BG_TAKE_REFUSED ? BG_REASON_NEW_SOURCE : BG_REASON_UNPROVEN) |
               BG_RES_TX;
      }
      if (a == BG_SYN_BROKEN)
        return BG_RES(BG_VERDICT_DROP,
                      taken == BG_TAKE_REFUSED ? BG_REASON_NEW_SOURCE : BG_REASON_UNPROVEN);
      if (a == BG_SYN_REFRESH) {
        bg_stat(BG_STAT_SYN_REFRESH);
        return BG_RES(BG_VERDICT_PASS, BG_REASON_OK);
      }
      if (bg_admit(BG_ADMIT_SYN, &s->new_source_limit, w->now)) {
        bg_stat(BG_STAT_SYN_PASSED);
        return BG_RES(BG_VERDICT_PASS, BG_REASON_OK);
      }
    }
  }
  if (taken == BG_TAKE_REFUSED)
    return BG_RES(BG_VERDICT_DROP, BG_REASON_NEW_SOURCE);
  if (taken == BG_TAKE_UNPROVEN)
    return BG_RES(BG_VERDICT_DROP, BG_REASON_UNPROVEN);
  if (taken == BG_TAKE_OVER) {
    if (w->blocked)
      bg_event_blocked(ctx, &w->pkt, rule_id, s->block_ttl_ns, w->now);
    else
      bg_hot_keep(w);
    return BG_RES(BG_VERDICT_DROP, BG_REASON_RATE_LIMIT);
  }
  int prefix = s->prefix_limit.rate_pps ? bg_take(w, BG_SRC_PREFIX) : BG_TAKE_OK;
  if (prefix == BG_TAKE_NOSTATE)
    bg_stat(BG_STAT_NO_STATE);
  if (prefix == BG_TAKE_OVER) {
    if (charged)
      bg_untake(w, 1); /* the source keeps the token its prefix refused */
    return BG_RES(BG_VERDICT_DROP, BG_REASON_PREFIX_LIMIT);
  }
  if (taken == BG_TAKE_OK && w->shared_ns && !w->known)
    bg_one_source_take(w, s); /* it keeps the share's token: one of its part too */
  if (w->status == BG_PARSE_BAD_L4) {
    __u32 verdict = s->unparsed_verdict & 1;
    if (verdict == BG_VERDICT_DROP && charged)
      bg_untake(w, 0);
    return BG_RES(verdict, BG_REASON_UNPARSEABLE);
  }
  if (taken == BG_TAKE_OK)
    bg_hot_keep(w);
  return BG_RES(BG_VERDICT_PASS, BG_REASON_OK);
}

__noinline int bg_stage_limit(struct xdp_md *ctx, struct bg_work *w) {
  const struct bg_settings *s = w ? bg_work_settings(w) : NULL;
  if (!s)
    return BG_RES(BG_VERDICT_PASS, BG_REASON_OK);
  int r = bg_limit_frame(ctx, w, s);
  /* A frame the lists decided (allow, deny, blocklist), or dropped by its
   * source's or its prefix's bucket, gives back the token it took of the
   * unproven sources' share: one heavy source, or a denied network, cannot
   * use up the share of all the others. A new source refused admission keeps
   * it used: a flood of new sources so exhausts the share at once and is
   * then held back before any lookup of the admitted table (one lookup a
   * frame instead of two). */
  __u32 reason = (r >> 8) & 0xff;
  /* A SYN that goes to the stack gets the kernel's own cookie, which keeps
   * its listener accepting cookies: the SYN answer notes the port. */
  if ((s->flags & BG_SET_SYN_PROXY) && !(r & 1) && w->pkt.l4_proto == IPPROTO_TCP &&
      (w->pkt.tcp_flags & 0x12) == 0x02)
    bg_syn_seen(w->pkt.dport, w->now ? w->now : bpf_ktime_get_coarse_ns());
  if (w->shared_ns &&
      (reason == BG_REASON_ALLOW || reason == BG_REASON_DENY || reason == BG_REASON_BLOCKLIST ||
       reason == BG_REASON_RATE_LIMIT || reason == BG_REASON_PREFIX_LIMIT))
    bg_unadmit(BG_ADMIT_UNPROVEN, w->shared_ns);
  return r;
}

/* Whether dry-run passes a frame dropped for `reason` (see enum bg_dry). */
static __always_inline int bg_dry_passes(const struct bg_work *w, __u32 reason) {
  if (w->dry & BG_DRY_ALL)
    return 1;
  return (w->dry & BG_DRY_RULE) && reason != BG_REASON_DENY && reason != BG_REASON_BLOCKLIST;
}

/* The whole pipeline on one frame: returns an XDP action. */
static __always_inline int bg_filter(struct xdp_md *ctx) {
  struct bg_work w = {};
  bg_stage_parse(ctx, &w);
  int r = bg_early_memo(&w);
  if (r == BG_NEXT && w.early == BG_EARLY_ARMED)
    r = bg_hold_early(&w);
  if (r == BG_NEXT) {
    r = bg_stage_policy(&w);
    if (r == BG_BYPASS) { /* every frame passes, counted */
      bg_op_count(BG_OP_BYPASSED, w.len);
      return XDP_PASS;
    }
    if (r == BG_NEXT)
      r = bg_stage_limit(ctx, &w);
  }
  __u32 verdict = r & 1;
  __u32 reason = (r >> 8) & 0xff;
  if (verdict == BG_VERDICT_DROP && bg_dry_passes(&w, reason)) {
    bg_op_count(BG_OP_WOULD_DROP + (reason & 31), w.len);
    return XDP_PASS;
  }
  if (verdict == BG_VERDICT_DROP)
    bg_event_drop(ctx, &w.pkt, reason, w.rule_id, w.len);
  int action = bg_count(verdict, reason, w.len);
  return r & BG_RES_TX ? XDP_TX : action;
}

#endif /* BPFGATE_BPF_FILTER_H */
