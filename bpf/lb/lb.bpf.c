/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* bpfgate XDP load balancer. PLACEHOLDER: the maps are the contract
 * (lb_maps.h); the program passes every frame until the datapath lands. */
#include "lb/lb_maps.h"

SEC("xdp")
int bg_xdp_lb(struct xdp_md *ctx) {
  (void)ctx;
  return XDP_PASS;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
