/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The switch's port towards the gateway in the flood bench (bench/flood/run.sh):
 * it drops what the gateway sends to addresses outside the bench's own
 * networks, i.e. its answers to spoofed sources (bpfgate's SYN answers, sent
 * back with XDP_TX), as a real uplink would carry them off the host, and
 * passes the rest. Without it, each answer would cross the switch and the
 * generator's namespace on the gateway's own CPU (a veth delivers in the
 * sender's context), which no NIC makes the gateway pay. Being an XDP program,
 * it also gives the port the NAPI that a veth needs to take XDP_TX frames at
 * all. The networks are the bench's, as in oracle.bpf.c.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

const volatile __u32 uplink_v4_net = 0xc6120000;            /* 198.18.0.0 */
const volatile __u32 uplink_v4_mask = 0xffffff00;           /* /24 */
const volatile __u64 uplink_v6_net = 0x20010db800000000ULL; /* 2001:db8::/64 */

SEC("xdp")
int flood_uplink(struct xdp_md *ctx) {
  void *data = (void *)(long)ctx->data;
  void *data_end = (void *)(long)ctx->data_end;
  struct ethhdr *eth = data;
  if ((void *)(eth + 1) > data_end)
    return XDP_PASS;
  if (eth->h_proto == bpf_htons(ETH_P_IP)) {
    struct iphdr *iph = (void *)(eth + 1);
    if ((void *)(iph + 1) > data_end)
      return XDP_PASS;
    return (bpf_ntohl(iph->daddr) & uplink_v4_mask) == uplink_v4_net ? XDP_PASS : XDP_DROP;
  }
  if (eth->h_proto == bpf_htons(ETH_P_IPV6)) {
    struct ipv6hdr *ip6 = (void *)(eth + 1);
    if ((void *)(ip6 + 1) > data_end)
      return XDP_PASS;
    __u32 w0 = bpf_ntohl(ip6->daddr.s6_addr32[0]);
    __u64 net = ((__u64)w0 << 32) | bpf_ntohl(ip6->daddr.s6_addr32[1]);
    int local = (w0 >> 22) == (0xfe80 >> 6) || (w0 >> 24) == 0xff; /* link-local, multicast */
    return net == uplink_v6_net || local ? XDP_PASS : XDP_DROP;
  }
  return XDP_PASS;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
