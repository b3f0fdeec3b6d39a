/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The tc datapath's programs: two entry points (clsact ingress and egress)
 * and one program per stage, chained by tail calls (bpf/tc/tc.h). Included
 * by bpf/tc/tc.bpf.c and by the benchmark object, so both run the same code.
 */
#ifndef BPFGATE_BPF_TC_PROGS_H
#define BPFGATE_BPF_TC_PROGS_H

#include "tc/tc.h"

SEC("tc")
int bg_tc_ingress(struct __sk_buff *skb) {
  bg_tc_begin(skb, 0);
  return bg_tc_next(skb, BG_TC_STAGE_PARSE);
}

SEC("tc")
int bg_tc_egress(struct __sk_buff *skb) {
  bg_tc_begin(skb, 1);
  return bg_tc_next(skb, BG_TC_STAGE_PARSE);
}

SEC("tc")
int bg_tc_parse(struct __sk_buff *skb) {
  bg_tc_do_parse(skb);
  return bg_tc_next(skb, BG_TC_STAGE_PARSE + 1);
}

SEC("tc")
int bg_tc_classify(struct __sk_buff *skb) {
  bg_tc_do_classify(skb);
  return bg_tc_next(skb, BG_TC_STAGE_CLASSIFY + 1);
}

SEC("tc")
int bg_tc_police(struct __sk_buff *skb) {
  bg_tc_do_police(skb);
  return bg_tc_next(skb, BG_TC_STAGE_POLICE + 1);
}

SEC("tc")
int bg_tc_mirror(struct __sk_buff *skb) {
  bg_tc_do_mirror(skb);
  return bg_tc_next(skb, BG_TC_STAGE_MIRROR + 1);
}

SEC("tc")
int bg_tc_count(struct __sk_buff *skb) {
  bg_tc_do_count(skb);
  return bg_tc_next(skb, BG_TC_STAGE_COUNT + 1);
}

#endif /* BPFGATE_BPF_TC_PROGS_H */
