/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Per-service latency probes on tc ingress and egress (include/bpfgate/abi/
 * observe.h). Ingress sees clients' segments to a service port, egress the
 * service's segments back:
 *   ingress SYN                    -> the flow remembers when
 *   ingress ACK after the SYN      -> handshake time
 *   ingress payload, flow idle     -> a request starts
 *   egress payload, request open   -> its response: latency, HTTP status class
 *   RST either way                 -> resets received / sent
 * The programs never change a packet and always return TC_ACT_UNSPEC: no
 * verdict, so the filters after ours on the hook (the tc datapath's, anyone's)
 * still run, and the packet passes when none decides.
 */
#ifndef BPFGATE_BPF_OBSERVE_H
#define BPFGATE_BPF_OBSERVE_H

#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>

#include "bpfgate/abi/observe.h"
#include "observe/observe_maps.h"
#include "lib/parse.h"

struct {
  __uint(type, BPF_MAP_TYPE_LRU_HASH);
  __uint(max_entries, BG_OBS_FLOWS_MAX);
  __type(key, struct bg_obs_flow_key);
  __type(value, struct bg_obs_flow);
} bg_obs_flows SEC(".maps");

#define BG_TCP_FIN 0x01
#define BG_TCP_SYN 0x02
#define BG_TCP_RST 0x04
#define BG_TCP_ACK 0x10

/* What the probes need of a TCP segment. */
struct bg_obs_segment {
  __u8 src[16];
  __u8 dst[16];
  __u16 sport; /* host order */
  __u16 dport;
  __u8 flags;
  __u8 _pad[3];
  __u32 payload_off; /* from the start of the frame */
  __u32 payload_len;
};

/* Ethernet, VLANs, IPv4 or IPv6 (no extension headers), TCP. 0 when the frame
 * is a TCP segment we can read. */
static __always_inline int bg_obs_parse(struct __sk_buff *skb, struct bg_obs_segment *seg) {
  void *data = (void *)(long)skb->data;
  void *data_end = (void *)(long)skb->data_end;
  struct bg_cursor c = {.pos = data, .end = data_end};
  struct bg_packet pkt = {};
  __be16 proto = 0;
  if (bg_parse_eth(&c, &pkt, &proto) < 0)
    return -1;
  __u32 ip_len = 0; /* IP payload length, from the IP header */
  if (proto == bpf_htons(ETH_P_IP)) {
    struct iphdr *iph = c.pos;
    if ((void *)(iph + 1) > c.end || iph->version != 4 || iph->ihl < 5 ||
        iph->protocol != IPPROTO_TCP || (bpf_ntohs(iph->frag_off) & BG_IP_OFFSET))
      return -1;
    __u32 hlen = iph->ihl * 4;
    __u32 tot = bpf_ntohs(iph->tot_len);
    ip_len = tot > hlen ? tot - hlen : 0; /* 0 also for a TSO super-packet's unset length */
    bg_map_v4(seg->src, iph->saddr);
    bg_map_v4(seg->dst, iph->daddr);
    if (!bg_cursor_take(&c, hlen))
      return -1;
  } else if (proto == bpf_htons(ETH_P_IPV6)) {
    struct ipv6hdr *ip6 = bg_cursor_take(&c, sizeof(*ip6));
    if (!ip6 || ip6->nexthdr != IPPROTO_TCP)
      return -1;
    ip_len = bpf_ntohs(ip6->payload_len);
    __builtin_memcpy(seg->src, &ip6->saddr, 16);
    __builtin_memcpy(seg->dst, &ip6->daddr, 16);
  } else {
    return -1;
  }
  struct tcphdr *th = c.pos;
  if ((void *)(th + 1) > c.end || th->doff < 5)
    return -1;
  __u32 thlen = th->doff * 4;
  __u32 off = (__u32)(c.pos - data) + thlen;
  seg->sport = bpf_ntohs(th->source);
  seg->dport = bpf_ntohs(th->dest);
  seg->flags = ((__u8 *)th)[13];
  seg->payload_off = off;
  __u32 from_skb = skb->len > off ? skb->len - off : 0;
  __u32 from_ip = ip_len > thlen ? ip_len - thlen : 0;
  /* The IP length leaves out Ethernet padding; a GSO packet may not set it. */
  seg->payload_len = ip_len ? from_ip : from_skb;
  return 0;
}

static __always_inline struct bg_obs_stats *bg_obs_stats_of(__u32 id) {
  return bpf_map_lookup_elem(&bg_obs_stats, &id);
}

/* HTTP/1.x status line: "HTTP/1.1 200 ..." -> its class. */
static __always_inline __u32 bg_obs_http_class(struct __sk_buff *skb, __u32 off) {
  __u8 b[10];
  if (bpf_skb_load_bytes(skb, off, b, sizeof(b)) < 0)
    return BG_HTTP_OTHER;
  if (b[0] != 'H' || b[1] != 'T' || b[2] != 'T' || b[3] != 'P' || b[4] != '/' || b[5] != '1' ||
      b[6] != '.' || b[8] != ' ' || b[9] < '1' || b[9] > '5')
    return BG_HTTP_OTHER;
  return b[9] - '1';
}

static __always_inline void bg_obs_key(struct bg_obs_flow_key *k, const __u8 client[16],
                                       const __u8 server[16], __u16 cport, __u16 sport) {
  __builtin_memcpy(k->client, client, 16);
  __builtin_memcpy(k->server, server, 16);
  k->client_port = cport;
  k->server_port = sport;
  k->_pad = 0;
}

/* A client's segment to a service. */
static __always_inline int bg_obs_ingress(struct __sk_buff *skb) {
  struct bg_obs_segment seg = {};
  if (bg_obs_parse(skb, &seg) < 0)
    return TC_ACT_UNSPEC;
  __u32 port = seg.dport;
  const struct bg_obs_service *svc = bpf_map_lookup_elem(&bg_obs_services, &port);
  if (!svc || !svc->id)
    return TC_ACT_UNSPEC;
  struct bg_obs_stats *st = bg_obs_stats_of(svc->id);
  if (!st)
    return TC_ACT_UNSPEC;
  struct bg_obs_flow_key k;
  bg_obs_key(&k, seg.src, seg.dst, seg.sport, seg.dport);
  if (seg.flags & BG_TCP_RST) {
    st->resets_rx++;
    bpf_map_delete_elem(&bg_obs_flows, &k);
    return TC_ACT_UNSPEC;
  }
  if ((seg.flags & BG_TCP_SYN) && !(seg.flags & BG_TCP_ACK)) {
    struct bg_obs_flow f = {.syn_ns = bpf_ktime_get_ns()};
    bpf_map_update_elem(&bg_obs_flows, &k, &f, BPF_ANY);
    return TC_ACT_UNSPEC;
  }
  struct bg_obs_flow *f = bpf_map_lookup_elem(&bg_obs_flows, &k);
  if (!f) {
    if (!seg.payload_len)
      return TC_ACT_UNSPEC;
    /* A connection older than the probes, or evicted: start tracking it. */
    struct bg_obs_flow nf = {};
    bpf_map_update_elem(&bg_obs_flows, &k, &nf, BPF_ANY);
    f = bpf_map_lookup_elem(&bg_obs_flows, &k);
    if (!f)
      return TC_ACT_UNSPEC;
  }
  /* The clock only when something is timed: most segments are not. */
  __u64 now = 0;
  if (f->syn_ns && (seg.flags & BG_TCP_ACK)) {
    now = bpf_ktime_get_ns();
    __u64 d = now - f->syn_ns;
    f->syn_ns = 0;
    st->handshakes++;
    st->handshake_sum_ns += d;
    st->handshake_hist[bg_obs_bucket(d) & (BG_OBS_HIST_BUCKETS - 1)]++;
  }
  if (seg.payload_len && !f->request_ns) {
    f->request_ns = now ? now : bpf_ktime_get_ns();
    st->requests++;
  }
  return TC_ACT_UNSPEC;
}

/* A service's segment to a client. */
static __always_inline int bg_obs_egress(struct __sk_buff *skb) {
  struct bg_obs_segment seg = {};
  if (bg_obs_parse(skb, &seg) < 0)
    return TC_ACT_UNSPEC;
  __u32 port = seg.sport;
  const struct bg_obs_service *svc = bpf_map_lookup_elem(&bg_obs_services, &port);
  if (!svc || !svc->id)
    return TC_ACT_UNSPEC;
  struct bg_obs_stats *st = bg_obs_stats_of(svc->id);
  if (!st)
    return TC_ACT_UNSPEC;
  struct bg_obs_flow_key k;
  bg_obs_key(&k, seg.dst, seg.src, seg.dport, seg.sport);
  if (seg.flags & BG_TCP_RST) {
    st->resets_tx++;
    bpf_map_delete_elem(&bg_obs_flows, &k);
    return TC_ACT_UNSPEC;
  }
  if (!seg.payload_len)
    return TC_ACT_UNSPEC;
  struct bg_obs_flow *f = bpf_map_lookup_elem(&bg_obs_flows, &k);
  if (!f || !f->request_ns)
    return TC_ACT_UNSPEC; /* more of a response already counted, or a server that speaks first */
  __u64 d = bpf_ktime_get_ns() - f->request_ns;
  f->request_ns = 0;
  st->responses++;
  st->latency_sum_ns += d;
  st->latency_hist[bg_obs_bucket(d) & (BG_OBS_HIST_BUCKETS - 1)]++;
  if (svc->flags & BG_OBS_HTTP) {
    __u32 cls = bg_obs_http_class(skb, seg.payload_off);
    barrier_var(cls); /* keep the bound below: the compiler knows it, the verifier not */
    if (cls < BG_HTTP_NR)
      st->status[cls]++;
  }
  return TC_ACT_UNSPEC;
}

#endif /* BPFGATE_BPF_OBSERVE_H */
