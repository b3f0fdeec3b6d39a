/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The sweeper of idle per-source entries, in the kernel (SEC("iter/bpf_map_elem"),
 * Linux 5.9+): one pass over the XDP filter's sources map deletes every entry
 * last seen before `cutoff_ns`. Reading a million entries out to user space
 * and deleting the idle ones in batches costs about two seconds here; walking
 * them where they are costs a fraction of that (bench/run policy).
 *
 * The map is the filter's, reused by fd at load time; user space sets
 * cutoff_ns, zeroes the counters, runs the iterator by reading it to the end,
 * then reads seen/removed.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "bpfgate/abi/xdp.h"

struct bpf_iter_meta {
  void *seq;
} __attribute__((preserve_access_index));

struct bpf_iter__bpf_map_elem {
  struct bpf_iter_meta *meta;
  void *map;
  void *key;
  void *value;
} __attribute__((preserve_access_index));

struct {
  __uint(type, BPF_MAP_TYPE_LRU_HASH);
  __uint(max_entries, 1); /* the filter's map replaces it */
  __type(key, struct bg_src_key);
  __type(value, struct bg_src_state);
} bg_sources SEC(".maps");

__u64 cutoff_ns = 0;
__u64 seen = 0;
__u64 removed = 0;

SEC("iter/bpf_map_elem")
int bg_sweep_sources(struct bpf_iter__bpf_map_elem *ctx) {
  const struct bg_src_key *key = ctx->key;
  const struct bg_src_state *st = ctx->value;
  if (!key || !st)
    return 0;
  seen++;
  if (st->last_seen_ns >= cutoff_ns)
    return 0;
  struct bg_src_key k = *key;
  if (bpf_map_delete_elem(&bg_sources, &k) == 0)
    removed++;
  return 0;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
