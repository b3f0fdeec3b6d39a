/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * TCP health per service from the kernel's TCP stack, for kernels with BTF:
 *  - fexit/tcp_retransmit_skb: a segment a service's socket retransmitted
 *    (counted when the retransmission was sent, ret == 0); where the kernel
 *    refuses trampolines (no BPF_TRAMPOLINE for the arch, or a policy that
 *    forbids them: the 6.18 host this was built on answers EPERM) the agent loads
 *    tp_btf/tcp_retransmit_skb instead, which counts every attempt;
 *  - tp_btf/inet_sock_set_state: a connection to a service became
 *    established (SYN_RECV -> ESTABLISHED on the service's port).
 * Only sockets of the agent's network namespace count. Without BTF the agent
 * loads bpf/observe/observe_tp.bpf.c instead (classic tracepoints; those cannot tell
 * namespaces apart). Uses the vmlinux.h generated at build time from the
 * build host's BTF; CO-RE makes it fit the running kernel.
 */
#include "vmlinux.h"

#include <bpf/bpf_core_read.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

#include "observe/observe_maps.h"

/* Set before load: the inode of the agent's network namespace. The tracing
 * programs see every namespace of the host; services live in the agent's. */
const volatile __u32 bg_netns_ino = 0;

#define BG_TCP_ESTABLISHED 1
#define BG_TCP_SYN_RECV 3
#define BG_IPPROTO_TCP 6

/* The stats of the service on this socket's local port, in our namespace. */
static __always_inline struct bg_obs_stats *bg_obs_sock_stats(const struct sock *sk) {
  if (bg_netns_ino && BPF_CORE_READ(sk, __sk_common.skc_net.net, ns.inum) != bg_netns_ino)
    return 0;
  return bg_obs_service_stats(BPF_CORE_READ(sk, __sk_common.skc_num));
}

SEC("fexit/tcp_retransmit_skb")
int BPF_PROG(bg_obs_retransmit, struct sock *sk, struct sk_buff *skb, int segs, int ret) {
  if (ret != 0)
    return 0;
  struct bg_obs_stats *st = bg_obs_sock_stats(sk);
  if (st)
    __sync_fetch_and_add(&st->retransmits, 1);
  return 0;
}

SEC("tp_btf/tcp_retransmit_skb")
int BPF_PROG(bg_obs_retransmit_btf, const struct sock *sk) {
  struct bg_obs_stats *st = bg_obs_sock_stats(sk);
  if (st)
    __sync_fetch_and_add(&st->retransmits, 1);
  return 0;
}

SEC("tp_btf/inet_sock_set_state")
int BPF_PROG(bg_obs_set_state, const struct sock *sk, const int oldstate, const int newstate) {
  if (oldstate != BG_TCP_SYN_RECV || newstate != BG_TCP_ESTABLISHED)
    return 0;
  if (BPF_CORE_READ(sk, sk_protocol) != BG_IPPROTO_TCP)
    return 0;
  struct bg_obs_stats *st = bg_obs_sock_stats(sk);
  if (st)
    __sync_fetch_and_add(&st->accepted, 1);
  return 0;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
