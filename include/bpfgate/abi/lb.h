/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The XDP load balancer's ABI: map keys, values and counters shared by
 * bpf/lb/ and src/features/lb/. Defined once, here; tests/unit/abi_test.cpp
 * pins sizes and offsets.
 *
 * Forwarding is DNAT: a frame to a service's address (VIP:port/proto) gets
 * the chosen backend's address and port, its checksums fixed up
 * incrementally, and is routed with bpf_fib_lookup (redirected out of the
 * interface the FIB names, or passed to the stack when the FIB has no
 * neighbour yet; a flow's entry keeps the FIB's answer for a second,
 * bg_lb_route). The backend's replies come back through this host (it is
 * their route to the clients) and get the VIP back as their source
 * (bg_lb_rev). Addresses are 16 bytes, IPv4 stored v4-mapped
 * (::ffff:a.b.c.d) as in the filter's maps; a service and its backends are
 * of one family.
 *
 * Policy (services, Maglev rings, weights) is double-buffered like the
 * filter's: the control plane writes generation !active beside the running
 * one and flips bg_lb_ctl.active in one write. Backends are not
 * generational: a backend keeps its id (its index in the backends map) for
 * as long as it is configured, so the connection table, which holds ids,
 * stays valid across every apply.
 *
 * Reached from the filter: the filter's program tail-calls slot 0 of its
 * BG_PIN_NEXT program array for every frame it passes (dropped frames are
 * never balanced). On an interface without a filter (the backends' side) the
 * balancer is attached by itself.
 */
#ifndef BPFGATE_ABI_LB_H
#define BPFGATE_ABI_LB_H

#include <linux/types.h>

/* In each filter's pin directory: the program array the filter tail-calls. */
#define BG_PIN_NEXT "next"
#define BG_NEXT_LB 0 /* slot of the balancer */

/* Under <bpffs>/bpfgate-lb/ (beside <bpffs>/bpfgate/, whose folders are the
 * filtered interfaces): one balancer for the host. */
#define BG_LB_PIN_DIR "lb"
#define BG_PIN_LB_PROG "prog"
#define BG_PIN_LB_CTL "ctl"
#define BG_PIN_LB_VIPS "vips"
#define BG_PIN_LB_RING "ring"
#define BG_PIN_LB_BACKENDS "backends"
#define BG_PIN_LB_CONNS "conns"
#define BG_PIN_LB_REVERSE "reverse"
#define BG_PIN_LB_STATS "stats"
#define BG_PIN_LB_COUNTERS "counters"
/* Links of the interfaces where the balancer runs alone: link_<ifname>. */
#define BG_PIN_LB_LINK_PREFIX "link_"

#define BG_LB_SERVICES_MAX 64   /* per generation */
#define BG_LB_BACKENDS_MAX 4096 /* ids 1..max-1; id 0 is "none" */
#define BG_LB_RING_DEFAULT 4099 /* Maglev table size (prime) per service */
#define BG_LB_RING_MAX 65537
#define BG_LB_CONNS_DEFAULT 262144

/* bg_lb_ctl[0]: which generation is live and the ring's geometry. */
struct bg_lb_ctl {
  __u32 active;       /* 0 or 1 */
  __u32 ring_size;    /* prime; fixed at load (the ring map is sized by it) */
  __u64 conn_idle_ns; /* a connection entry idle longer is a new flow */
};

/* vips (BPF_MAP_TYPE_HASH): generation x service address. */
struct bg_lb_vip_key {
  __u8 addr[16];
  __be16 port;
  __u8 proto; /* IPPROTO_TCP or IPPROTO_UDP */
  __u8 gen;
};

enum bg_lb_service_flags {
  BG_LB_SVC_NO_BACKEND = 1, /* no backend up: new flows are dropped and counted */
};

struct bg_lb_service {
  __u32 id;    /* stable across generations: the agent's service number, 1.. */
  __u32 slot;  /* ring slot: entries [slot * ring_size, (slot + 1) * ring_size) */
  __u32 flags; /* enum bg_lb_service_flags */
  __u32 _pad;
};

/* ring (BPF_MAP_TYPE_ARRAY of __u32 backend ids): 2 * BG_LB_SERVICES_MAX
 * slots of ring_size entries, the Maglev lookup tables built by the agent.
 * Generation g's services use slots [g * BG_LB_SERVICES_MAX, ...). */

enum bg_lb_backend_flags {
  BG_LB_BACKEND_USED = 1,     /* the id is configured */
  BG_LB_BACKEND_DRAINING = 2, /* out of the ring; its flows finish */
  BG_LB_BACKEND_DOWN = 4,     /* failed its health checks; out of the ring */
};

/* backends (BPF_MAP_TYPE_ARRAY, index = backend id). */
struct bg_lb_backend {
  __u8 addr[16];
  __be16 port; /* 0: the service's port */
  __u8 flags;  /* enum bg_lb_backend_flags */
  __u8 _pad;
  __u32 service; /* bg_lb_service.id */
};

/* conns (BPF_MAP_TYPE_LRU_HASH): client -> service, the flow's backend. */
struct bg_lb_conn_key {
  __u8 client[16];
  __u8 vip[16];
  __be16 cport;
  __be16 vport;
  __u8 proto;
  __u8 _pad[3];
};

enum bg_lb_conn_flags {
  BG_LB_CONN_SYN = 1,      /* opened by a SYN: the SYN-ACK's delay is measured */
  BG_LB_CONN_ANSWERED = 2, /* the backend's first reply was seen */
  BG_LB_CONN_REQUEST = 4,  /* the client's first payload was seen (request_ns) */
  BG_LB_CONN_RESPONDED = 8 /* the backend's first payload was seen */
};

/* What bpf_fib_lookup answered for a flow's frames (to its backend in the
 * connection entry, to its client in the reverse one), kept in the flow's
 * entry so that its next frames skip the lookup: a success only
 * (no neighbour, an unroutable or a too big frame are asked again every
 * time), for frames coming in by in_ifindex and no longer than mtu, for
 * BG_LB_ROUTE_TTL_NS (a changed route or neighbour is seen within that). */
#define BG_LB_ROUTE_TTL_NS 1000000000ULL
struct bg_lb_route {
  __u64 until_ns;   /* bpf_ktime_get_coarse_ns() it is good until; 0: none */
  __u32 in_ifindex; /* the interface the frames came in by */
  __u32 ifindex;    /* the FIB's egress interface */
  __u8 dmac[6];     /* the next hop's MAC */
  __u8 smac[6];     /* the egress interface's */
  __u16 mtu;        /* the route's MTU */
  __u16 _pad;
};

struct bg_lb_conn {
  __u32 backend;            /* id */
  __u32 flags;              /* enum bg_lb_conn_flags */
  __u64 last_ns;            /* the last frame: CLOCK_MONOTONIC, coarse (a tick behind at most) */
  __u64 opened_ns;          /* the SYN (or first frame) */
  __u64 request_ns;         /* the client's first payload */
  struct bg_lb_route route; /* to the backend, filled by the datapath */
};

/* reverse (BPF_MAP_TYPE_LRU_HASH): backend -> client, the service it answers for. */
struct bg_lb_rev_key {
  __u8 backend[16];
  __u8 client[16];
  __be16 bport;
  __be16 cport;
  __u8 proto;
  __u8 _pad[3];
};

struct bg_lb_rev {
  __u8 vip[16];
  __be16 vport;
  __u16 _pad;
  __u32 backend;            /* id */
  struct bg_lb_route route; /* to the client, filled by the datapath */
};

/* stats (BPF_MAP_TYPE_PERCPU_ARRAY, index = backend id): what the balancer
 * saw of each backend, in its own path (frames it sends with XDP_TX or a
 * redirect never reach tc, so this is where latency is measured). */
struct bg_lb_backend_stats {
  __u64 packets; /* client -> backend */
  __u64 bytes;
  __u64 rx_packets; /* backend -> client */
  __u64 rx_bytes;
  __u64 new_flows;
  __u64 resets;      /* RSTs from the backend */
  __u64 connect_ns;  /* sum of SYN -> SYN-ACK delays */
  __u64 connects;    /* their count */
  __u64 response_ns; /* sum of first request payload -> first response payload */
  __u64 responses;   /* their count */
};

/* hot (BPF_MAP_TYPE_PERCPU_ARRAY, BG_LB_HOT_SLOTS entries; not pinned): each
 * CPU's last decisions for established flows, so that a flow's next frames
 * skip the VIP and connection lookups. A flow may sit in one of two slots (a
 * hash of the frame's addresses, ports and protocol picks the pair), which
 * hold those in full (a frame of another flow misses). The slow path fills one
 * from a frame that went where its flow's entry and kept route said: the
 * flow's own, else an empty or expired one, else the one seen longer ago if
 * that was BG_LB_HOT_KEEP_MS ago (flows that keep coming are not pushed out
 * by others of their pair, which then take the slow path without the cost of
 * a fill at each frame). A frame is served from its slot
 * only while everything the slow path would have read says the same:
 *  - the generation (`active`) is the one the slot was filled under;
 *  - no flow was moved to another backend since (`moved`, the datapath's
 *    count of re-placements: a SYN reusing a 5-tuple, or a flow whose backend
 *    went down, may be placed on another CPU than the one holding its slot);
 *  - a request's backend is still configured, up and of the slot's service
 *    (read at each frame: health and drains apply at once);
 *  - the kept route is still good (`until_ns`: at most BG_LB_ROUTE_TTL_NS, and
 *    half the connection idle time, after the fill, so the slow path refreshes
 *    the entry's idleness well before it could expire);
 *  - the frame comes in by the route's interface, fits its MTU, has no SYN or
 *    RST and, if the slot says so, no payload (the first request and response
 *    payloads are timed by the slow path), no VLAN tag, TTL above 1.
 * The frame is then rewritten and counted exactly as the slow path would. */
#define BG_LB_HOT_BITS 11
#define BG_LB_HOT_SLOTS (1U << BG_LB_HOT_BITS) /* 224 KiB per CPU */
#define BG_LB_HOT_KEEP_MS 8                    /* in units of 2^20 ns */

enum bg_lb_hot_flags {
  BG_LB_HOT_FILL = 1,         /* (the slow path's) this frame may fill its slot */
  BG_LB_HOT_PAYLOAD_SLOW = 2, /* a frame with payload takes the slow path (still timed) */
};

/* The first slot of a flow's pair (the other is its index ^ 1): a
 * multiplicative mix of its addresses (each folded to a word, as the maps hold
 * them: an IPv4 address v4-mapped), ports and protocol. src and dst point to
 * 4 words each; the ports in network order as in the frame. */
static inline __u32 bg_lb_hot_index(const __u32 *src, const __u32 *dst, __be16 sport, __be16 dport,
                                    __u8 proto) {
  __u32 h = (src[0] ^ src[1] ^ src[2] ^ src[3]) * 0x9e3779b1U;
  h = (h ^ dst[0] ^ dst[1] ^ dst[2] ^ dst[3]) * 0x9e3779b1U;
  h = (h ^ ((__u32)sport << 16 | dport) ^ proto) * 0x9e3779b1U;
  return h >> (32 - BG_LB_HOT_BITS);
}

struct bg_lb_hot {
  __u8 src[16]; /* the frame's, as the filter's maps hold addresses */
  __u8 dst[16];
  __be16 sport;
  __be16 dport;
  __u8 proto;
  __u8 kind;  /* BG_LB_KIND_REQUEST or _REPLY (bpf/lb/lb.h); 0: empty */
  __u8 flags; /* enum bg_lb_hot_flags */
  __u8 _pad;
  __u32 active;  /* bg_lb_ctl.active at the fill */
  __u32 moved;   /* the datapath's re-placement count at the fill */
  __u32 backend; /* id */
  __u32 service; /* a request's: its backend must still serve it */
  __u8 addr[16]; /* a reply's VIP (a request's backend address is read at each frame) */
  __be16 port;   /* a reply's VIP port */
  __u16 _pad2;
  __u32 seen; /* the last fill or frame served, coarse clock >> 20 (about ms) */
  struct bg_lb_route route;
};

/* counters (BPF_MAP_TYPE_PERCPU_ARRAY of struct bg_counter, abi/xdp.h). */
enum bg_lb_counter {
  BG_LB_NOT_SERVICE = 0, /* not to a service, not a reply: passed untouched */
  BG_LB_FORWARDED = 1,   /* to a backend, redirected or sent back out (XDP_TX) */
  BG_LB_REPLIED = 2,     /* a backend's reply given the VIP as source and sent on */
  BG_LB_TO_STACK = 3,    /* rewritten, then passed: the FIB had no neighbour yet */
  BG_LB_NEW_FLOW = 4,    /* a flow placed by the ring */
  BG_LB_NO_BACKEND = 5,  /* to a service without a backend up: dropped */
  BG_LB_FRAGMENT = 6,    /* a fragment to a service: dropped (no ports to balance on) */
  BG_LB_ICMP = 7,        /* an ICMP error about a flow, sent to the flow's backend */
  BG_LB_TTL = 8,         /* TTL/hop limit exhausted: passed for the stack to answer */
  BG_LB_UNROUTABLE = 9,  /* the FIB has no route to the backend or client: dropped */
  BG_LB_CONNS_FULL = 10, /* the connection table refused an entry: balanced statelessly */
  BG_LB_COUNTER_NR = 11,
};

/* The flow hash that places a new flow on the ring. Plain C so that the
 * agent and the tests compute the same (a murmur3-style mix of the 5-tuple
 * without the VIP generation). */
static inline __u32 bg_lb_mix(__u32 h, __u32 k) {
  k *= 0xcc9e2d51U;
  k = (k << 15) | (k >> 17);
  k *= 0x1b873593U;
  h ^= k;
  h = (h << 13) | (h >> 19);
  return h * 5 + 0xe6546b64U;
}

static inline __u32 bg_lb_hash(const struct bg_lb_conn_key *k) {
  const __u8 *b = (const __u8 *)k; /* 40 bytes: ten words */
  __u32 h = 0x9747b28cU;
  for (int i = 0; i < 10; i++) {
    __u32 w;
    __builtin_memcpy(&w, b + 4 * i, 4);
    h = bg_lb_mix(h, w);
  }
  h ^= 40;
  h ^= h >> 16;
  h *= 0x85ebca6bU;
  h ^= h >> 13;
  h *= 0xc2b2ae35U;
  h ^= h >> 16;
  return h;
}

#endif /* BPFGATE_ABI_LB_H */
