/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The drain iterator of socket acceleration (SEC("iter/sockmap"), Linux 5.10+).
 *
 * Removing a socket from the sockhash frees its psock, and with it every
 * redirected message its owner has not read yet (the kernel purges the psock's
 * ingress queue; bytes that came the normal way wait in the TCP receive queue
 * and are not touched). So `bpfgate accel disable` removes a socket only once
 * its psock holds no message: this iterator walks the sockhash and writes, for
 * each socket, its key, whether messages wait in its psock, its unread bytes
 * of both kinds (sk_rmem_alloc, which the backlog guard watches) and its state.
 *
 * Some kernels refuse iter/sockmap programs outright (EPERM, even to root,
 * before verifying a single instruction: seen on this project's 6.18 hosts)
 * while iter/tcp loads. So there is a second iterator, bg_accel_sweep_tcp,
 * that walks every TCP socket of the caller's network namespace and writes
 * the same record for each one our sock_ops program gave a socket state; the
 * key is the one sock_ops stored in that state. User space loads one of the
 * two (src/features/accel/accel_sweep.cpp) and drops the records of sockets no longer
 * in the sockhash.
 *
 * A tracing program reads kernel structs through BTF. Instead of a whole
 * vmlinux.h it declares the few fields it reads with preserve_access_index:
 * libbpf relocates them against the running kernel's BTF (CO-RE), so the
 * build does not depend on the build machine's kernel.
 */
#include <linux/bpf.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_helpers.h>

#include "bpfgate/abi/accel.h"
#include "accel/sk_state.h"

struct bpf_iter_meta {
  struct seq_file *seq;
} __attribute__((preserve_access_index));

struct bg_atomic {
  int counter;
};

struct sock {
  struct {
    struct bg_atomic rmem_alloc;
  } sk_backlog;
  void *sk_user_data;
} __attribute__((preserve_access_index));

struct bg_list_head {
  void *next;
  void *prev;
};

struct sk_psock {
  struct bg_list_head ingress_msg;
} __attribute__((preserve_access_index));

struct bpf_iter__sockmap {
  struct bpf_iter_meta *meta;
  void *map;
  void *key;
  struct sock *sk;
} __attribute__((preserve_access_index));

struct sock_common;

struct bpf_iter__tcp {
  struct bpf_iter_meta *meta;
  struct sock_common *sk_common;
  __u32 uid;
} __attribute__((preserve_access_index));

/* sk_user_data carries flags in its low bits (SK_USER_DATA_NOCOPY, _BPF,
 * _PSOCK); a psock is at least 8-byte aligned. */
#define BG_SK_USER_DATA_PTRMASK (~7ULL)

/* 0: the psock's ingress queue is empty; 1: messages wait; 2: no psock. */
static __always_inline __u32 bg_ingress_pending(struct sock *sk) {
  __u64 ud = (__u64)sk->sk_user_data & BG_SK_USER_DATA_PTRMASK;
  if (!ud)
    return 2;
  __u64 head = ud + __builtin_preserve_field_info(((struct sk_psock *)0)->ingress_msg,
                                                  BPF_FIELD_BYTE_OFFSET);
  __u64 next = 0;
  if (bpf_probe_read_kernel(&next, sizeof(next), (void *)head) != 0)
    return 2;
  return next == head ? 0 : 1;
}

static __always_inline void bg_fill(struct bg_accel_sweep_rec *rec, struct sock *sk) {
  rec->rmem_alloc = (__u32)sk->sk_backlog.rmem_alloc.counter;
  rec->ingress_pending = bg_ingress_pending(sk);
}

SEC("iter/sockmap")
int bg_accel_sweep(struct bpf_iter__sockmap *ctx) {
  struct sock *sk = ctx->sk;
  void *key = ctx->key;
  if (!sk || !key)
    return 0;
  struct bg_accel_sweep_rec rec = {};
  __builtin_memcpy(&rec.key, key, sizeof(rec.key));
  bg_fill(&rec, sk);
  struct bg_accel_sk_state *st = bpf_sk_storage_get(&bg_accel_sk_state, sk, 0, 0);
  if (st)
    rec.sk_flags = st->flags;
  bpf_seq_write(ctx->meta->seq, &rec, sizeof(rec));
  return 0;
}

SEC("iter/tcp")
int bg_accel_sweep_tcp(struct bpf_iter__tcp *ctx) {
  struct sock_common *skc = ctx->sk_common;
  if (!skc)
    return 0;
  /* NULL for listeners' request sockets and TIME_WAIT: never in the sockhash. */
  struct sock *sk = (struct sock *)bpf_skc_to_tcp_sock(skc);
  if (!sk)
    return 0;
  struct bg_accel_sk_state *st = bpf_sk_storage_get(&bg_accel_sk_state, sk, 0, 0);
  if (!st)
    return 0;
  struct bg_accel_sweep_rec rec = {};
  rec.key = st->key;
  rec.sk_flags = st->flags;
  bg_fill(&rec, sk);
  bpf_seq_write(ctx->meta->seq, &rec, sizeof(rec));
  return 0;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
