/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The load balancer's maps (include/bpfgate/abi/lb.h says what each holds).
 * The agent sizes the ring (2 * BG_LB_SERVICES_MAX * ring_size) and the
 * connection tables before load.
 */
#ifndef BPFGATE_BPF_LB_MAPS_H
#define BPFGATE_BPF_LB_MAPS_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "bpfgate/abi/lb.h"
#include "bpfgate/abi/xdp.h" /* struct bg_counter */

struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, 1);
  __type(key, __u32);
  __type(value, struct bg_lb_ctl);
} bg_lb_ctl SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, 2 * BG_LB_SERVICES_MAX);
  __type(key, struct bg_lb_vip_key);
  __type(value, struct bg_lb_service);
} bg_lb_vips SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, 2 * BG_LB_SERVICES_MAX * BG_LB_RING_DEFAULT); /* set before load */
  __type(key, __u32);
  __type(value, __u32);
} bg_lb_ring SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, BG_LB_BACKENDS_MAX);
  __type(key, __u32);
  __type(value, struct bg_lb_backend);
} bg_lb_backends SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_LRU_HASH);
  __uint(max_entries, BG_LB_CONNS_DEFAULT); /* set before load */
  __type(key, struct bg_lb_conn_key);
  __type(value, struct bg_lb_conn);
} bg_lb_conns SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_LRU_HASH);
  __uint(max_entries, BG_LB_CONNS_DEFAULT); /* set before load */
  __type(key, struct bg_lb_rev_key);
  __type(value, struct bg_lb_rev);
} bg_lb_reverse SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __uint(max_entries, BG_LB_BACKENDS_MAX);
  __type(key, __u32);
  __type(value, struct bg_lb_backend_stats);
} bg_lb_stats SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __uint(max_entries, BG_LB_COUNTER_NR);
  __type(key, __u32);
  __type(value, struct bg_counter);
} bg_lb_counters SEC(".maps");

/* Each CPU's last decisions for established flows (abi/lb.h, struct
 * bg_lb_hot); not pinned: a new program starts with every slot empty. */
struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __uint(max_entries, BG_LB_HOT_SLOTS);
  __type(key, __u32);
  __type(value, struct bg_lb_hot);
} bg_lb_hot SEC(".maps");

/* How many times a flow with an entry was placed on another backend than the
 * entry's: a hot slot filled before such a move is stale on every CPU. */
__u32 bg_lb_moved;

#endif /* BPFGATE_BPF_LB_MAPS_H */
