/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Socket acceleration's ABI: the sockhash key, the per-socket state, the
 * runtime config and the counters shared by the sock_ops / sk_msg programs
 * (bpf/accel/accel_sockops.bpf.c), the drain iterator (bpf/accel/accel_sweep.bpf.c) and
 * the C++ control plane (src/features/accel/accel.cpp). Defined once, here; fixed-width
 * types, explicit padding; tests/unit/accel_abi_test.cpp pins sizes and offsets.
 */
#ifndef BPFGATE_ABI_ACCEL_H
#define BPFGATE_ABI_ACCEL_H

#include <linux/types.h>

/* Everything lives under <bpffs>/bpfgate-accel/ (not under <bpffs>/bpfgate/,
 * whose subdirectories are interface names). */
#define BG_ACCEL_PIN_DIR "bpfgate-accel"
#define BG_ACCEL_PIN_LINK "sockops_link" /* cgroup link of the sock_ops program */
#define BG_ACCEL_PIN_SOCKOPS "sockops_prog"
#define BG_ACCEL_PIN_MSG "msg_prog" /* sk_msg program, attached to the sockhash */
#define BG_ACCEL_PIN_SOCKETS "sockets"
#define BG_ACCEL_PIN_CONFIG "config"
#define BG_ACCEL_PIN_COUNTERS "counters"
#define BG_ACCEL_PIN_PORTS "ports"
#define BG_ACCEL_PIN_ADDRS "addresses"
#define BG_ACCEL_PIN_SK_STATE "sk_state"
#define BG_ACCEL_PIN_CONGESTED "congested"

#define BG_ACCEL_MAX_SOCKETS_DEFAULT 65536U
#define BG_ACCEL_MAX_SOCKETS_MAX (1U << 22)
#define BG_ACCEL_MAX_ADDRS 1024U
#define BG_ACCEL_PORT_WORDS 2048U /* 65536 ports, one bit each, in __u32 words */
#define BG_ACCEL_MAX_CONGESTED 4096U

/* One end of a TCP connection as the sockhash keys it. Addresses are IPv6
 * words in network order, IPv4 stored v4-mapped (::ffff:a.b.c.d), so an
 * AF_INET6 socket talking to a v4-mapped address finds its AF_INET peer.
 * The peer of (local, remote) is (remote, local) in the same netns. */
struct bg_accel_key {
  __u32 local_ip[4];
  __u32 remote_ip[4];
  __u64 netns_cookie;
  __u16 local_port;  /* host order */
  __u16 remote_port; /* host order */
  __u32 _pad;
};

/* Per-socket state (BPF_MAP_TYPE_SK_STORAGE), created when the socket is
 * put into the sockhash. Once a socket has sent one byte through the normal
 * TCP path it never redirects again: its peer may still hold those bytes
 * unread, and redirected bytes would overtake them. */
enum bg_accel_sk_flags {
  BG_ACCEL_SK_FALLBACK = 1,
};

struct bg_accel_sk_state {
  __u32 flags; /* enum bg_accel_sk_flags */
  __u32 _pad;
  struct bg_accel_key key; /* the socket's key in the sockhash (for iter/tcp) */
};

/* Runtime settings (config map, BPF_MAP_TYPE_ARRAY, one entry at index 0). */
enum bg_accel_config_flags {
  BG_ACCEL_F_ANY_PORT = 1, /* the ports bitmap is ignored: every port matches */
  BG_ACCEL_F_DRAINING = 2, /* disable in progress: no new sockets, no redirects */
};

struct bg_accel_config {
  __u64 netns_cookie; /* only sockets of this network namespace */
  __u64 cgroup_id;    /* informational: the cgroup the sock_ops program is attached to */
  __u32 flags;        /* enum bg_accel_config_flags */
  __u32 generation;   /* bumped by every change; lets readers see one */
};

/* Counters (BPF_MAP_TYPE_PERCPU_ARRAY), keyed by event. */
enum bg_accel_event {
  BG_ACCEL_SOCK_ADDED = 0,      /* socket put into the sockhash */
  BG_ACCEL_SOCK_ADD_FAILED = 1, /* sockhash full, or a socket the kernel refuses (kTLS...) */
  BG_ACCEL_SOCK_SKIPPED = 2,    /* established, but not ours: netns, port, address, TFO */
  BG_ACCEL_MSG_REDIRECTED = 3,  /* sent straight into the peer socket's receive queue */
  BG_ACCEL_MSG_NO_PEER = 4,     /* peer not in the sockhash: the normal path from now on */
  BG_ACCEL_MSG_FALLBACK = 5,    /* socket fell back earlier: the normal path */
  BG_ACCEL_MSG_DRAINING = 6,    /* acceleration being disabled: the normal path from now on */
  BG_ACCEL_MSG_NO_STATE = 7,    /* socket in the sockhash without state (not put there by us) */
  BG_ACCEL_MSG_BACKLOG = 8,     /* peer holds too many unread bytes: the normal path from now on */
  BG_ACCEL_EVENT_NR = 9,
};

/* Redirected bytes have no flow control: the kernel queues them on the peer
 * however much its owner has left unread, up to the host's TCP memory limit.
 * The control plane's backlog guard (the drain iterator, run periodically)
 * puts a socket whose unread bytes pass a limit into the congested map
 * (BPF_MAP_TYPE_LRU_HASH, key: that socket's key, value: its unread bytes);
 * its peer then falls back to the normal TCP path, which has flow control. */

struct bg_accel_counter {
  __u64 count;
  __u64 bytes;
};

/* What the drain iterator (SEC("iter/sockmap")) writes for each socket in the
 * sockhash: its key, whether redirected messages wait unread in its psock
 * (those are lost if the socket leaves the sockhash), and all the bytes its
 * owner has not read yet (redirected and normal receive queue alike). */
struct bg_accel_sweep_rec {
  struct bg_accel_key key;
  __u32 rmem_alloc;      /* sk_rmem_alloc: unread bytes, both queues */
  __u32 sk_flags;        /* enum bg_accel_sk_flags, 0 when the socket has no state */
  __u32 ingress_pending; /* 1: redirected messages wait in the psock; 2: no psock seen */
  __u32 _pad;
};

#endif /* BPFGATE_ABI_ACCEL_H */
