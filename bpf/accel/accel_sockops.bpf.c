/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Socket acceleration for TCP between two sockets of this host.
 *
 * bg_accel_sockops (sock_ops, attached to a cgroup v2): when a TCP socket of
 * the cgroup becomes established and both ends are local addresses, on a
 * configured port, in the configured netns, it goes into the sockhash keyed
 * by (local, remote, netns).
 *
 * bg_accel_msg (sk_msg, attached to the sockhash): on each send of a socket
 * in the sockhash, look its peer up by the reversed key; when the peer is
 * there, the message goes straight into the peer's receive queue
 * (BPF_F_INGRESS). When it is not (a non-local peer, a connection opened
 * before enabling, a peer that closed), the message takes the normal TCP
 * path, and so does everything this socket sends afterwards: redirected bytes
 * must never overtake bytes the peer has not read from its TCP queue yet.
 * bpf_msg_redirect_hash() returns SK_DROP for a missing key; its result is
 * only used to choose, never returned, so no message is ever dropped here.
 *
 * Uses nothing newer than Linux 6.1: sk_storage and netns cookies are
 * available to both program types there.
 */
#include <linux/bpf.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "bpfgate/abi/accel.h"
#include "bpfgate/abi/xdp.h" /* struct bg_lpm_key: the 128-bit LPM key */
#include "accel/sk_state.h"

enum {
  BG_AF_INET = 2,
  BG_AF_INET6 = 10,
};

struct {
  __uint(type, BPF_MAP_TYPE_SOCKHASH);
  __uint(max_entries, BG_ACCEL_MAX_SOCKETS_DEFAULT); /* set at load time */
  __type(key, struct bg_accel_key);
  __type(value, __u64);
} bg_accel_sockets SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, 1);
  __type(key, __u32);
  __type(value, struct bg_accel_config);
} bg_accel_config SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __uint(max_entries, BG_ACCEL_EVENT_NR);
  __type(key, __u32);
  __type(value, struct bg_accel_counter);
} bg_accel_counters SEC(".maps");

/* Ports bitmap: bit (port & 31) of word (port >> 5). */
struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, BG_ACCEL_PORT_WORDS);
  __type(key, __u32);
  __type(value, __u32);
} bg_accel_ports SEC(".maps");

/* Addresses both ends must be in (this host's, by default). */
struct {
  __uint(type, BPF_MAP_TYPE_LPM_TRIE);
  __uint(max_entries, BG_ACCEL_MAX_ADDRS);
  __uint(map_flags, BPF_F_NO_PREALLOC);
  __type(key, struct bg_lpm_key);
  __type(value, __u32);
} bg_accel_addrs SEC(".maps");

/* Sockets whose owner has too many redirected bytes unread (see accel.h). */
struct {
  __uint(type, BPF_MAP_TYPE_LRU_HASH);
  __uint(max_entries, BG_ACCEL_MAX_CONGESTED);
  __type(key, struct bg_accel_key);
  __type(value, __u64);
} bg_accel_congested SEC(".maps");

static __always_inline void bg_accel_count(__u32 event, __u64 bytes) {
  struct bg_accel_counter *c = bpf_map_lookup_elem(&bg_accel_counters, &event);
  if (c) {
    c->count++;
    c->bytes += bytes;
  }
}

static __always_inline const struct bg_accel_config *bg_accel_cfg(void) {
  __u32 zero = 0;
  return bpf_map_lookup_elem(&bg_accel_config, &zero);
}

static __always_inline void bg_accel_v4_mapped(__u32 out[4], __u32 v4) {
  out[0] = 0;
  out[1] = 0;
  out[2] = bpf_htonl(0x0000ffff);
  out[3] = v4;
}

static __always_inline int bg_accel_port_match(const struct bg_accel_config *cfg, __u16 port) {
  if (cfg->flags & BG_ACCEL_F_ANY_PORT)
    return 1;
  __u32 word = port >> 5;
  __u32 *bits = bpf_map_lookup_elem(&bg_accel_ports, &word);
  return bits && (*bits >> (port & 31)) & 1;
}

static __always_inline int bg_accel_addr_match(const __u32 ip[4]) {
  struct bg_lpm_key k = {.prefixlen = 128};
  __builtin_memcpy(k.addr, ip, sizeof(k.addr));
  return bpf_map_lookup_elem(&bg_accel_addrs, &k) != 0;
}

/* The key of this end of the connection, or 0 for a family we do not handle. */
static __always_inline int bg_accel_sockops_key(struct bpf_sock_ops *skops,
                                                struct bg_accel_key *key) {
  if (skops->family == BG_AF_INET) {
    bg_accel_v4_mapped(key->local_ip, skops->local_ip4);
    bg_accel_v4_mapped(key->remote_ip, skops->remote_ip4);
  } else if (skops->family == BG_AF_INET6) {
    key->local_ip[0] = skops->local_ip6[0];
    key->local_ip[1] = skops->local_ip6[1];
    key->local_ip[2] = skops->local_ip6[2];
    key->local_ip[3] = skops->local_ip6[3];
    key->remote_ip[0] = skops->remote_ip6[0];
    key->remote_ip[1] = skops->remote_ip6[1];
    key->remote_ip[2] = skops->remote_ip6[2];
    key->remote_ip[3] = skops->remote_ip6[3];
  } else {
    return 0;
  }
  key->local_port = (__u16)skops->local_port;              /* host order */
  key->remote_port = (__u16)bpf_ntohl(skops->remote_port); /* network order, high half */
  key->netns_cookie = bpf_get_netns_cookie(skops);
  return 1;
}

static __always_inline void bg_accel_add(struct bpf_sock_ops *skops) {
  const struct bg_accel_config *cfg = bg_accel_cfg();
  if (!cfg || (cfg->flags & BG_ACCEL_F_DRAINING))
    return;
  struct bg_accel_key key = {};
  if (!bg_accel_sockops_key(skops, &key))
    return;
  /* data_segs_out: a TCP Fast Open SYN already carried data the normal way. */
  if (key.netns_cookie != cfg->netns_cookie || skops->data_segs_out != 0 ||
      !(bg_accel_port_match(cfg, key.local_port) || bg_accel_port_match(cfg, key.remote_port)) ||
      !bg_accel_addr_match(key.local_ip) || !bg_accel_addr_match(key.remote_ip)) {
    bg_accel_count(BG_ACCEL_SOCK_SKIPPED, 0);
    return;
  }
  struct bpf_sock *sk = skops->sk;
  if (!sk)
    return;
  struct bg_accel_sk_state *st =
      bpf_sk_storage_get(&bg_accel_sk_state, sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
  if (!st) {
    bg_accel_count(BG_ACCEL_SOCK_ADD_FAILED, 0);
    return;
  }
  st->flags = 0;
  st->key = key;
  if (bpf_sock_hash_update(skops, &bg_accel_sockets, &key, BPF_NOEXIST) != 0) {
    st->flags = BG_ACCEL_SK_FALLBACK;
    bg_accel_count(BG_ACCEL_SOCK_ADD_FAILED, 0);
    return;
  }
  bg_accel_count(BG_ACCEL_SOCK_ADDED, 0);
}

SEC("sockops")
int bg_accel_sockops(struct bpf_sock_ops *skops) {
  switch (skops->op) {
    case BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB:
    case BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB:
      bg_accel_add(skops);
      break;
    default:
      break;
  }
  return 1;
}

/* The key under which the peer of the sending socket is stored. */
static __always_inline int bg_accel_peer_key(struct sk_msg_md *msg, struct bg_accel_key *peer) {
  if (msg->family == BG_AF_INET) {
    bg_accel_v4_mapped(peer->local_ip, msg->remote_ip4);
    bg_accel_v4_mapped(peer->remote_ip, msg->local_ip4);
  } else if (msg->family == BG_AF_INET6) {
    peer->local_ip[0] = msg->remote_ip6[0];
    peer->local_ip[1] = msg->remote_ip6[1];
    peer->local_ip[2] = msg->remote_ip6[2];
    peer->local_ip[3] = msg->remote_ip6[3];
    peer->remote_ip[0] = msg->local_ip6[0];
    peer->remote_ip[1] = msg->local_ip6[1];
    peer->remote_ip[2] = msg->local_ip6[2];
    peer->remote_ip[3] = msg->local_ip6[3];
  } else {
    return 0;
  }
  peer->local_port = (__u16)bpf_ntohl(msg->remote_port);
  peer->remote_port = (__u16)msg->local_port;
  peer->netns_cookie = bpf_get_netns_cookie(msg);
  return 1;
}

SEC("sk_msg")
int bg_accel_msg(struct sk_msg_md *msg) {
  __u64 size = msg->size;
  struct bg_accel_sk_state *st = bpf_sk_storage_get(&bg_accel_sk_state, msg->sk, 0, 0);
  if (!st) {
    bg_accel_count(BG_ACCEL_MSG_NO_STATE, size);
    return SK_PASS;
  }
  if (st->flags & BG_ACCEL_SK_FALLBACK) {
    bg_accel_count(BG_ACCEL_MSG_FALLBACK, size);
    return SK_PASS;
  }
  const struct bg_accel_config *cfg = bg_accel_cfg();
  if (!cfg || (cfg->flags & BG_ACCEL_F_DRAINING)) {
    st->flags |= BG_ACCEL_SK_FALLBACK;
    bg_accel_count(BG_ACCEL_MSG_DRAINING, size);
    return SK_PASS;
  }
  struct bg_accel_key peer = {};
  if (!bg_accel_peer_key(msg, &peer)) {
    st->flags |= BG_ACCEL_SK_FALLBACK;
    bg_accel_count(BG_ACCEL_MSG_NO_PEER, size);
    return SK_PASS;
  }
  if (bpf_map_lookup_elem(&bg_accel_congested, &peer)) {
    st->flags |= BG_ACCEL_SK_FALLBACK;
    bg_accel_count(BG_ACCEL_MSG_BACKLOG, size);
    return SK_PASS;
  }
  if (bpf_msg_redirect_hash(msg, &bg_accel_sockets, &peer, BPF_F_INGRESS) == SK_PASS) {
    bg_accel_count(BG_ACCEL_MSG_REDIRECTED, size);
    return SK_PASS;
  }
  st->flags |= BG_ACCEL_SK_FALLBACK;
  bg_accel_count(BG_ACCEL_MSG_NO_PEER, size);
  return SK_PASS;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
