/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* The tc datapath for bench/tc_nspp: the production programs (stages chained
 * by tail calls, bpf/tc/tc_progs.h) plus bg_tc_direct_egress, which runs the
 * same stages one after the other in one program, so that the difference is
 * what the five tail calls cost. */
#include "tc/tc_progs.h"

SEC("tc")
int bg_tc_direct_egress(struct __sk_buff *skb) {
  bg_tc_begin(skb, 1);
  bg_tc_do_parse(skb);
  bg_tc_do_classify(skb);
  bg_tc_do_police(skb);
  bg_tc_do_mirror(skb);
  bg_tc_do_count(skb);
  return (int)skb->cb[BG_TC_CB_VERDICT];
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
