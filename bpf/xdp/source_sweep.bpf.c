/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The sweeper of idle per-source entries, in the kernel: one run of this
 * program (SEC("syscall"), run by user space with BPF_PROG_RUN; Linux 5.14+)
 * walks the XDP filter's sources and known maps with bpf_for_each_map_elem
 * and deletes, where they are, the entries last seen before `cutoff_ns`.
 * Reading a million entries out to user space and deleting the idle ones in
 * batches costs seconds. A map-element iterator (iter/bpf_map_elem, what this
 * was before) runs a program per element through a seq_file, fails a read()
 * that walks 1,000,000 elements without output (EAGAIN), and is refused
 * where tracing programs are (this 6.18 host: EPERM).
 *
 * The maps are the filter's, reused by fd at load time; user space sets
 * cutoff_ns, runs the program, then reads the counts it left.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "bpfgate/abi/xdp.h"

struct {
  __uint(type, BPF_MAP_TYPE_LRU_HASH);
  __uint(max_entries, 1); /* the filter's map replaces it */
  __type(key, struct bg_src_key);
  __type(value, struct bg_src_state);
} bg_sources SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, 1); /* the filter's map replaces it */
  __type(key, struct bg_src_key);
  __type(value, struct bg_src_state);
} bg_known SEC(".maps");

struct bg_sweep_count {
  __u64 seen;
  __u64 removed;
};

__u64 cutoff_ns = 0;
/* The last run's counts, of each map. */
__u64 sources_seen = 0, sources_removed = 0;
__u64 known_seen = 0, known_removed = 0;

/* bpf_for_each_map_elem's callback: deletes the element if it is idle. A
 * hash map's walk holds no bucket lock, so the element may delete itself. */
static long bg_sweep_elem(void *map, const struct bg_src_key *key, const struct bg_src_state *st,
                          struct bg_sweep_count *count) {
  count->seen++;
  if (st->last_seen_ns < cutoff_ns && bpf_map_delete_elem(map, key) == 0)
    count->removed++;
  return 0;
}

SEC("syscall")
int bg_sweep_sources(void *ctx) {
  struct bg_sweep_count sources = {}, known = {};
  bpf_for_each_map_elem(&bg_sources, bg_sweep_elem, &sources, 0);
  bpf_for_each_map_elem(&bg_known, bg_sweep_elem, &known, 0);
  sources_seen = sources.seen;
  sources_removed = sources.removed;
  known_seen = known.seen;
  known_removed = known.removed;
  return 0;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
