/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The load balancer's internals (bpf/lb/lb.bpf.c): what its stages share
 * about a frame, and the counters. The rewrite's checksum arithmetic is
 * bpf/lib/csum.h's; every field the balancer rewrites lies at an even offset
 * from the start of the header whose checksum covers it.
 */
#ifndef BPFGATE_BPF_LB_H
#define BPFGATE_BPF_LB_H

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/tcp.h>
#include <linux/udp.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "lb/lb_maps.h"
#include "lib/csum.h"
#include "lib/parse.h"

#define BG_AF_INET 2
#define BG_AF_INET6 10

/* Offsets the stages accept: past them a frame is not rewritten (two VLAN
 * tags end at 22; IPv6 extension headers may make a transport header late). */
#define BG_LB_L3_MAX 64
#define BG_LB_L4_MAX 2048

/* A stage's result: an XDP action and the counter of the frame's outcome,
 * or one of the codes below to go on. */
#define BG_LB_RES(action, counter) ((int)((action) | ((counter) << 8)))
#define BG_LB_GO (-1)      /* rewrite and route the frame as w says */
#define BG_LB_NOT_VIP (-2) /* not to a service: maybe a backend's reply */
#define BG_LB_MISS (-3)    /* not served from a hot slot: the stages decide */

/* What the frame is to the balancer, once classified. */
enum bg_lb_kind {
  BG_LB_KIND_NONE = 0,
  BG_LB_KIND_REQUEST = 1, /* client -> VIP: destination becomes the backend */
  BG_LB_KIND_REPLY = 2,   /* backend -> client: source becomes the VIP */
  BG_LB_KIND_ICMP = 3,    /* an ICMP error about a flow: to the flow's backend */
};

#define BG_TCP_FIN 0x01
#define BG_TCP_SYN 0x02
#define BG_TCP_RST 0x04
#define BG_TCP_ACK 0x10

/* What the stages know of the frame, on the entry program's stack. */
struct bg_lb_work {
  struct bg_packet pkt;
  __u8 ttl;      /* the TTL or hop limit as received */
  __u8 in_proto; /* an ICMP error's inner transport (TCP or UDP), 0: not one */
  __u8 addr[16]; /* the address written: the backend's, or the VIP's for a reply */
  __be16 port;   /* the port written, 0: left as it is */
  __be16 in_sport;
  __be16 in_dport;
  __u16 in_l3; /* an ICMP error's inner IP and transport headers, from the frame's start */
  __u16 in_l4;
  __u8 hot;      /* enum bg_lb_hot_flags: whether and how the frame may fill its hot slot */
  __u8 active;   /* bg_lb_ctl.active (0 or 1) as the stage read it (the hot slot keeps it) */
  __u32 status;  /* enum bg_parse_status */
  __u32 len;     /* the frame's length */
  __u32 payload; /* TCP: bytes of payload */
  __u8 kind;     /* enum bg_lb_kind */
  __u8 cached;   /* enum bg_lb_kind of the flow's entry that may keep its route, 0: none */
  __u16 _pad;
  __u32 backend; /* the backend's id */
  __u32
      moved; /* bg_lb_moved as the stage read it, before the flow's entry (the hot slot keeps it) */
  /* (6.1 counts this struct in the 512 bytes of stack a chain of calls may
   * use, in 32-byte steps: it is 144 bytes, as before the hot slots.) */
  __u64 now; /* bpf_ktime_get_coarse_ns(): idleness, kept routes (delays: the fine clock) */
  /* One or the other (the stack is near the 512 bytes 6.1 allows a chain of
   * calls): an ICMP error's, or a request's or reply's (w->cached set). */
  union {
    struct {
      __u8 in_src[16]; /* an ICMP error's inner source and destination (v4-mapped) */
      __u8 in_dst[16];
    };
    struct bg_lb_route route; /* the route the flow's entry kept */
  };
};

static __always_inline void bg_lb_count(__u32 counter, __u64 bytes) {
  struct bg_counter *c = bpf_map_lookup_elem(&bg_lb_counters, &counter);
  if (c) {
    c->packets++;
    c->bytes += bytes;
  }
}

static __always_inline int bg_is_v4(const struct bg_lb_work *w) {
  return w->pkt.l3_proto == ETH_P_IP;
}

static __always_inline int bg_addr_eq(const __u8 a[16], const __u8 b[16]) {
  const __u32 *x = (const __u32 *)a, *y = (const __u32 *)b;
  return !((x[0] ^ y[0]) | (x[1] ^ y[1]) | (x[2] ^ y[2]) | (x[3] ^ y[3]));
}

static __always_inline struct bg_lb_backend_stats *bg_lb_stats_of(__u32 backend) {
  return bpf_map_lookup_elem(&bg_lb_stats, &backend);
}

#endif /* BPFGATE_BPF_LB_H */
