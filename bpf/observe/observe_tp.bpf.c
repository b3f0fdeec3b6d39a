/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The fallback of bpf/observe/observe_trace.bpf.c for kernels without BTF or fexit:
 * the same two counts from classic tracepoints. A tracepoint's record layout
 * changes between kernels (6.18 added `err` to tcp_retransmit_skb), and
 * without BTF there is no CO-RE, so the agent reads each field's offset from
 * the tracepoint's format file in tracefs and sets it here before load.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "observe/observe_maps.h"

#define BG_TCP_ESTABLISHED 1
#define BG_TCP_SYN_RECV 3
#define BG_IPPROTO_TCP 6

/* Offsets into the records, from events/{tcp,sock}/<name>/format. */
const volatile __u32 bg_rt_sport_off = 28;
const volatile __u32 bg_ss_oldstate_off = 16;
const volatile __u32 bg_ss_newstate_off = 20;
const volatile __u32 bg_ss_sport_off = 24;
const volatile __u32 bg_ss_protocol_off = 30;

static __always_inline __u32 bg_read_u16(void *ctx, __u32 off) {
  __u16 v = 0;
  bpf_probe_read_kernel(&v, sizeof(v), (char *)ctx + off);
  return v;
}

static __always_inline __s32 bg_read_s32(void *ctx, __u32 off) {
  __s32 v = 0;
  bpf_probe_read_kernel(&v, sizeof(v), (char *)ctx + off);
  return v;
}

SEC("tracepoint/tcp/tcp_retransmit_skb")
int bg_obs_retransmit_tp(void *ctx) {
  struct bg_obs_stats *st = bg_obs_service_stats(bg_read_u16(ctx, bg_rt_sport_off));
  if (st)
    __sync_fetch_and_add(&st->retransmits, 1);
  return 0;
}

SEC("tracepoint/sock/inet_sock_set_state")
int bg_obs_set_state_tp(void *ctx) {
  if (bg_read_s32(ctx, bg_ss_oldstate_off) != BG_TCP_SYN_RECV ||
      bg_read_s32(ctx, bg_ss_newstate_off) != BG_TCP_ESTABLISHED ||
      bg_read_u16(ctx, bg_ss_protocol_off) != BG_IPPROTO_TCP)
    return 0;
  struct bg_obs_stats *st = bg_obs_service_stats(bg_read_u16(ctx, bg_ss_sport_off));
  if (st)
    __sync_fetch_and_add(&st->accepted, 1);
  return 0;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
