/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* bpfgate tc datapath on clsact ingress and egress: parse, classify, police,
 * mirror and count, chained by tail calls. The programs live in
 * bpfgate/tc_progs.h, the stages in bpfgate/tc.h. */
#include "bpfgate/tc_progs.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";
