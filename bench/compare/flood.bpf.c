/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The flood generator's program (bench/compare/flood.cpp). User space runs it
 * with BPF_PROG_RUN in live-frames mode: every run sends the template frame out
 * of one interface with XDP_REDIRECT, so the frame reaches the peer of a veth
 * as an xdp_frame, without an skb, as a frame from a NIC would.
 *
 * With a rate, the program paces the flood itself: a run that comes before the
 * next frame is due drops its frame (it goes back to the page pool) instead of
 * sending it, so frames leave evenly spaced, never in bursts that a ring at the
 * receiver would refuse (a test_run call costs milliseconds to set up, too much
 * to pace from user space). One thread runs it: the state needs no atomics.
 *
 * With random sources, each run draws the host bits of the source address from
 * bpf_get_prandom_u32 and derives the checksums that cover the source (IPv4:
 * the header checksum, and the TCP checksum of a TCP frame; IPv6: the UDP or
 * TCP checksum) from the template's, never from the frame: live frames are
 * recycled and hold what an earlier run wrote.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

/* Set between open and load. Words are in memory (network) order. */
const volatile __u32 flood_ifindex = 0;
const volatile __u32 flood_random = 0;    /* 0: the template's source as is */
const volatile __u32 flood_src_off = 26;  /* offset of the source address */
const volatile __u32 flood_src_words = 1; /* 1: IPv4, 4: IPv6 */
const volatile __u32 flood_csum_off = 24; /* offset of the checksum to fix */
const volatile __u32 flood_csum_udp6 = 0; /* a UDP-over-IPv6 checksum: 0 becomes 0xffff */
const volatile __u16 flood_csum = 0;      /* the template's checksum */
const volatile __u32 flood_csum2_off = 0; /* a second one to fix (TCP over IPv4); 0: none */
const volatile __u16 flood_csum2 = 0;     /* the template's second checksum */
const volatile __u32 flood_base[4] = {};  /* the template's source */
const volatile __u32 flood_mask[4] = {};  /* host bits drawn at random */
const volatile __u64 flood_gap_ns = 0;    /* time between frames; 0: as fast as possible */
const volatile __u64 flood_limit = ~0ULL; /* frames to send in all */

/* Frames redirected, and when the next one is due (paced floods). */
__u64 flood_sent = 0;
__u64 flood_next_ns = 0;

static __always_inline __u32 flood_add16(__u32 sum, __u32 word) {
  return sum + (word & 0xffff) + (word >> 16);
}

/* The template's checksum `old` updated by `delta` (a sum of 16-bit words). */
static __always_inline __u16 flood_fold(__u32 delta, __u16 old) {
  __u32 sum = (__u16)~old + (delta & 0xffff) + (delta >> 16);
  sum = (sum & 0xffff) + (sum >> 16);
  sum = (sum & 0xffff) + (sum >> 16);
  return (__u16)~sum;
}

SEC("xdp")
int flood_xdp(struct xdp_md *ctx) {
  void *data = (void *)(long)ctx->data;
  void *data_end = (void *)(long)ctx->data_end;
  if (flood_sent >= flood_limit)
    return XDP_DROP;
  if (flood_gap_ns) {
    __u64 now = bpf_ktime_get_ns();
    if (now < flood_next_ns)
      return XDP_DROP;
    /* Behind schedule (the thread was preempted): catch up by at most 256 frames, what
     * a veth's ring holds; the rest of the delay is lost, not sent in one burst. */
    __u64 earliest = now - 256 * flood_gap_ns;
    flood_next_ns = (flood_next_ns > earliest ? flood_next_ns : earliest) + flood_gap_ns;
  }
  flood_sent++;
  if (!flood_random)
    return bpf_redirect(flood_ifindex, 0);

  __u32 off = flood_src_off & 0xff, coff = flood_csum_off & 0xff, coff2 = flood_csum2_off & 0xff;
  __u32 *src = data + off;
  __u16 *csum = data + coff, *csum2 = data + coff2;
  if ((void *)(src + 4) > data_end || (void *)(csum + 1) > data_end ||
      (void *)(csum2 + 1) > data_end)
    return XDP_ABORTED;

  /* new = ~(~old + sum(~old words) + sum(new words)), RFC 1624; the change of the
   * words is the same for every checksum that covers them. */
  __u32 delta = 0;
#pragma unroll
  for (int i = 0; i < 4; i++) {
    if (i >= (int)flood_src_words)
      break;
    __u32 word = flood_base[i] | (bpf_get_prandom_u32() & flood_mask[i]);
    delta = flood_add16(delta, ~flood_base[i]);
    delta = flood_add16(delta, word);
    src[i] = word;
  }
  __u16 c = flood_fold(delta, flood_csum);
  if (flood_csum_udp6 && c == 0)
    c = 0xffff;
  *csum = c;
  if (coff2)
    *csum2 = flood_fold(delta, flood_csum2);
  return bpf_redirect(flood_ifindex, 0);
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
