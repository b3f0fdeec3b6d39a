/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * bpfgate XDP load balancer: DNAT to the backend a Maglev ring chose, routed
 * by the FIB (include/bpfgate/abi/lb.h says what each map holds).
 *
 *   hot slot of the flow on this CPU still good? (bg_lb_hot) -> rewrite, send
 *   parse -> to a service?  (bg_lb_vips)     -> place the flow (bg_lb_conns,
 *                                               the ring) -> backend's address
 *         -> else a reply?  (bg_lb_reverse)  -> the VIP's address as source
 *         -> ICMP error about a flow          -> its backend, inner packet too
 *         -> rewrite (checksums fixed up, TTL - 1) -> the route the flow's
 *            entry kept (a second at most), else bpf_fib_lookup (a success
 *            kept there) -> XDP_TX / redirect / the stack
 *
 * Each frame is counted once by its outcome (NOT_SERVICE, FORWARDED,
 * REPLIED, TO_STACK, NO_BACKEND, FRAGMENT, TTL, UNROUTABLE); NEW_FLOW, ICMP
 * and CONNS_FULL count events on top. Frames that are not the balancer's pass
 * untouched. A frame with VLAN tags is rewritten and passed to the stack,
 * which forwards it through its VLAN device (the FIB speaks of that device,
 * not of the one XDP runs on).
 *
 * Stages are global functions, verified once each (as in bpf/xdp/filter.h);
 * they share their state through struct bg_lb_work on the entry's stack. The
 * hot slot (stage 0) runs first, on the frame itself: an established flow's
 * frame that its slot serves never builds that state (abi/lb.h, struct
 * bg_lb_hot, says what the slot must still agree with).
 */
#include "lb/lb.h"

/* Stage 1: parse; the TTL and, for TCP, the payload's length. */
__noinline int bg_lb_parse(struct xdp_md *ctx, struct bg_lb_work *w) {
  if (!w)
    return 0;
  void *data = (void *)(long)ctx->data;
  void *data_end = (void *)(long)ctx->data_end;
  w->len = data_end - data;
  w->status = bg_parse(data, data_end, &w->pkt);
  if (w->status != BG_PARSE_OK)
    return 0;
  __u32 l3 = w->pkt.l3_off;
  if (l3 > BG_LB_L3_MAX)
    return 0;
  __u32 ip_end;
  if (bg_is_v4(w)) {
    struct iphdr *iph = data + l3;
    if ((void *)(iph + 1) > data_end)
      return 0;
    w->ttl = iph->ttl;
    ip_end = l3 + bpf_ntohs(iph->tot_len);
  } else {
    struct ipv6hdr *ip6 = data + l3;
    if ((void *)(ip6 + 1) > data_end)
      return 0;
    w->ttl = ip6->hop_limit;
    ip_end = l3 + sizeof(*ip6) + bpf_ntohs(ip6->payload_len);
  }
  __u32 l4 = w->pkt.l4_off;
  if (w->pkt.l4_proto != IPPROTO_TCP || !w->pkt.has_l4 || l4 > BG_LB_L4_MAX)
    return 0;
  struct tcphdr *th = data + l4;
  if ((void *)(th + 1) > data_end)
    return 0;
  __u32 end = l4 + th->doff * 4;
  if (ip_end > end)
    w->payload = ip_end - end;
  return 0;
}

/* Stage 1b: an ICMP error's inner packet (the first bytes of what the
 * refused frame was): its addresses, ports and where its headers start.
 * w->in_proto stays 0 unless it is a TCP or UDP packet with its ports. */
__noinline int bg_lb_parse_icmp(struct xdp_md *ctx, struct bg_lb_work *w) {
  if (!w || w->status != BG_PARSE_OK || !w->pkt.has_l4 || w->pkt.fragment)
    return 0;
  void *data = (void *)(long)ctx->data;
  void *data_end = (void *)(long)ctx->data_end;
  __u32 l4 = w->pkt.l4_off;
  if (l4 > BG_LB_L4_MAX)
    return 0;
  __u8 *ih = data + l4;
  if ((void *)(ih + 8) > data_end)
    return 0;
  __u8 type = ih[0];
  __u32 in_l3 = l4 + 8, in_l4;
  if (bg_is_v4(w)) {
    if (w->pkt.l4_proto != IPPROTO_ICMP || (type != 3 && type != 11))
      return 0; /* destination unreachable, time exceeded */
    struct iphdr *in = data + in_l3;
    if ((void *)(in + 1) > data_end || in->version != 4 || in->ihl < 5)
      return 0;
    if (bpf_ntohs(in->frag_off) & BG_IP_OFFSET)
      return 0; /* a later fragment's: no ports */
    w->in_proto = in->protocol;
    bg_map_v4(w->in_src, in->saddr);
    bg_map_v4(w->in_dst, in->daddr);
    in_l4 = in_l3 + in->ihl * 4;
  } else {
    if (w->pkt.l4_proto != IPPROTO_ICMPV6 || type < 1 || type > 3)
      return 0; /* destination unreachable, packet too big, time exceeded */
    struct ipv6hdr *in = data + in_l3;
    if ((void *)(in + 1) > data_end || in->version != 6)
      return 0;
    w->in_proto = in->nexthdr; /* no extension headers walked here */
    __builtin_memcpy(w->in_src, &in->saddr, 16);
    __builtin_memcpy(w->in_dst, &in->daddr, 16);
    in_l4 = in_l3 + sizeof(*in);
  }
  __be16 *ports = data + in_l4;
  if (in_l4 > BG_LB_L4_MAX + 128 || (void *)(ports + 2) > data_end ||
      (w->in_proto != IPPROTO_TCP && w->in_proto != IPPROTO_UDP)) {
    w->in_proto = 0;
    return 0;
  }
  w->in_sport = ports[0];
  w->in_dport = ports[1];
  w->in_l3 = in_l3;
  w->in_l4 = in_l4;
  return 0;
}

static __always_inline int bg_is_syn(const struct bg_lb_work *w) {
  return w->pkt.l4_proto == IPPROTO_TCP &&
         (w->pkt.tcp_flags & (BG_TCP_SYN | BG_TCP_ACK)) == BG_TCP_SYN;
}

/* Whether a connection entry still holds its flow: its backend is configured
 * for this service and up (draining is fine), and it was not idle too long. */
static __always_inline int bg_conn_live(const struct bg_lb_conn *c, __u32 service,
                                        const struct bg_lb_ctl *ctl, __u64 now) {
  __u32 id = c->backend;
  const struct bg_lb_backend *b = bpf_map_lookup_elem(&bg_lb_backends, &id);
  if (!id || !b || !(b->flags & BG_LB_BACKEND_USED) || (b->flags & BG_LB_BACKEND_DOWN) ||
      b->service != service)
    return 0;
  /* now is the coarse clock, behind the fine one that stamped a new entry. */
  return !ctl->conn_idle_ns || (__s64)(now - c->last_ns) <= (__s64)ctl->conn_idle_ns;
}

/* A new flow: its backend from the service's ring, and its entries in both
 * connection tables (a table that refuses one is counted; the frame still
 * goes to the backend). Returns the backend's id, 0 if none. */
static __always_inline __u32 bg_place(struct bg_lb_work *w, const struct bg_lb_conn_key *key,
                                      const struct bg_lb_service *svc,
                                      const struct bg_lb_ctl *ctl) {
  __u32 size = ctl->ring_size;
  if (!size || (svc->flags & BG_LB_SVC_NO_BACKEND))
    return 0;
  __u32 idx = svc->slot * size + bg_lb_hash(key) % size;
  __u32 *slot = bpf_map_lookup_elem(&bg_lb_ring, &idx);
  __u32 id = slot ? *slot : 0;
  const struct bg_lb_backend *b = id ? bpf_map_lookup_elem(&bg_lb_backends, &id) : NULL;
  if (!b || !(b->flags & BG_LB_BACKEND_USED))
    return 0;
  __u64 now = bpf_ktime_get_ns(); /* the fine clock: the delays measured start here */
  struct bg_lb_conn c = {.backend = id, .last_ns = now, .opened_ns = now};
  if (bg_is_syn(w))
    c.flags = BG_LB_CONN_SYN;
  if (w->payload) {
    c.flags |= BG_LB_CONN_REQUEST;
    c.request_ns = now;
  }
  struct bg_lb_rev_key rk = {
      .bport = b->port ? b->port : key->vport, .cport = key->cport, .proto = key->proto};
  __builtin_memcpy(rk.backend, b->addr, 16);
  __builtin_memcpy(rk.client, key->client, 16);
  struct bg_lb_rev rev = {.vport = key->vport, .backend = id};
  __builtin_memcpy(rev.vip, key->vip, 16);
  long failed = bpf_map_update_elem(&bg_lb_conns, key, &c, BPF_ANY);
  failed |= bpf_map_update_elem(&bg_lb_reverse, &rk, &rev, BPF_ANY);
  if (failed)
    bg_lb_count(BG_LB_CONNS_FULL, w->len);
  bg_lb_count(BG_LB_NEW_FLOW, w->len);
  struct bg_lb_backend_stats *st = bg_lb_stats_of(id);
  if (st)
    st->new_flows++;
  return id;
}

/* Stage 2: a frame to a service goes to its flow's backend (kept while the
 * flow lives; a SYN, or a flow whose entry is gone, idle or on a backend
 * that is down, is placed by the ring). */
__noinline int bg_lb_request(struct bg_lb_work *w) {
  if (!w)
    return BG_LB_NOT_VIP;
  __u32 zero = 0;
  const struct bg_lb_ctl *ctl = bpf_map_lookup_elem(&bg_lb_ctl, &zero);
  if (!ctl)
    return BG_LB_NOT_VIP;
  struct bg_lb_vip_key vk = {
      .port = w->pkt.has_l4 ? w->pkt.dport : 0, .proto = w->pkt.l4_proto, .gen = ctl->active & 1};
  __builtin_memcpy(vk.addr, w->pkt.dst, 16);
  const struct bg_lb_service *svc = bpf_map_lookup_elem(&bg_lb_vips, &vk);
  if (!svc)
    return BG_LB_NOT_VIP;
  w->active = ctl->active & 1;
  w->moved = *(volatile __u32 *)&bg_lb_moved; /* before the entry: see struct bg_lb_hot */
  /* A later fragment has no ports: an entry of port 0 marks its address. */
  if (w->pkt.fragment)
    return BG_LB_RES(XDP_DROP, BG_LB_FRAGMENT);
  if (w->ttl <= 1)
    return BG_LB_RES(XDP_PASS, BG_LB_TTL);
  w->now = bpf_ktime_get_coarse_ns();
  w->kind = BG_LB_KIND_REQUEST;
  struct bg_lb_conn_key key = {
      .cport = w->pkt.sport, .vport = w->pkt.dport, .proto = w->pkt.l4_proto};
  __builtin_memcpy(key.client, w->pkt.src, 16);
  __builtin_memcpy(key.vip, w->pkt.dst, 16);
  struct bg_lb_conn *c = bpf_map_lookup_elem(&bg_lb_conns, &key);
  __u32 id;
  if (c && !bg_is_syn(w) && bg_conn_live(c, svc->id, ctl, w->now)) {
    id = c->backend;
    c->last_ns = w->now;
    w->route = c->route;
    if (w->payload && !(c->flags & BG_LB_CONN_REQUEST)) {
      c->request_ns = bpf_ktime_get_ns();
      __sync_fetch_and_or(&c->flags, BG_LB_CONN_REQUEST);
    }
    w->hot = BG_LB_HOT_FILL | ((c->flags & BG_LB_CONN_REQUEST) ? 0 : BG_LB_HOT_PAYLOAD_SLOW);
  } else {
    __u32 was = c ? c->backend : 0;
    id = bg_place(w, &key, svc, ctl);
    if (!id)
      return BG_LB_RES(XDP_DROP, BG_LB_NO_BACKEND);
    if (was && was != id) /* hot slots of the flow, on any CPU, are stale */
      __sync_fetch_and_add(&bg_lb_moved, 1);
  }
  w->cached = BG_LB_KIND_REQUEST;
  const struct bg_lb_backend *b = bpf_map_lookup_elem(&bg_lb_backends, &id);
  if (!b)
    return BG_LB_RES(XDP_DROP, BG_LB_NO_BACKEND);
  __builtin_memcpy(w->addr, b->addr, 16);
  w->port = b->port;
  w->backend = id;
  struct bg_lb_backend_stats *st = bg_lb_stats_of(id);
  if (st) {
    st->packets++;
    st->bytes += w->len;
  }
  return BG_LB_GO;
}

/* What a backend's TCP reply tells of its flow: the SYN-ACK's delay, the
 * first response's, a reset. */
static __always_inline void bg_measure(const struct bg_lb_work *w, struct bg_lb_conn *c,
                                       struct bg_lb_backend_stats *st) {
  __u8 f = w->pkt.tcp_flags;
  if (st && (f & BG_TCP_RST))
    st->resets++;
  if (!c)
    return;
  if (!(c->flags & BG_LB_CONN_ANSWERED)) {
    __u32 old = __sync_fetch_and_or(&c->flags, BG_LB_CONN_ANSWERED);
    if (st && !(old & BG_LB_CONN_ANSWERED) && (old & BG_LB_CONN_SYN) &&
        (f & (BG_TCP_SYN | BG_TCP_ACK | BG_TCP_RST)) == (BG_TCP_SYN | BG_TCP_ACK)) {
      st->connect_ns += bpf_ktime_get_ns() - c->opened_ns;
      st->connects++;
    }
  }
  if (w->payload &&
      (c->flags & (BG_LB_CONN_REQUEST | BG_LB_CONN_RESPONDED)) == BG_LB_CONN_REQUEST) {
    __u32 old = __sync_fetch_and_or(&c->flags, BG_LB_CONN_RESPONDED);
    if (st && !(old & BG_LB_CONN_RESPONDED)) {
      st->response_ns += bpf_ktime_get_ns() - c->request_ns;
      st->responses++;
    }
  }
}

/* Stage 3: a backend's reply to a client gets the VIP back as its source. */
__noinline int bg_lb_reply(struct bg_lb_work *w) {
  if (!w || !w->pkt.has_l4)
    return BG_LB_RES(XDP_PASS, BG_LB_NOT_SERVICE);
  struct bg_lb_rev_key rk = {
      .bport = w->pkt.sport, .cport = w->pkt.dport, .proto = w->pkt.l4_proto};
  __builtin_memcpy(rk.backend, w->pkt.src, 16);
  __builtin_memcpy(rk.client, w->pkt.dst, 16);
  const struct bg_lb_rev *rev = bpf_map_lookup_elem(&bg_lb_reverse, &rk);
  if (!rev)
    return BG_LB_RES(XDP_PASS, BG_LB_NOT_SERVICE);
  if (w->pkt.fragment) /* its later fragments could not be given the VIP */
    return BG_LB_RES(XDP_DROP, BG_LB_FRAGMENT);
  if (w->ttl <= 1)
    return BG_LB_RES(XDP_PASS, BG_LB_TTL);
  __u32 zero = 0;
  const struct bg_lb_ctl *ctl = bpf_map_lookup_elem(&bg_lb_ctl, &zero);
  w->active = ctl ? ctl->active & 1 : 0;
  w->moved = *(volatile __u32 *)&bg_lb_moved;
  w->now = bpf_ktime_get_coarse_ns();
  w->kind = BG_LB_KIND_REPLY;
  w->cached = BG_LB_KIND_REPLY;
  w->route = rev->route;
  __builtin_memcpy(w->addr, rev->vip, 16);
  w->port = rev->vport;
  __u32 id = rev->backend;
  w->backend = id;
  struct bg_lb_conn_key key = {
      .cport = w->pkt.dport, .vport = rev->vport, .proto = w->pkt.l4_proto};
  __builtin_memcpy(key.client, w->pkt.dst, 16);
  __builtin_memcpy(key.vip, rev->vip, 16);
  struct bg_lb_conn *c = bpf_map_lookup_elem(&bg_lb_conns, &key);
  if (c && c->backend != id)
    c = NULL; /* the flow went to another backend since */
  if (c)
    c->last_ns = w->now;
  struct bg_lb_backend_stats *st = bg_lb_stats_of(id);
  if (st) {
    st->rx_packets++;
    st->rx_bytes += w->len;
  }
  if (w->pkt.l4_proto == IPPROTO_TCP)
    bg_measure(w, c, st);
  w->hot =
      BG_LB_HOT_FILL | ((!c || (c->flags & BG_LB_CONN_RESPONDED)) ? 0 : BG_LB_HOT_PAYLOAD_SLOW);
  return BG_LB_GO;
}

/* Stage 4: an ICMP error sent to a VIP about a packet of VIP:port ->
 * client:cport (the client's side refused or could not take a reply) goes
 * to the backend that sent that reply. */
__noinline int bg_lb_icmp(struct bg_lb_work *w) {
  if (!w || !w->in_proto)
    return BG_LB_RES(XDP_PASS, BG_LB_NOT_SERVICE);
  if (!bg_addr_eq(w->in_src, w->pkt.dst))
    return BG_LB_RES(XDP_PASS, BG_LB_NOT_SERVICE); /* not about a packet from this VIP */
  struct bg_lb_conn_key key = {.cport = w->in_dport, .vport = w->in_sport, .proto = w->in_proto};
  __builtin_memcpy(key.client, w->in_dst, 16);
  __builtin_memcpy(key.vip, w->in_src, 16);
  const struct bg_lb_conn *c = bpf_map_lookup_elem(&bg_lb_conns, &key);
  if (!c)
    return BG_LB_RES(XDP_PASS, BG_LB_NOT_SERVICE);
  __u32 id = c->backend;
  const struct bg_lb_backend *b = bpf_map_lookup_elem(&bg_lb_backends, &id);
  if (!b || !(b->flags & BG_LB_BACKEND_USED))
    return BG_LB_RES(XDP_PASS, BG_LB_NOT_SERVICE);
  if (w->ttl <= 1)
    return BG_LB_RES(XDP_PASS, BG_LB_TTL);
  w->kind = BG_LB_KIND_ICMP;
  __builtin_memcpy(w->addr, b->addr, 16);
  w->port = b->port;
  w->backend = id;
  bg_lb_count(BG_LB_ICMP, w->len);
  return BG_LB_GO;
}

/* The transport checksum field of the frame, NULL if out of the frame. */
static __always_inline __u16 *bg_l4_csum(void *data, void *data_end, __u32 l4, __u8 proto) {
  if (proto == IPPROTO_TCP) {
    struct tcphdr *th = data + l4;
    return (void *)(th + 1) > data_end ? NULL : &th->check;
  }
  if (proto == IPPROTO_UDP) {
    struct udphdr *uh = data + l4;
    return (void *)(uh + 1) > data_end ? NULL : &uh->check;
  }
  __u16 *ih = data + l4; /* ICMP, ICMPv6: type, code, checksum */
  return (void *)(ih + 2) > data_end ? NULL : ih + 1;
}

/* Writes addr (16 bytes, an IPv4 one v4-mapped) into the IP header at ip as
 * its destination, or its source when `src`, and port (0: left as it is) at
 * port_at; the TTL or hop limit one less; the IPv4 header's checksum and the
 * transport's (*csum; over IPv4 an ICMP checksum covers no pseudo header, a
 * UDP one of 0 means none) fixed up. The caller proved every bound. */
static __always_inline void bg_lb_write(void *ip, int v4, int src, __u8 proto, const __u8 *addr,
                                        __be16 port, __be16 *port_at, __u16 *csum) {
  __u32 l4d = 0; /* what changes in the transport checksum */
  if (v4) {
    struct iphdr *iph = ip;
    __be32 *a = src ? &iph->saddr : &iph->daddr;
    __u32 ipd = bg_csum_diff(a, addr + 12, 2, 0);
    if (proto != IPPROTO_ICMP)
      l4d = ipd;                     /* the pseudo header */
    __u16 old = *(__u16 *)&iph->ttl; /* TTL and protocol */
    iph->ttl--;
    ipd = bg_csum_diff(&old, &iph->ttl, 1, ipd);
    __builtin_memcpy(a, addr + 12, 4);
    iph->check = bg_csum_update(iph->check, ipd);
  } else {
    struct ipv6hdr *ip6 = ip;
    struct in6_addr *a = src ? &ip6->saddr : &ip6->daddr;
    l4d = bg_csum_diff(a, addr, 8, 0);
    ip6->hop_limit--;
    __builtin_memcpy(a, addr, 16);
  }
  if (port) {
    l4d = bg_csum_diff(port_at, &port, 1, l4d);
    *port_at = port;
  }
  if (proto == IPPROTO_UDP && !*csum && v4)
    return; /* no checksum */
  *csum = proto == IPPROTO_UDP ? bg_udp_csum_update(*csum, l4d) : bg_csum_update(*csum, l4d);
}

/* Stage 5: the outer headers: w->addr as destination (source for a reply)
 * and w->port as the transport's, TTL or hop limit one less, checksums fixed
 * up. Writes nothing unless it can write everything; returns 0 on success. */
__noinline int bg_lb_rewrite(struct xdp_md *ctx, struct bg_lb_work *w) {
  if (!w)
    return -1;
  void *data = (void *)(long)ctx->data;
  void *data_end = (void *)(long)ctx->data_end;
  __u32 l3 = w->pkt.l3_off, l4 = w->pkt.l4_off;
  if (l3 > BG_LB_L3_MAX || l4 > BG_LB_L4_MAX)
    return -1;
  __u8 proto = w->pkt.l4_proto;
  int src = w->kind == BG_LB_KIND_REPLY;
  __u16 *csum = bg_l4_csum(data, data_end, l4, proto);
  if (!csum)
    return -1;
  __be16 *port = data + l4 + (src ? 0 : 2);
  if ((void *)(port + 1) > data_end)
    return -1;
  /* One call per family, each with its header's bounds (6.1's verifier
   * does not tie a family flag to the bounds proven for it). */
  __be16 to = w->kind == BG_LB_KIND_ICMP ? 0 : w->port;
  if (bg_is_v4(w)) {
    struct iphdr *iph = data + l3;
    if ((void *)(iph + 1) > data_end)
      return -1;
    bg_lb_write(iph, 1, src, proto, w->addr, to, port, csum);
  } else {
    struct ipv6hdr *ip6 = data + l3;
    if ((void *)(ip6 + 1) > data_end)
      return -1;
    bg_lb_write(ip6, 0, src, proto, w->addr, to, port, csum);
  }
  return 0;
}

/* Stage 5b: an ICMP error's inner packet was the VIP's reply: it becomes the
 * backend's own (source address and port), its IP and transport checksums
 * fixed up where present, and the ICMP checksum with them. */
__noinline int bg_lb_rewrite_inner(struct xdp_md *ctx, struct bg_lb_work *w) {
  if (!w)
    return -1;
  void *data = (void *)(long)ctx->data;
  void *data_end = (void *)(long)ctx->data_end;
  __u32 l4 = w->pkt.l4_off, in_l3 = w->in_l3, in_l4 = w->in_l4;
  if (l4 > BG_LB_L4_MAX || in_l3 > BG_LB_L4_MAX + 8 || in_l4 > BG_LB_L4_MAX + 128)
    return -1;
  __u16 *icsum = bg_l4_csum(data, data_end, l4, w->pkt.l4_proto);
  __be16 *ports = data + in_l4;
  if (!icsum || (void *)(ports + 2) > data_end)
    return -1;
  __u32 icd = 0, pseudo; /* changes to the ICMP checksum, to the inner transport's */
  if (bg_is_v4(w)) {
    struct iphdr *in = data + in_l3;
    if ((void *)(in + 1) > data_end)
      return -1;
    pseudo = bg_csum_diff(&in->saddr, w->addr + 12, 2, 0);
    __u16 check = bg_csum_update(in->check, pseudo);
    icd = bg_csum_diff(&in->check, &check, 1, pseudo);
    __builtin_memcpy(&in->saddr, w->addr + 12, 4);
    in->check = check;
  } else {
    struct ipv6hdr *in = data + in_l3;
    if ((void *)(in + 1) > data_end)
      return -1;
    pseudo = bg_csum_diff(&in->saddr, w->addr, 8, 0);
    icd = pseudo;
    __builtin_memcpy(&in->saddr, w->addr, 16);
  }
  if (w->port) {
    pseudo = bg_csum_diff(ports, &w->port, 1, pseudo);
    icd = bg_csum_diff(ports, &w->port, 1, icd);
    ports[0] = w->port;
  }
  /* The inner transport checksum, if the error quoted that much of it. */
  __u16 *csum = bg_l4_csum(data, data_end, in_l4, w->in_proto);
  if (csum && (*csum || w->in_proto != IPPROTO_UDP || !bg_is_v4(w))) {
    __u16 c = w->in_proto == IPPROTO_UDP ? bg_udp_csum_update(*csum, pseudo)
                                         : bg_csum_update(*csum, pseudo);
    icd = bg_csum_diff(csum, &c, 1, icd);
    *csum = c;
  }
  *icsum = bg_csum_update(*icsum, icd);
  return 0;
}

/* The rewritten frame out of ifindex (XDP_TX if that is the one it came in
 * by) with the next hop's MACs. */
static __always_inline int bg_lb_send(struct xdp_md *ctx, __u32 ifindex, const __u8 *dmac,
                                      const __u8 *smac, __u32 done) {
  void *data = (void *)(long)ctx->data;
  void *data_end = (void *)(long)ctx->data_end;
  struct ethhdr *eth = data;
  if ((void *)(eth + 1) > data_end)
    return BG_LB_RES(XDP_PASS, BG_LB_TO_STACK);
  __builtin_memcpy(eth->h_dest, dmac, ETH_ALEN);
  __builtin_memcpy(eth->h_source, smac, ETH_ALEN);
  if (ifindex == ctx->ingress_ifindex)
    return BG_LB_RES(XDP_TX, done);
  return BG_LB_RES(bpf_redirect(ifindex, 0) & 0xff, done);
}

/* The IP packet's length (what the route's MTU bounds), ~0 if out of the frame. */
static __always_inline __u32 bg_l3_len(void *data, void *data_end, __u32 l3, int v4) {
  if (v4) {
    struct iphdr *iph = data + l3;
    return (void *)(iph + 1) > data_end ? ~0U : bpf_ntohs(iph->tot_len);
  }
  struct ipv6hdr *ip6 = data + l3;
  return (void *)(ip6 + 1) > data_end ? ~0U : sizeof(*ip6) + bpf_ntohs(ip6->payload_len);
}

/* The FIB's answer (a success) kept in the flow's entry for
 * BG_LB_ROUTE_TTL_NS: a request's in its connection entry, if that still
 * sends the flow to w's backend; a reply's in its reverse entry. The expiry
 * is cleared while the rest is written, then set. */
static __always_inline void bg_keep_in(struct bg_lb_route *r, struct xdp_md *ctx,
                                       const struct bg_lb_work *w,
                                       const struct bpf_fib_lookup *fib) {
  r->until_ns = 0;
  r->in_ifindex = ctx->ingress_ifindex;
  r->ifindex = fib->ifindex;
  __builtin_memcpy(r->dmac, fib->dmac, ETH_ALEN);
  __builtin_memcpy(r->smac, fib->smac, ETH_ALEN);
  r->mtu = fib->mtu_result;
  r->until_ns = w->now + BG_LB_ROUTE_TTL_NS;
}

static __always_inline void bg_keep_route(struct xdp_md *ctx, const struct bg_lb_work *w,
                                          const struct bpf_fib_lookup *fib) {
  /* Both keys are the flow's addresses and ports in the frame's order; one
   * slot of stack for either (the route stage sits at the stack's bound). */
  union {
    struct bg_lb_conn_key conn;
    struct bg_lb_rev_key rev;
  } k = {};
  _Static_assert(sizeof(k.conn) == sizeof(k.rev), "one key layout");
  k.conn.cport = w->pkt.sport; /* rev: bport, cport */
  k.conn.vport = w->pkt.dport;
  k.conn.proto = w->pkt.l4_proto;
  __builtin_memcpy(k.conn.client, w->pkt.src, 16); /* rev: backend, client */
  __builtin_memcpy(k.conn.vip, w->pkt.dst, 16);
  if (w->cached == BG_LB_KIND_REPLY) {
    struct bg_lb_rev *rev = bpf_map_lookup_elem(&bg_lb_reverse, &k.rev);
    if (rev && rev->backend == w->backend)
      bg_keep_in(&rev->route, ctx, w, fib);
    return;
  }
  struct bg_lb_conn *c = bpf_map_lookup_elem(&bg_lb_conns, &k.conn);
  if (c && c->backend == w->backend)
    bg_keep_in(&c->route, ctx, w, fib);
}

/* Stage 6: where the rewritten frame goes, as the FIB says: out of the
 * interface it came in by (XDP_TX), out of another (redirect), or to the
 * stack where the FIB cannot say it all (no neighbour yet, forwarding off,
 * too big for the route's MTU): the stack routes what the balancer wrote.
 * A request or reply of a flow whose entry kept the FIB's answer less than
 * BG_LB_ROUTE_TTL_NS ago, from the same interface and within the route's
 * MTU, goes where that answer said without asking again (the lookup was
 * most of the established path's cost). */
__noinline int bg_lb_route(struct xdp_md *ctx, struct bg_lb_work *w) {
  if (!w)
    return BG_LB_RES(XDP_PASS, BG_LB_TO_STACK);
  void *data = (void *)(long)ctx->data;
  void *data_end = (void *)(long)ctx->data_end;
  __u32 done = w->kind == BG_LB_KIND_REPLY ? BG_LB_REPLIED : BG_LB_FORWARDED;
  __u32 l3 = w->pkt.l3_off;
  if (w->pkt.vlan_depth || l3 > BG_LB_L3_MAX)
    return BG_LB_RES(XDP_PASS, BG_LB_TO_STACK);
  if (w->cached && w->route.until_ns > w->now && w->route.in_ifindex == ctx->ingress_ifindex &&
      bg_l3_len(data, data_end, l3, bg_is_v4(w)) <= w->route.mtu)
    return bg_lb_send(ctx, w->route.ifindex, w->route.dmac, w->route.smac, done);
  struct bpf_fib_lookup fib = {};
  fib.ifindex = ctx->ingress_ifindex;
  fib.l4_protocol = w->pkt.l4_proto;
  if (w->kind != BG_LB_KIND_ICMP) {
    __u32 l4 = w->pkt.l4_off;
    if (l4 > BG_LB_L4_MAX)
      return BG_LB_RES(XDP_PASS, BG_LB_TO_STACK);
    __be16 *ports = data + l4;
    if ((void *)(ports + 2) > data_end)
      return BG_LB_RES(XDP_PASS, BG_LB_TO_STACK);
    fib.sport = ports[0];
    fib.dport = ports[1];
  }
  if (bg_is_v4(w)) {
    struct iphdr *iph = data + l3;
    if ((void *)(iph + 1) > data_end)
      return BG_LB_RES(XDP_PASS, BG_LB_TO_STACK);
    fib.family = BG_AF_INET;
    fib.tos = iph->tos;
    fib.tot_len = bpf_ntohs(iph->tot_len);
    fib.ipv4_src = iph->saddr;
    fib.ipv4_dst = iph->daddr;
  } else {
    struct ipv6hdr *ip6 = data + l3;
    if ((void *)(ip6 + 1) > data_end)
      return BG_LB_RES(XDP_PASS, BG_LB_TO_STACK);
    fib.family = BG_AF_INET6;
    fib.flowinfo = *(__be32 *)ip6 & bpf_htonl(0x0fffffff);
    fib.tot_len = sizeof(*ip6) + bpf_ntohs(ip6->payload_len);
    __builtin_memcpy(fib.ipv6_src, &ip6->saddr, 16);
    __builtin_memcpy(fib.ipv6_dst, &ip6->daddr, 16);
  }
  long rc = bpf_fib_lookup(ctx, &fib, sizeof(fib), 0);
  switch (rc) {
    case BPF_FIB_LKUP_RET_SUCCESS: {
      if (w->cached)
        bg_keep_route(ctx, w, &fib);
      return bg_lb_send(ctx, fib.ifindex, fib.dmac, fib.smac, done);
    }
    case BPF_FIB_LKUP_RET_BLACKHOLE:
    case BPF_FIB_LKUP_RET_UNREACHABLE:
    case BPF_FIB_LKUP_RET_PROHIBIT:
    case BPF_FIB_LKUP_RET_NOT_FWDED:
      return BG_LB_RES(XDP_DROP, BG_LB_UNROUTABLE);
    default: /* NO_NEIGH, FWD_DISABLED, FRAG_NEEDED, UNSUPP_LWT, an error */
      return BG_LB_RES(XDP_PASS, BG_LB_TO_STACK);
  }
}

/* The third word of a v4-mapped address (::ffff:a.b.c.d), in memory order. */
#define BG_V4MAP_W2 bpf_htonl(0x0000ffff)

/* Whether slot h holds the flow of these addresses (4 words each), ports
 * (source, destination) and protocol. */
static __always_inline int bg_lb_hot_holds(const struct bg_lb_hot *h, const __u32 *src,
                                           const __u32 *dst, const __be16 *ports, __u8 proto) {
  return h->kind && h->sport == ports[0] && h->dport == ports[1] && h->proto == proto &&
         bg_addr_eq(h->src, (const __u8 *)src) && bg_addr_eq(h->dst, (const __u8 *)dst);
}

/* Stage 0, before any other: a TCP or UDP frame of an established flow whose
 * hot slot on this CPU still holds (abi/lb.h says when) is rewritten and
 * sent as the slot says, read straight from the frame (untagged Ethernet,
 * IPv4 without options and unfragmented, or IPv6 without extension headers;
 * anything else misses, and so does every frame the stages' parser would
 * refuse). Returns the outcome and its counter (BG_LB_RES), or BG_LB_MISS for
 * the stages, having written nothing. */
__noinline int bg_lb_fast(struct xdp_md *ctx) {
  void *data = (void *)(long)ctx->data;
  void *data_end = (void *)(long)ctx->data_end;
  struct ethhdr *eth = data;
  if ((void *)(eth + 1) > data_end)
    return BG_LB_MISS;
  __u32 src[4], dst[4];
  __u8 *ttl, proto;
  __u32 l4, ip_len, v4;
  if (eth->h_proto == bpf_htons(ETH_P_IP)) {
    struct iphdr *iph = (void *)(eth + 1);
    if ((void *)(iph + 1) > data_end || iph->version != 4 || iph->ihl != 5 ||
        (iph->frag_off & bpf_htons(BG_IP_MF | BG_IP_OFFSET)))
      return BG_LB_MISS;
    src[0] = src[1] = dst[0] = dst[1] = 0;
    src[2] = dst[2] = BG_V4MAP_W2;
    src[3] = iph->saddr;
    dst[3] = iph->daddr;
    ttl = &iph->ttl;
    proto = iph->protocol;
    l4 = sizeof(*eth) + sizeof(*iph);
    ip_len = bpf_ntohs(iph->tot_len);
    if (ip_len < sizeof(*iph))
      return BG_LB_MISS; /* malformed: the stages' parser refuses it */
    v4 = 1;
  } else if (eth->h_proto == bpf_htons(ETH_P_IPV6)) {
    struct ipv6hdr *ip6 = (void *)(eth + 1);
    if ((void *)(ip6 + 1) > data_end || ip6->version != 6)
      return BG_LB_MISS;
    __builtin_memcpy(src, &ip6->saddr, 16);
    __builtin_memcpy(dst, &ip6->daddr, 16);
    ttl = &ip6->hop_limit;
    proto = ip6->nexthdr;
    l4 = sizeof(*eth) + sizeof(*ip6);
    ip_len = sizeof(*ip6) + bpf_ntohs(ip6->payload_len);
    v4 = 0;
  } else {
    return BG_LB_MISS;
  }
  if (*ttl <= 1)
    return BG_LB_MISS;
  __be16 *ports = data + l4;
  __u16 *csum;
  __u32 hdr; /* IP and transport headers' length */
  if (proto == IPPROTO_TCP) {
    struct tcphdr *th = data + l4;
    if ((void *)(th + 1) > data_end || th->doff < 5 || th->syn || th->rst)
      return BG_LB_MISS;
    csum = &th->check;
    hdr = l4 - sizeof(*eth) + th->doff * 4;
  } else if (proto == IPPROTO_UDP) {
    struct udphdr *uh = data + l4;
    if ((void *)(uh + 1) > data_end)
      return BG_LB_MISS;
    csum = &uh->check;
    hdr = ip_len; /* no payload timed for UDP */
  } else {
    return BG_LB_MISS;
  }
  __u32 idx = bg_lb_hot_index(src, dst, ports[0], ports[1], proto);
  struct bg_lb_hot *h = bpf_map_lookup_elem(&bg_lb_hot, &idx);
  if (!h)
    return BG_LB_MISS;
  if (!bg_lb_hot_holds(h, src, dst, ports, proto)) {
    idx ^= 1; /* the pair's other slot */
    h = bpf_map_lookup_elem(&bg_lb_hot, &idx);
    if (!h || !bg_lb_hot_holds(h, src, dst, ports, proto))
      return BG_LB_MISS;
  }
  if ((h->flags & BG_LB_HOT_PAYLOAD_SLOW) && ip_len > hdr)
    return BG_LB_MISS; /* a payload the slow path may time */
  __u32 zero = 0;
  const struct bg_lb_ctl *ctl = bpf_map_lookup_elem(&bg_lb_ctl, &zero);
  if (!ctl || (ctl->active & 1) != h->active || h->moved != *(volatile __u32 *)&bg_lb_moved)
    return BG_LB_MISS;
  __u64 now = bpf_ktime_get_coarse_ns();
  if (now >= h->route.until_ns || h->route.in_ifindex != ctx->ingress_ifindex ||
      ip_len > h->route.mtu)
    return BG_LB_MISS;
  h->seen = (__u32)(now >> 20);
  __u32 id = h->backend;
  int reply = h->kind == BG_LB_KIND_REPLY;
  if (!reply) {
    const struct bg_lb_backend *b = bpf_map_lookup_elem(&bg_lb_backends, &id);
    if (!b || !(b->flags & BG_LB_BACKEND_USED) || (b->flags & BG_LB_BACKEND_DOWN) ||
        b->service != h->service || b->port != h->port || !bg_addr_eq(h->addr, b->addr))
      return BG_LB_MISS;
  }
  __be16 *port = reply ? &ports[0] : &ports[1];
  if (v4) {
    struct iphdr *iph = (void *)(eth + 1);
    if ((void *)(iph + 1) > data_end)
      return BG_LB_MISS;
    bg_lb_write(iph, 1, reply, proto, h->addr, h->port, port, csum);
  } else {
    struct ipv6hdr *ip6 = (void *)(eth + 1);
    if ((void *)(ip6 + 1) > data_end)
      return BG_LB_MISS;
    bg_lb_write(ip6, 0, reply, proto, h->addr, h->port, port, csum);
  }
  __u32 len = data_end - data;
  struct bg_lb_backend_stats *st = bg_lb_stats_of(id);
  if (st) {
    if (reply) {
      st->rx_packets++;
      st->rx_bytes += len;
    } else {
      st->packets++;
      st->bytes += len;
    }
  }
  return bg_lb_send(ctx, h->route.ifindex, h->route.dmac, h->route.smac,
                    reply ? BG_LB_REPLIED : BG_LB_FORWARDED);
}

/* After the stages sent a frame where its flow's entry and kept route said:
 * its flow's hot slot on this CPU takes that decision. */
__noinline int bg_lb_hot_fill(struct xdp_md *ctx, const struct bg_lb_work *w) {
  if (!w || !(w->hot & BG_LB_HOT_FILL) || !w->cached || w->route.until_ns <= w->now ||
      w->route.in_ifindex != ctx->ingress_ifindex)
    return 0;
  __u32 zero = 0;
  const struct bg_lb_ctl *ctl = bpf_map_lookup_elem(&bg_lb_ctl, &zero);
  const __u32 *src = (const __u32 *)w->pkt.src, *dst = (const __u32 *)w->pkt.dst;
  __be16 ports[2] = {w->pkt.sport, w->pkt.dport};
  __u32 idx = bg_lb_hot_index(src, dst, ports[0], ports[1], w->pkt.l4_proto);
  struct bg_lb_hot *h = bpf_map_lookup_elem(&bg_lb_hot, &idx);
  idx ^= 1;
  struct bg_lb_hot *o = bpf_map_lookup_elem(&bg_lb_hot, &idx);
  if (!ctl || !h || !o)
    return 0;
  __u32 seen = (__u32)(w->now >> 20);
  /* Which of the pair: the flow's own, an empty or expired one, else the one
   * seen longer ago if that was long enough ago. */
  if (bg_lb_hot_holds(h, src, dst, ports, w->pkt.l4_proto)) {
  } else if (bg_lb_hot_holds(o, src, dst, ports, w->pkt.l4_proto)) {
    h = o;
  } else if (!h->kind || w->now >= h->route.until_ns) {
  } else if (!o->kind || w->now >= o->route.until_ns) {
    h = o;
  } else {
    if ((__s32)(o->seen - h->seen) < 0)
      h = o;
    if ((__s32)(seen - h->seen) < BG_LB_HOT_KEEP_MS)
      return 0; /* both in use */
  }
  /* A request's backend: the stage found it live, so of the flow's service. */
  __u32 service = 0;
  if (w->kind == BG_LB_KIND_REQUEST) {
    __u32 id = w->backend;
    const struct bg_lb_backend *b = bpf_map_lookup_elem(&bg_lb_backends, &id);
    if (!b)
      return 0;
    service = b->service;
  }
  /* Half the idle time at most: the slow path refreshes the entry's last
   * frame before it could look idle. */
  __u64 until = w->route.until_ns;
  if (ctl->conn_idle_ns && w->now + ctl->conn_idle_ns / 2 < until)
    until = w->now + ctl->conn_idle_ns / 2;
  __builtin_memcpy(h->src, w->pkt.src, 16);
  __builtin_memcpy(h->dst, w->pkt.dst, 16);
  h->sport = w->pkt.sport;
  h->dport = w->pkt.dport;
  h->proto = w->pkt.l4_proto;
  h->flags = w->hot;
  h->active = w->active;
  h->moved = w->moved;
  h->backend = w->backend;
  h->service = service;
  __builtin_memcpy(h->addr, w->addr, 16);
  h->port = w->port;
  h->route = w->route;
  h->route.until_ns = until;
  h->seen = seen;
  h->kind = w->kind;
  return 0;
}

/* The balancer's part of a frame the stages classified: an XDP action and
 * its counter (BG_LB_RES). */
static __always_inline int bg_lb_classify(struct xdp_md *ctx, struct bg_lb_work *w) {
  if (w->status != BG_PARSE_OK)
    return BG_LB_RES(XDP_PASS, BG_LB_NOT_SERVICE);
  __u8 proto = w->pkt.l4_proto;
  if (proto == IPPROTO_TCP || proto == IPPROTO_UDP) {
    int r = bg_lb_request(w);
    return r == BG_LB_NOT_VIP ? bg_lb_reply(w) : r;
  }
  if (proto == IPPROTO_ICMP || proto == IPPROTO_ICMPV6) {
    bg_lb_parse_icmp(ctx, w);
    return bg_lb_icmp(w);
  }
  return BG_LB_RES(XDP_PASS, BG_LB_NOT_SERVICE);
}

SEC("xdp")
int bg_xdp_lb(struct xdp_md *ctx) {
  int r = bg_lb_fast(ctx);
  if (r != BG_LB_MISS) {
    __u32 len = (long)ctx->data_end - (long)ctx->data;
    bg_lb_count((r >> 8) & 0xff, len);
    return r & 0xff;
  }
  struct bg_lb_work w = {};
  bg_lb_parse(ctx, &w);
  r = bg_lb_classify(ctx, &w);
  if (r == BG_LB_GO) {
    /* The rewrites check every bound before they write (bg_lb_parse proved
     * them already): a failure leaves the frame as it came, but for an ICMP
     * error whose outer header was written. */
    if (bg_lb_rewrite(ctx, &w))
      r = BG_LB_RES(XDP_PASS, BG_LB_NOT_SERVICE);
    else if (w.kind == BG_LB_KIND_ICMP && bg_lb_rewrite_inner(ctx, &w))
      r = BG_LB_RES(XDP_DROP, BG_LB_UNROUTABLE);
    else
      r = bg_lb_route(ctx, &w);
    if (w.hot && ((r & 0xff) == XDP_TX || (r & 0xff) == XDP_REDIRECT))
      bg_lb_hot_fill(ctx, &w);
  }
  bg_lb_count((r >> 8) & 0xff, w.len);
  return r & 0xff;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
