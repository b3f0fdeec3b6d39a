/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* The production pipeline with a per-source table that refuses entries when
 * full (a plain hash, not an LRU), so that a source without room fails open
 * (tests/bpf/filter_accounting_test.cpp). */
#define BG_SOURCES_MAP_TYPE BPF_MAP_TYPE_HASH
#include "xdp/filter.h"

SEC("xdp")
int bg_no_state_filter(struct xdp_md *ctx) {
  return bg_filter(ctx);
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
