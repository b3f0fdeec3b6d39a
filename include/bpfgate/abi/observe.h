/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Per-service observability: what the tc probes (bpf/observe/observe_tc.bpf.c) and
 * the TCP tracing probes (bpf/observe/observe_trace*.bpf.c, bpf/observe/observe_tp.bpf.c)
 * share with the agent (src/features/observe/probes.cpp). Defined once, here;
 * tests/unit/abi_test.cpp pins sizes and offsets.
 *
 * A service is a TCP port of this host. The tc programs see its traffic on
 * the interfaces it is reached through: a request starts with the first
 * payload from a client on an idle connection and ends with the first
 * payload the service sends back; the time between is the request's latency,
 * and for HTTP/1.x the response's first line gives its status class.
 */
#ifndef BPFGATE_ABI_OBSERVE_H
#define BPFGATE_ABI_OBSERVE_H

#ifndef __VMLINUX_H__
#include <linux/types.h>
#endif

/* Everything is pinned under <bpffs>/bpfgate-observe/. */
#define BG_OBS_PIN_DIR "bpfgate-observe"
#define BG_OBS_PIN_SERVICES "services"
#define BG_OBS_PIN_INFO "service_info"
#define BG_OBS_PIN_STATS "service_stats"
#define BG_OBS_PIN_FLOWS "flows"

#define BG_OBS_SERVICES_MAX 64 /* service ids 1..63; 0 is "not a service" */
#define BG_OBS_HIST_BUCKETS 32 /* log2 of microseconds: bucket i holds < 2^i us */
#define BG_OBS_FLOWS_MAX 65536
#define BG_OBS_NAME_MAX 32
#define BG_OBS_TC_PRIORITY 0xb6e0 /* our tc filters' priority (and handle) on clsact */

enum bg_obs_flags {
  BG_OBS_HTTP = 1, /* parse HTTP/1.x status lines */
};

/* services: ARRAY indexed by TCP port (host order). */
struct bg_obs_service {
  __u16 id; /* 0: not a service */
  __u16 flags;
};

/* service_info: ARRAY indexed by service id, for readers (CLI, metrics). */
struct bg_obs_service_info {
  char name[BG_OBS_NAME_MAX];
  __u16 port;
  __u16 flags;
  __u32 _pad;
};

enum bg_http_class {
  BG_HTTP_1XX = 0,
  BG_HTTP_2XX = 1,
  BG_HTTP_3XX = 2,
  BG_HTTP_4XX = 3,
  BG_HTTP_5XX = 4,
  BG_HTTP_OTHER = 5, /* a response that does not start with an HTTP/1.x status line */
  BG_HTTP_NR = 6,
};

/* service_stats: PERCPU_ARRAY indexed by service id. */
struct bg_obs_stats {
  __u64 requests;
  __u64 responses;
  __u64 latency_sum_ns;
  __u64 status[8];  /* enum bg_http_class (HTTP services only) */
  __u64 handshakes; /* SYN from a client ... its ACK of our SYN-ACK */
  __u64 handshake_sum_ns;
  __u64 resets_rx;   /* RST from clients */
  __u64 resets_tx;   /* RST sent by the service */
  __u64 retransmits; /* segments the service's sockets retransmitted (tracing probes) */
  __u64 accepted;    /* connections that became established (tracing probes) */
  __u64 _reserved[3];
  __u64 latency_hist[BG_OBS_HIST_BUCKETS];
  __u64 handshake_hist[BG_OBS_HIST_BUCKETS];
};

/* flows: LRU_HASH of connections to a service, as the tc programs see them. */
struct bg_obs_flow_key {
  __u8 client[16]; /* IPv4 v4-mapped */
  __u8 server[16];
  __u16 client_port; /* host order */
  __u16 server_port;
  __u32 _pad;
};

struct bg_obs_flow {
  __u64 request_ns; /* start of the request in flight, 0: idle */
  __u64 syn_ns;     /* the client's SYN, until the handshake completes */
};

/* The histogram bucket of a duration: bucket i holds [2^(i-1), 2^i) us, bucket
 * 0 holds < 1 us, the last one everything above. No loop: the verifier and
 * the control plane run the same code. */
static inline __u32 bg_obs_bucket(__u64 ns) {
  __u64 us = ns / 1000;
  __u32 bits = 0;
  if (us >> 32) {
    us >>= 32;
    bits += 32;
  }
  if (us >> 16) {
    us >>= 16;
    bits += 16;
  }
  if (us >> 8) {
    us >>= 8;
    bits += 8;
  }
  if (us >> 4) {
    us >>= 4;
    bits += 4;
  }
  if (us >> 2) {
    us >>= 2;
    bits += 2;
  }
  if (us >> 1) {
    us >>= 1;
    bits += 1;
  }
  bits += (__u32)us; /* bit length: 0 for 0, 1 for 1, 2 for 2..3, ... */
  return bits < BG_OBS_HIST_BUCKETS ? bits : BG_OBS_HIST_BUCKETS - 1;
}

#endif /* BPFGATE_ABI_OBSERVE_H */
