/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Socket acceleration's per-socket state (struct bg_accel_sk_state in
 * include/bpfgate/abi/accel.h), one map for both objects: sock_ops
 * (accel_sockops.bpf.c) writes it, the drain iterators (accel_sweep.bpf.c)
 * read it, their object reusing the sock_ops object's map by fd at load time.
 */
#ifndef BPFGATE_BPF_ACCEL_SK_STATE_H
#define BPFGATE_BPF_ACCEL_SK_STATE_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "bpfgate/abi/accel.h"

struct {
  __uint(type, BPF_MAP_TYPE_SK_STORAGE);
  __uint(map_flags, BPF_F_NO_PREALLOC);
  __type(key, int);
  __type(value, struct bg_accel_sk_state);
} bg_accel_sk_state SEC(".maps");

#endif /* BPFGATE_BPF_ACCEL_SK_STATE_H */
