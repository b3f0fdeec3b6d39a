/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* The production pipeline built so that every compare-and-swap of a bucket
 * counts as lost to another CPU (tests/bpf/filter_accounting_test.cpp). */
#define BG_CAS_TRIES 0
#include "xdp/filter.h"

SEC("xdp")
int bg_cas_lost_filter(struct xdp_md *ctx) {
  return bg_filter(ctx);
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
