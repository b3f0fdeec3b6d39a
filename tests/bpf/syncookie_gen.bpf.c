/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Answers what the host's kernel would put in its SYN-ACK: the SYN cookie of
 * a SYN frame (IPv4 or IPv6, untagged), through the kernel's own generator,
 * so that tests can build the ACK only a real client could send. */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/tcp.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

__s64 bg_cookie = -1; /* lower 32 bits: the cookie; negative: an error */

SEC("xdp")
int bg_syncookie_gen(struct xdp_md *ctx) {
  void *data = (void *)(long)ctx->data;
  void *data_end = (void *)(long)ctx->data_end;
  struct ethhdr *eth = data;
  if ((void *)(eth + 1) > data_end)
    return XDP_ABORTED;
  if (eth->h_proto == bpf_htons(ETH_P_IP)) {
    struct iphdr *iph = (void *)(eth + 1);
    struct tcphdr *th = (void *)(iph + 1);
    if ((void *)(th + 1) > data_end)
      return XDP_ABORTED;
    bg_cookie = bpf_tcp_raw_gen_syncookie_ipv4(iph, th, sizeof(*th));
  } else {
    struct ipv6hdr *ip6 = (void *)(eth + 1);
    struct tcphdr *th = (void *)(ip6 + 1);
    if ((void *)(th + 1) > data_end)
      return XDP_ABORTED;
    bg_cookie = bpf_tcp_raw_gen_syncookie_ipv6(ip6, th, sizeof(*th));
  }
  return XDP_DROP;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
