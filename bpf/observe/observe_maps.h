/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The service maps every observe object shares (the tc probes and the TCP
 * tracing probes): the control plane loads the tc object first and hands its
 * maps to the others with bpf_map__reuse_fd(). Includes nothing that clashes
 * with vmlinux.h, so tracing programs can use it too.
 */
#ifndef BPFGATE_BPF_OBSERVE_MAPS_H
#define BPFGATE_BPF_OBSERVE_MAPS_H

#include <bpf/bpf_helpers.h>

#include "bpfgate/abi/observe.h"

struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, 65536); /* TCP port, host order */
  __type(key, __u32);
  __type(value, struct bg_obs_service);
} bg_obs_services SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, BG_OBS_SERVICES_MAX);
  __type(key, __u32);
  __type(value, struct bg_obs_service_info);
} bg_obs_info SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __uint(max_entries, BG_OBS_SERVICES_MAX);
  __type(key, __u32);
  __type(value, struct bg_obs_stats);
} bg_obs_stats SEC(".maps");

/* The stats of the service on local TCP port `port`, or NULL. */
static __always_inline struct bg_obs_stats *bg_obs_service_stats(__u32 port) {
  const struct bg_obs_service *svc = bpf_map_lookup_elem(&bg_obs_services, &port);
  if (!svc || !svc->id)
    return 0;
  __u32 id = svc->id;
  return bpf_map_lookup_elem(&bg_obs_stats, &id);
}

#endif /* BPFGATE_BPF_OBSERVE_MAPS_H */
