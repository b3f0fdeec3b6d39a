/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The oracle of the flood bench (bench/flood/run.sh): an XDP program that
 * drops exactly the flood. It passes what does not carry an IP source (ARP),
 * IPv4 from the clients' network and IPv6 from the clients' network or a
 * link-local address (neighbour discovery), and drops everything else: the
 * bench's floods come from other networks only. It keeps no state and looks at
 * nothing but the source, so it is what a filter that knew the flood in advance
 * would cost. The networks are the bench's (run.sh puts every client in them);
 * `ip link ... obj` loads the object with these values as they are.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

const volatile __u32 oracle_v4_net = 0xc6120000;            /* 198.18.0.0 */
const volatile __u32 oracle_v4_mask = 0xffffff00;           /* /24 */
const volatile __u64 oracle_v6_net = 0x20010db800000000ULL; /* 2001:db8::/64 */

SEC("xdp")
int flood_oracle(struct xdp_md *ctx) {
  void *data = (void *)(long)ctx->data;
  void *data_end = (void *)(long)ctx->data_end;
  struct ethhdr *eth = data;
  if ((void *)(eth + 1) > data_end)
    return XDP_DROP;
  if (eth->h_proto == bpf_htons(ETH_P_IP)) {
    struct iphdr *iph = (void *)(eth + 1);
    if ((void *)(iph + 1) > data_end)
      return XDP_DROP;
    return (bpf_ntohl(iph->saddr) & oracle_v4_mask) == oracle_v4_net ? XDP_PASS : XDP_DROP;
  }
  if (eth->h_proto == bpf_htons(ETH_P_IPV6)) {
    struct ipv6hdr *ip6 = (void *)(eth + 1);
    if ((void *)(ip6 + 1) > data_end)
      return XDP_DROP;
    __u64 net =
        ((__u64)bpf_ntohl(ip6->saddr.s6_addr32[0]) << 32) | bpf_ntohl(ip6->saddr.s6_addr32[1]);
    int link_local = (bpf_ntohl(ip6->saddr.s6_addr32[0]) >> 22) == (0xfe80 >> 6);
    return net == oracle_v6_net || link_local ? XDP_PASS : XDP_DROP;
  }
  return XDP_PASS;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
