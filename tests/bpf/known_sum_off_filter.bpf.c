/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* The production pipeline with the known_bits map and without its summary
 * (known_sum), as bpfgate built it before the summary: an older version's
 * program for the upgrade test (tests/integration/xdp_attach_test.cpp). */
#define BG_KNOWN_SUM_ON 0
#include "xdp/filter.h"

SEC("xdp")
int bg_known_sum_off_filter(struct xdp_md *ctx) {
  return bg_filter(ctx);
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
