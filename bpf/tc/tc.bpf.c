/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* bpfgate tc datapath on clsact ingress and egress: parse, classify, police,
 * mirror and count, chained by tail calls. The programs live in
 * bpf/tc/tc_progs.h, the stages in bpf/tc/tc.h. */
#include "tc/tc_progs.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";
