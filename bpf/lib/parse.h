/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Bounded, verifier-friendly packet parsing for XDP and tc. Every read goes
 * through a cursor checked against the end of the packet; nothing is read
 * that was not proven to be inside it.
 */
#ifndef BPFGATE_BPF_PARSE_H
#define BPFGATE_BPF_PARSE_H

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/tcp.h>
#include <linux/udp.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "bpfgate/abi/parse.h" /* struct bg_packet, enum bg_parse_status */

#define BG_VLAN_MAX_DEPTH 2
#define BG_IPV6_EXT_MAX 6
#define BG_IP_MF 0x2000
#define BG_IP_OFFSET 0x1fff

/* 802.1Q / 802.1ad tag, as on the wire after the outer ethertype. */
struct bg_vlan_hdr {
  __be16 tci;
  __be16 encap_proto;
};

/* Generic IPv6 extension header prefix (hop-by-hop, routing, dest opts). */
struct bg_ipv6_opt_hdr {
  __u8 nexthdr;
  __u8 hdrlen;
};

struct bg_ipv6_frag_hdr {
  __u8 nexthdr;
  __u8 reserved;
  __be16 frag_off;
  __be32 identification;
};

struct bg_cursor {
  void *pos;
  void *end;
  void *start; /* the frame's first byte, where offsets are wanted (bg_parse) */
};

static __always_inline void *bg_cursor_take(struct bg_cursor *c, __u32 len) {
  void *p = c->pos;
  if (p + len > c->end)
    return NULL;
  c->pos = p + len;
  return p;
}

static __always_inline void bg_map_v4(__u8 out[16], __be32 addr) {
  __builtin_memset(out, 0, 10);
  out[10] = 0xff;
  out[11] = 0xff;
  __builtin_memcpy(out + 12, &addr, 4);
}

static __always_inline int bg_is_vlan(__be16 proto) {
  return proto == bpf_htons(ETH_P_8021Q) || proto == bpf_htons(ETH_P_8021AD);
}

/* Ethernet and up to BG_VLAN_MAX_DEPTH tags. Stores the inner ethertype
 * (network order) in *proto; returns -1 on a truncated header. */
static __always_inline int bg_parse_eth(struct bg_cursor *c, struct bg_packet *pkt,
                                        __be16 *proto_out) {
  struct ethhdr *eth = bg_cursor_take(c, sizeof(*eth));
  if (!eth)
    return -1;
  __be16 proto = eth->h_proto;
#pragma unroll
  for (int i = 0; i < BG_VLAN_MAX_DEPTH; i++) {
    if (!bg_is_vlan(proto))
      break;
    struct bg_vlan_hdr *vh = bg_cursor_take(c, sizeof(*vh));
    if (!vh)
      return -1;
    proto = vh->encap_proto;
    pkt->vlan_id = bpf_ntohs(vh->tci) & 0x0fff;
    pkt->vlan_depth++;
  }
  *proto_out = proto;
  return 0;
}

static __always_inline int bg_parse_l4(struct bg_cursor *c, struct bg_packet *pkt) {
  switch (pkt->l4_proto) {
    case IPPROTO_TCP: {
      struct tcphdr *th = bg_cursor_take(c, sizeof(*th));
      if (!th || th->doff < 5)
        return BG_PARSE_BAD_L4;
      pkt->tcp_flags = ((__u8 *)th)[13];
      pkt->l4_off = (__u16)((long)th - (long)c->start);
      pkt->sport = th->source;
      pkt->dport = th->dest;
      pkt->has_l4 = 1;
      return BG_PARSE_OK;
    }
    case IPPROTO_UDP: {
      struct udphdr *uh = bg_cursor_take(c, sizeof(*uh));
      if (!uh)
        return BG_PARSE_BAD_L4;
      pkt->l4_off = (__u16)((long)uh - (long)c->start);
      pkt->sport = uh->source;
      pkt->dport = uh->dest;
      pkt->has_l4 = 1;
      return BG_PARSE_OK;
    }
    case IPPROTO_ICMP:
    case IPPROTO_ICMPV6: {
      /* type and code stand where ports would; first 4 bytes are common. */
      __u8 *ih = bg_cursor_take(c, 4);
      if (!ih)
        return BG_PARSE_BAD_L4;
      pkt->l4_off = (__u16)((long)ih - (long)c->start);
      pkt->sport = 0;
      pkt->dport = bpf_htons(((__u16)ih[0] << 8) | ih[1]);
      pkt->has_l4 = 1;
      return BG_PARSE_OK;
    }
    default:
      return BG_PARSE_OK;
  }
}

static __always_inline int bg_parse_ipv4(struct bg_cursor *c, struct bg_packet *pkt) {
  struct iphdr *iph = c->pos;
  if ((void *)(iph + 1) > c->end)
    return BG_PARSE_BAD_L3;
  if (iph->version != 4 || iph->ihl < 5)
    return BG_PARSE_BAD_L3;
  __u32 hlen = iph->ihl * 4;
  if (bpf_ntohs(iph->tot_len) < hlen)
    return BG_PARSE_BAD_L3;
  if (!bg_cursor_take(c, hlen))
    return BG_PARSE_BAD_L3; /* options cut short */
  pkt->l3_proto = ETH_P_IP;
  bg_map_v4(pkt->src, iph->saddr);
  bg_map_v4(pkt->dst, iph->daddr);
  pkt->l4_proto = iph->protocol;
  __u16 frag = bpf_ntohs(iph->frag_off);
  if (frag & (BG_IP_MF | BG_IP_OFFSET))
    pkt->fragment = 1;
  if (frag & BG_IP_OFFSET)
    return BG_PARSE_OK; /* later fragment: no L4 header */
  return bg_parse_l4(c, pkt);
}

static __always_inline int bg_parse_ipv6(struct bg_cursor *c, struct bg_packet *pkt) {
  struct ipv6hdr *ip6 = bg_cursor_take(c, sizeof(*ip6));
  if (!ip6 || ip6->version != 6)
    return BG_PARSE_BAD_L3;
  pkt->l3_proto = ETH_P_IPV6;
  __builtin_memcpy(pkt->src, &ip6->saddr, 16);
  __builtin_memcpy(pkt->dst, &ip6->daddr, 16);
  __u8 next = ip6->nexthdr;
#pragma unroll
  for (int i = 0; i < BG_IPV6_EXT_MAX; i++) {
    switch (next) {
      case IPPROTO_HOPOPTS:
      case IPPROTO_ROUTING:
      case IPPROTO_DSTOPTS: {
        struct bg_ipv6_opt_hdr *oh = c->pos;
        if ((void *)(oh + 1) > c->end)
          return BG_PARSE_BAD_L4;
        if (!bg_cursor_take(c, ((__u32)oh->hdrlen + 1) * 8))
          return BG_PARSE_BAD_L4;
        next = oh->nexthdr;
        break;
      }
      case IPPROTO_AH: {
        struct bg_ipv6_opt_hdr *oh = c->pos;
        if ((void *)(oh + 1) > c->end)
          return BG_PARSE_BAD_L4;
        if (!bg_cursor_take(c, ((__u32)oh->hdrlen + 2) * 4))
          return BG_PARSE_BAD_L4;
        next = oh->nexthdr;
        break;
      }
      case IPPROTO_FRAGMENT: {
        struct bg_ipv6_frag_hdr *fh = bg_cursor_take(c, sizeof(*fh));
        if (!fh)
          return BG_PARSE_BAD_L4;
        pkt->fragment = 1;
        next = fh->nexthdr;
        if (bpf_ntohs(fh->frag_off) & ~7) { /* later fragment: no L4 header */
          pkt->l4_proto = next;
          return BG_PARSE_OK;
        }
        break;
      }
      default:
        pkt->l4_proto = next;
        return bg_parse_l4(c, pkt);
    }
  }
  /* More extension headers than we walk: source is known, transport is not. */
  return BG_PARSE_BAD_L4;
}

/* Parses a frame from data to data_end into pkt (which must be zeroed). */
static __always_inline int bg_parse(void *data, void *data_end, struct bg_packet *pkt) {
  struct bg_cursor c = {.pos = data, .end = data_end, .start = data};
  __be16 proto = 0;
  if (bg_parse_eth(&c, pkt, &proto) < 0)
    return BG_PARSE_BAD_L2;
  pkt->l3_off = (__u16)((long)c.pos - (long)data);
  if (proto == bpf_htons(ETH_P_IP))
    return bg_parse_ipv4(&c, pkt);
  if (proto == bpf_htons(ETH_P_IPV6))
    return bg_parse_ipv6(&c, pkt);
  if (bg_is_vlan(proto))
    return BG_PARSE_BAD_L2; /* deeper than we walk */
  return BG_PARSE_NOT_IP;
}

#endif /* BPFGATE_BPF_PARSE_H */
