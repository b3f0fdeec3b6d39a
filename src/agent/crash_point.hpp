// Named points in the control plane's multi-step changes (a policy apply,
// a program replace) where a crash must leave the datapath consistent.
//
// In the product, crash_point() does nothing (agent/crash_point.cpp). The
// fault tests link a binary of their own, bpfgate-crashpoints
// (tests/support/crash_points.cpp), whose crash_point() ends the process
// with _exit(137), as SIGKILL would, at the point BPFGATE_CRASH_AT names:
// the product carries no test branch, and no environment can crash it.
#pragma once

namespace bpfgate::agent {

// Where: "apply-installed" (the next generation's first inner map is in
// place, the others and the settings not yet), "apply-settings" (the next
// generation is complete, `active` not flipped), "apply-switched" (flipped,
// the never-block list not trimmed yet), "replace-loaded" (a replacement
// program is loaded, the link still runs the old one), "replace-swapped"
// (the link runs the new program, the prog pin still names the old one).
void crash_point(const char *where);

}  // namespace bpfgate::agent
