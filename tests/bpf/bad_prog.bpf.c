/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* A program the verifier must refuse (it reads the packet without a bounds
 * check): tests that a refusal is reported with its reason and log tail. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

SEC("xdp")
int bg_bad_unchecked_read(struct xdp_md *ctx) {
  unsigned char *data = (unsigned char *)(long)ctx->data;
  return data[20] ? XDP_PASS : XDP_DROP;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
