/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The XDP filter's maps. Policy maps are arrays of maps with one inner map
 * per generation (see include/bpfgate/abi/xdp.h); the control plane replaces
 * the inactive generation's inner maps and flips bg_config.active.
 */
#ifndef BPFGATE_BPF_MAPS_H
#define BPFGATE_BPF_MAPS_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "bpfgate/abi/lb.h" /* BG_NEXT_LB */
#include "bpfgate/abi/xdp.h"

struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, 1);
  __type(key, __u32);
  __type(value, struct bg_config);
} bg_config SEC(".maps");

/* A test build may make it a plain hash that refuses entries when full
 * (tests/bpf/no_state_filter.bpf.c): an LRU makes room instead. */
#ifndef BG_SOURCES_MAP_TYPE
#define BG_SOURCES_MAP_TYPE BPF_MAP_TYPE_LRU_HASH
#endif
struct {
  __uint(type, BG_SOURCES_MAP_TYPE);
  __uint(max_entries, 65536); /* set from --max-sources before load */
  __type(key, struct bg_src_key);
  __type(value, struct bg_src_state);
} bg_sources SEC(".maps");

/* Sources that proved themselves: never evicted by new ones. */
struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, 65536); /* set from --max-sources before load */
  __type(key, struct bg_src_key);
  __type(value, struct bg_src_state);
} bg_known SEC(".maps");

/* Prefixes never auto-blocked (auto_block.never). */
struct {
  __uint(type, BPF_MAP_TYPE_LPM_TRIE);
  __uint(max_entries, BG_NOBLOCK_MAX);
  __uint(map_flags, BPF_F_NO_PREALLOC);
  __type(key, struct bg_lpm_key);
  __type(value, __u32);
} bg_noblock SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __uint(max_entries, BG_ADMIT_NR);
  __type(key, __u32);
  __type(value, struct bg_admission);
} bg_admission SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, 1);
  __uint(map_flags, BPF_F_MMAPABLE); /* the control plane bumps block_epoch atomically */
  __type(key, __u32);
  __type(value, struct bg_runtime);
} bg_runtime SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __uint(max_entries, BG_COUNTER_SLOTS);
  __type(key, __u32);
  __type(value, struct bg_counter);
} bg_counters SEC(".maps");

/* One more datapath event (enum bg_stat) on this CPU. */
static __always_inline void bg_stat(__u32 stat) {
  __u32 key = bg_stat_key(stat);
  struct bg_counter *c = bpf_map_lookup_elem(&bg_counters, &key);
  if (c)
    c->packets++;
}

/* The operator switches' counters (enum bg_op_stat). */
struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __uint(max_entries, BG_OP_SLOTS);
  __type(key, __u32);
  __type(value, struct bg_counter);
} bg_op_stats SEC(".maps");

static __always_inline void bg_op_count(__u32 slot, __u64 bytes) {
  struct bg_counter *c = bpf_map_lookup_elem(&bg_op_stats, &slot);
  if (c) {
    c->packets++;
    c->bytes += bytes;
  }
}

struct {
  __uint(type, BPF_MAP_TYPE_LPM_TRIE);
  __uint(max_entries, BG_BLOCKLIST_MAX);
  __uint(map_flags, BPF_F_NO_PREALLOC);
  __type(key, struct bg_lpm_key);
  __type(value, struct bg_block);
} bg_blocklist SEC(".maps");

/* Inner map shapes; the control plane creates maps of the same shape. */
struct bg_acl_map {
  __uint(type, BPF_MAP_TYPE_LPM_TRIE);
  __uint(max_entries, BG_ACL_MAX);
  __uint(map_flags, BPF_F_NO_PREALLOC);
  __type(key, struct bg_lpm_key);
  __type(value, __u32); /* enum bg_acl_action */
} bg_acl_0 SEC(".maps"), bg_acl_1 SEC(".maps");

struct bg_ports_map {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, BG_PORT_TABLE_SIZE); /* slot * 65536 + port */
  __type(key, __u32);
  __type(value, __u32); /* rule id, 0: none */
} bg_ports_0 SEC(".maps"), bg_ports_1 SEC(".maps");

struct bg_protos_map {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, 256); /* IP protocol number */
  __type(key, __u32);
  __type(value, __u32); /* rule id, 0: none */
} bg_protos_0 SEC(".maps"), bg_protos_1 SEC(".maps");

struct bg_rules_map {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, BG_RULES_MAX);
  __type(key, __u32);
  __type(value, struct bg_rule);
} bg_rules_0 SEC(".maps"), bg_rules_1 SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
  __uint(max_entries, BG_GENERATIONS);
  __type(key, __u32);
  __array(values, struct bg_acl_map);
} bg_acl SEC(".maps") = {.values = {&bg_acl_0, &bg_acl_1}};

struct {
  __uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
  __uint(max_entries, BG_GENERATIONS);
  __type(key, __u32);
  __array(values, struct bg_ports_map);
} bg_ports SEC(".maps") = {.values = {&bg_ports_0, &bg_ports_1}};

struct {
  __uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
  __uint(max_entries, BG_GENERATIONS);
  __type(key, __u32);
  __array(values, struct bg_protos_map);
} bg_protos SEC(".maps") = {.values = {&bg_protos_0, &bg_protos_1}};

struct {
  __uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
  __uint(max_entries, BG_GENERATIONS);
  __type(key, __u32);
  __array(values, struct bg_rules_map);
} bg_rules SEC(".maps") = {.values = {&bg_rules_0, &bg_rules_1}};

/* Which sources may be known (BG_KNOWN_WORDS, bg_known_bit). */
struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, BG_KNOWN_WORDS);
  __uint(map_flags, BPF_F_MMAPABLE); /* the control plane sets bits atomically */
  __type(key, __u32);
  __type(value, __u64);
} bg_known_bits SEC(".maps");

/* Its summary (BG_KNOWN_SUM_WORDS, BG_KNOWN_SUM_SHIFT). */
struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, BG_KNOWN_SUM_WORDS);
  __uint(map_flags, BPF_F_MMAPABLE); /* the control plane sets bits atomically */
  __type(key, __u32);
  __type(value, __u64);
} bg_known_sum SEC(".maps");

/* Per CPU: what lets bg_hold_early decide a frame (struct bg_early). */
struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __uint(max_entries, 1);
  __type(key, __u32);
  __type(value, struct bg_early);
} bg_early SEC(".maps");

/* Hot sources' decisions and counts, per CPU (struct bg_hot_slot). */
struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __uint(max_entries, BG_HOT_SLOTS);
  __type(key, __u32);
  __type(value, struct bg_hot_slot);
} bg_hot SEC(".maps");

/* The program the filter hands every frame it passes to (slot BG_NEXT_LB:
 * the load balancer, include/bpfgate/abi/lb.h), pinned as BG_PIN_NEXT. An
 * empty slot passes the frame: nothing changes without a balancer. */
struct {
  __uint(type, BPF_MAP_TYPE_PROG_ARRAY);
  __uint(max_entries, 1);
  __type(key, __u32);
  __type(value, __u32);
} bg_xdp_next SEC(".maps");

#endif /* BPFGATE_BPF_MAPS_H */
