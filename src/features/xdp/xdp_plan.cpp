#include "features/xdp/xdp_plan.hpp"

#include <cerrno>

namespace bpfgate::agent {

std::string to_string(XdpAttach a) {
  return a == XdpAttach::kDispatcher ? "dispatcher" : "direct";
}

std::optional<XdpAttach> parse_xdp_attach(const std::string &s) {
  if (s == "direct")
    return XdpAttach::kDirect;
  if (s == "dispatcher")
    return XdpAttach::kDispatcher;
  return std::nullopt;
}

namespace {

Result<XdpAttachPlan> plan_direct(const XdpAttachRequest &r, const XdpPresent &p) {
  if (p.prog_id == 0)
    return XdpAttachPlan{};
  if (p.dispatcher)
    // Even with --force: replacing the dispatcher would take every program
    // of the other tools with it, and leave libxdp's pins behind.
    return make_error(EBUSY,
                      "{} runs libxdp's XDP dispatcher (program id {}, {} program{}) for other "
                      "tools: attaching directly would replace them all; attach through the "
                      "dispatcher instead (`--attach dispatcher`, or `attach: dispatcher` in the "
                      "config)",
                      r.iface, p.prog_id, p.dispatched, p.dispatched == 1 ? "" : "s");
  if (!r.force)
    return make_error(EBUSY,
                      "{} already has an XDP program (id {}, {} mode) that bpfgate did not "
                      "attach; remove it (`ip link set dev {} xdp off`) or pass --force to "
                      "replace it",
                      r.iface, p.prog_id, bpf::to_string(p.mode), r.iface);
  return XdpAttachPlan{.remove_foreign = true};
}

Result<XdpAttachPlan> plan_dispatcher(const XdpAttachRequest &r, const XdpPresent &p) {
  if (r.mode == bpf::XdpMode::kOffload)
    return make_error(EINVAL,
                      "libxdp's dispatcher cannot be offloaded to a NIC: use --mode native, "
                      "generic or auto with the dispatcher, or attach directly to offload");
  if (!r.freplace)
    return make_error(EOPNOTSUPP,
                      "{}: libxdp's dispatcher runs each program as an freplace extension "
                      "(BPF_PROG_TYPE_EXT), and this kernel ({}) refuses them ({}); libxdp would "
                      "attach the filter alone, not beside other programs, so bpfgate does not "
                      "try. Attach directly if bpfgate may be alone on {}, or use a kernel that "
                      "allows freplace (Debian 12's 6.1 does)",
                      r.iface, r.kernel, r.freplace.error().what(), r.iface);
  if (p.prog_id == 0 || p.dispatcher)
    return XdpAttachPlan{};
  if (!r.force)
    return make_error(EBUSY,
                      "{} runs an XDP program (id {}) that was not attached through libxdp's "
                      "dispatcher, and such a program cannot run beside another: have its owner "
                      "detach it or reload it with xdp-loader, or pass --force to replace it",
                      r.iface, p.prog_id);
  return XdpAttachPlan{.remove_foreign = true};
}

}  // namespace

bool want_frags(int mtu, int single_buffer_mtu, bool kernel_frags, bpf::XdpMode mode) {
  return kernel_frags && mode != bpf::XdpMode::kOffload && mtu > single_buffer_mtu;
}

Result<XdpAttachPlan> plan_xdp_attach(const XdpAttachRequest &r, const XdpPresent &present) {
  return r.attach == XdpAttach::kDispatcher ? plan_dispatcher(r, present) : plan_direct(r, present);
}

}  // namespace bpfgate::agent

namespace bpfgate::agent {

std::string_view to_string(IfaceStep s) {
  switch (s) {
    case IfaceStep::kRunning:
      return "running";
    case IfaceStep::kAbsent:
      return "absent";
    case IfaceStep::kGoingAway:
      return "going away";
    case IfaceStep::kBringUp:
      return "bring up";
  }
  return "?";
}

IfaceStep converge_step(uint32_t live, uint32_t attached) {
  if (live == 0)
    return IfaceStep::kAbsent;
  return attached == live ? IfaceStep::kRunning : IfaceStep::kBringUp;
}

IfaceStep link_step(uint32_t live, uint32_t attached, uint32_t last_seen) {
  IfaceStep s = converge_step(live, attached);
  // The kernel detaches XDP before it unlists the name: RTM_DELLINK follows.
  if (s == IfaceStep::kBringUp && last_seen == live)
    return IfaceStep::kGoingAway;
  return s;
}

}  // namespace bpfgate::agent
