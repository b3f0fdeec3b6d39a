#include "bpf/xdp_dispatcher.hpp"

#include <bpf/bpf.h>
#include <fcntl.h>
#include <xdp/libxdp.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <memory>

#include "bpf/error.hpp"
#include "util/log.hpp"

namespace bpfgate::bpf {

namespace {

struct CloseProgram {
  void operator()(xdp_program *p) const { xdp_program__close(p); }
};
struct CloseMultiprog {
  void operator()(xdp_multiprog *m) const { xdp_multiprog__close(m); }
};
using ProgramPtr = std::unique_ptr<xdp_program, CloseProgram>;
using MultiprogPtr = std::unique_ptr<xdp_multiprog, CloseMultiprog>;

// libxdp returns either NULL with errno or an error pointer; both become a
// positive errno here (0: a valid pointer).
int pointer_error(const void *p) {
  long err = libxdp_get_error(p);
  if (!err)
    return 0;
  return err < 0 ? static_cast<int>(-err) : static_cast<int>(err);
}

XdpMode mode_of(xdp_attach_mode m) {
  switch (m) {
    case XDP_MODE_NATIVE:
      return XdpMode::kNative;
    case XDP_MODE_SKB:
      return XdpMode::kGeneric;
    case XDP_MODE_HW:
      return XdpMode::kOffload;
    case XDP_MODE_UNSPEC:
      break;
  }
  return XdpMode::kAuto;
}

xdp_attach_mode libxdp_mode(XdpMode m) {
  switch (m) {
    case XdpMode::kNative:
      return XDP_MODE_NATIVE;
    case XdpMode::kGeneric:
      return XDP_MODE_SKB;
    case XdpMode::kOffload:
      return XDP_MODE_HW;
    case XdpMode::kAuto:
      break;
  }
  return XDP_MODE_UNSPEC;
}

std::string libxdp_message(int err) {
  char buf[128] = {};
  libxdp_strerror(-err, buf, sizeof(buf));
  return buf;
}

Status attach_once(xdp_program *prog, int ifindex, const std::string &iface, XdpMode mode) {
  int err = xdp_program__attach(prog, ifindex, libxdp_mode(mode), 0);
  if (!err)
    return {};
  err = err < 0 ? -err : err;
  return make_error(err, "add the filter to {}'s XDP dispatcher in {} mode: {}", iface,
                    to_string(mode), libxdp_message(err));
}

}  // namespace

const DispatchedProg *DispatcherQuery::find(uint32_t prog_id) const {
  for (const auto &p : progs)
    if (p.id == prog_id)
      return &p;
  return nullptr;
}

Result<DispatcherQuery> query_dispatcher(int ifindex) {
  DispatcherQuery q;
  xdp_multiprog *raw = xdp_multiprog__get_from_ifindex(ifindex);
  if (int err = pointer_error(raw)) {
    if (err == ENOENT)
      return q;  // no XDP program at all
    return make_error(err, "read the XDP programs of interface {}: {}", ifindex,
                      libxdp_message(err));
  }
  MultiprogPtr mp(raw);
  if (const xdp_program *main = xdp_multiprog__main_prog(mp.get()))
    q.main_id = xdp_program__id(main);
  q.mode = mode_of(xdp_multiprog__attach_mode(mp.get()));
  q.dispatcher = q.main_id != 0 && !xdp_multiprog__is_legacy(mp.get());
  if (!q.dispatcher)
    return q;
  for (xdp_program *p = xdp_multiprog__next_prog(nullptr, mp.get()); p;
       p = xdp_multiprog__next_prog(p, mp.get()))
    q.progs.push_back({xdp_program__id(p), xdp_program__name(p), xdp_program__run_prio(p)});
  return q;
}

Result<DispatchedAttachment> attach_dispatched(bpf_object *obj, const char *prog_name, int ifindex,
                                               const std::string &iface, XdpMode mode,
                                               unsigned priority, bool frags) {
  if (mode == XdpMode::kOffload)
    return make_error(EINVAL,
                      "libxdp's dispatcher cannot be offloaded to a NIC: attach in native, "
                      "generic or auto mode, or attach directly to offload");
  if (const char *skip = std::getenv("LIBXDP_SKIP_DISPATCHER"); skip && std::strcmp(skip, "1") == 0)
    return make_error(EINVAL,
                      "LIBXDP_SKIP_DISPATCHER=1 is set: libxdp would attach the filter alone and "
                      "not beside other programs; unset it");
  auto before = query_dispatcher(ifindex);
  if (!before)
    return before.error();
  if (before->main_id && !before->dispatcher)
    return make_error(EBUSY,
                      "{} runs an XDP program (id {}) that was not attached through libxdp's "
                      "dispatcher, which cannot run beside another; it must be detached by its "
                      "owner (or `ip link set dev {} xdp off`), or reattached with xdp-loader",
                      iface, before->main_id, iface);

  DECLARE_LIBXDP_OPTS(xdp_program_opts, opts, .obj = obj, .prog_name = prog_name);
  xdp_program *raw = xdp_program__create(&opts);
  if (int err = pointer_error(raw))
    return make_error(err, "prepare the filter for libxdp: {}", libxdp_message(err));
  ProgramPtr prog(raw);
  if (int err = xdp_program__set_run_prio(prog.get(), priority))
    return libbpf_error(err, "set the filter's priority");
  if (int err = xdp_program__set_xdp_frags_support(prog.get(), frags))
    return libbpf_error(err, "mark the filter as supporting frags");
  // Frames the filter passes go on to the next program; what it drops stops there.
  for (unsigned action : {XDP_ABORTED, XDP_DROP, XDP_PASS, XDP_TX, XDP_REDIRECT})
    if (int err = xdp_program__set_chain_call_enabled(prog.get(), action, action == XDP_PASS))
      return libbpf_error(err, "set the filter's chain-call actions");

  Status attached;
  if (mode != XdpMode::kAuto) {
    attached = attach_once(prog.get(), ifindex, iface, mode);
  } else if (before->dispatcher) {
    attached = attach_once(prog.get(), ifindex, iface, before->mode);
  } else {
    attached = attach_once(prog.get(), ifindex, iface, XdpMode::kNative);
    if (!attached && attached.error().err() != EBUSY && attached.error().err() != EEXIST) {
      log::debug("{}: {}; trying generic mode", iface, attached.error().what());
      attached = attach_once(prog.get(), ifindex, iface, XdpMode::kGeneric);
    }
  }
  if (!attached && frags)
    return attached.error().context(
        "the interface's MTU needs a dispatcher loaded with frags, which libxdp does only when "
        "every program in it supports them: lower the MTU, or attach directly");
  if (!attached)
    return attached.error();

  DispatchedAttachment out;
  out.prog_id = xdp_program__id(prog.get());
  auto after = query_dispatcher(ifindex);
  if (!after || !after->dispatcher || !after->find(out.prog_id)) {
    (void)xdp_program__detach(prog.get(), ifindex, XDP_MODE_UNSPEC, 0);
    return make_error(EOPNOTSUPP,
                      "libxdp attached the filter to {} without its dispatcher (alone, as if "
                      "the kernel refused freplace); removed it again: see `bpfgate -v`",
                      iface);
  }
  out.mode = after->mode;
  out.prog.reset(fcntl(xdp_program__fd(prog.get()), F_DUPFD_CLOEXEC, 3));
  if (!out.prog.valid())
    return Error(errno, "duplicate the filter's program fd");
  return out;
}

Status detach_dispatched(int prog_fd, int ifindex, const std::string &iface) {
  xdp_program *raw = xdp_program__from_fd(prog_fd);
  if (int err = pointer_error(raw))
    return make_error(err, "read the filter's program: {}", libxdp_message(err));
  ProgramPtr prog(raw);
  int err = xdp_program__detach(prog.get(), ifindex, XDP_MODE_UNSPEC, 0);
  if (err)
    return make_error(err < 0 ? -err : err,
                      "remove the filter (program id {}) from {}'s XDP dispatcher: {}",
                      xdp_program__id(prog.get()), iface, libxdp_message(err < 0 ? -err : err));
  return {};
}

}  // namespace bpfgate::bpf
