/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The fleet's shared blocklist (src/features/fleet/): what a node keeps of
 * the entries it applied from the fleet. A fleet entry in a filter's
 * blocklist has reason BG_BLOCK_FLEET (xdp.h); its origin is in a hash map
 * the agent creates and pins at <bpffs>/bpfgate-fleet/origins, keyed by the
 * blocklist's key, so that `bpfgate list` shows it and a restarted agent
 * knows what it applied. No BPF program reads it.
 */
#ifndef BPFGATE_ABI_FLEET_H
#define BPFGATE_ABI_FLEET_H

#include <linux/types.h>

#define BG_PIN_FLEET_DIR "bpfgate-fleet"
#define BG_PIN_FLEET_ORIGINS "origins"
#define BG_FLEET_NODE_MAX 64

struct bg_fleet_origin {
  char node[BG_FLEET_NODE_MAX]; /* the publishing node, NUL-terminated */
  __u64 at_ms;                  /* unix ms: when that node learned it */
  __s64 expires;                /* unix s; 0: until its key is deleted */
};

/* Every other node's key in force on this node, in a hash map pinned beside
 * the origins (BG_PIN_FLEET_KEYS), keyed by the CIDR and the node, its value
 * the key's origin: a CIDR several nodes blocked has a key of each, and the
 * origins map holds one node per CIDR, so a restarted agent that resumes
 * from its revision reads what it holds from here. */
#define BG_PIN_FLEET_KEYS "keys"
#define BG_FLEET_KEYS_MAX (1U << 20)

struct bg_fleet_key {
  __u32 prefixlen; /* as struct bg_lpm_key (xdp.h) */
  __u8 addr[16];
  char node[BG_FLEET_NODE_MAX];
};

#endif
