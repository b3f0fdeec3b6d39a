/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Test only: runs the datapath's parser (bg_parse) on a frame and keeps what
 * it made of it in a one-entry array, for the differential parser tests
 * (tests/bpf/parse_diff_test.cpp, tests/fuzz/packet_fuzz.cpp). */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "bpfgate/abi/parse.h"
#include "lib/parse.h"

struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, 1);
  __type(key, __u32);
  __type(value, struct bg_parse_probe_out);
} bg_parse_out SEC(".maps");

SEC("xdp")
int bg_parse_probe(struct xdp_md *ctx) {
  void *data = (void *)(long)ctx->data;
  void *data_end = (void *)(long)ctx->data_end;
  __u32 zero = 0;
  struct bg_parse_probe_out *out = bpf_map_lookup_elem(&bg_parse_out, &zero);
  if (!out)
    return XDP_ABORTED;
  struct bg_packet pkt = {};
  int status = bg_parse(data, data_end, &pkt);
  out->status = status;
  out->runs++;
  out->pkt = pkt;
  return XDP_PASS;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
