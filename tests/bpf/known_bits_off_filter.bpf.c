/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* The production pipeline without the known_bits map, as bpfgate built it
 * before the map: an older version's program for the upgrade test
 * (tests/integration/xdp_attach_test.cpp). */
#define BG_KNOWN_BITS_ON 0
#include "xdp/filter.h"

SEC("xdp")
int bg_known_bits_off_filter(struct xdp_md *ctx) {
  return bg_filter(ctx);
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
