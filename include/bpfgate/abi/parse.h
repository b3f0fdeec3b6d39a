/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * What the BPF packet parser (bpf/lib/parse.h, bg_parse) makes of
 * a frame: shared with C++ so that tests can read it back from the kernel and
 * hold it against a reference parser (tests/support/reference_parse.hpp).
 * tests/unit/abi_test.cpp pins sizes and offsets.
 */
#ifndef BPFGATE_ABI_PARSE_H
#define BPFGATE_ABI_PARSE_H

#include <linux/types.h>

/* How far parsing got. */
enum bg_parse_status {
  BG_PARSE_OK = 0,     /* L3 and, where present, L4 header read */
  BG_PARSE_NOT_IP = 1, /* a well-formed frame that is not IPv4/IPv6 */
  BG_PARSE_BAD_L2 = 2, /* truncated Ethernet or VLAN header */
  BG_PARSE_BAD_L3 = 3, /* IP header truncated or malformed: no trustworthy source */
  BG_PARSE_BAD_L4 = 4, /* source known, transport header truncated or malformed */
};

/* What the filter needs to know about a packet. */
struct bg_packet {
  __u8 src[16]; /* IPv6, or IPv4 mapped ::ffff:a.b.c.d */
  __u8 dst[16];
  __u16 l3_proto; /* ETH_P_IP or ETH_P_IPV6, host order */
  __u8 l4_proto;  /* IPPROTO_*, 0 when unknown */
  __u8 fragment;  /* 1: part of a fragmented datagram */
  __u8 has_l4;    /* 1: sport/dport are valid */
  __u8 vlan_depth;
  __u16 vlan_id; /* innermost VLAN id, 0 when untagged */
  __be16 sport;
  __be16 dport;
  __u8 tcp_flags; /* TCP: the flags byte (FIN 0x01 SYN 0x02 RST 0x04 ACK 0x10) */
  __u8 _pad;
  __u16 l3_off; /* bg_parse: offsets of the IP and transport headers in the frame */
  __u16 l4_off;
};

/* A test-only probe's output (tests/bpf/parse_probe.bpf.c): bg_parse's status
 * and packet for the last frame it ran on, and how many frames it ran on. */
struct bg_parse_probe_out {
  __s32 status;
  __u32 runs;
  struct bg_packet pkt;
  __u8 _pad[2];
};

#endif /* BPFGATE_ABI_PARSE_H */
