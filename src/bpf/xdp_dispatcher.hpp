// libxdp's dispatcher (Debian 12's libxdp 1.3): several XDP programs on one
// interface. The interface runs the dispatcher; each program the dispatcher
// runs is an extension (freplace) of one of its slots, in priority order
// (lower first), and a program's verdict goes on to the next program when it
// is one of the program's chain-call actions (bpfgate's: XDP_PASS). libxdp
// pins the dispatcher and its programs' links under <bpffs>/xdp/, so they
// outlive the process that added them; every libxdp user (xdp-loader,
// xdp-filter, bpfgate) shares them.
#pragma once

#include <bpf/libbpf.h>

#include <cstdint>
#include <string>
#include <vector>

#include "bpf/fd.hpp"
#include "bpf/xdp.hpp"
#include "util/result.hpp"

namespace bpfgate::bpf {

// libxdp's default run priority, used when the operator chooses none.
inline constexpr unsigned kDefaultXdpPriority = 50;

struct DispatchedProg {
  uint32_t id = 0;
  std::string name;
  unsigned priority = 0;
};

// The interface's XDP program as libxdp sees it.
struct DispatcherQuery {
  uint32_t main_id = 0;     // the program the interface runs (0: none)
  bool dispatcher = false;  // main_id is a libxdp dispatcher (else a plain program)
  XdpMode mode = XdpMode::kAuto;
  std::vector<DispatchedProg> progs;  // the dispatcher's programs, in run order
  const DispatchedProg *find(uint32_t prog_id) const;
};
Result<DispatcherQuery> query_dispatcher(int ifindex);

struct DispatchedAttachment {
  UniqueFd prog;  // the extension program bpfgate runs, to pin
  uint32_t prog_id = 0;
  XdpMode mode = XdpMode::kAuto;  // the dispatcher's mode
};

// Loads program `prog_name` of `obj` (opened, not loaded: libxdp loads it as
// an extension) and adds it to ifindex's dispatcher, made if there is none,
// at `priority`, going on to the next program when it returns XDP_PASS.
// kAuto: the mode of the dispatcher already there, else native then generic;
// kOffload is refused (a dispatcher cannot be offloaded). Never falls back to
// a lone program: callers probe freplace_support() first, and an attachment
// that did not land in a dispatcher is undone and reported. `frags`: the
// program supports frames of several buffers (libxdp 1.3 then loads its
// dispatcher with frags, if every program in it supports them).
Result<DispatchedAttachment> attach_dispatched(bpf_object *obj, const char *prog_name, int ifindex,
                                               const std::string &iface, XdpMode mode,
                                               unsigned priority, bool frags = false);

// Removes the extension program prog_fd from ifindex's dispatcher: the other
// programs stay (libxdp replaces the dispatcher by one without it; the last
// program takes the dispatcher with it).
Status detach_dispatched(int prog_fd, int ifindex, const std::string &iface);

}  // namespace bpfgate::bpf
