#include "bpf/xdp.hpp"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/if_link.h>
#include <net/if.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <algorithm>
#include <cstring>

#include "bpf/error.hpp"
#include "util/log.hpp"
#include "util/netif.hpp"

namespace bpfgate::bpf {

Result<int> ifindex_of(const std::string &iface) {
  if (auto why = util::interface_name_problem(iface))
    return make_error(EINVAL, "{}", *why);
  unsigned idx = if_nametoindex(iface.c_str());
  if (idx == 0)
    return make_error(ENODEV, "no interface '{}' in this network namespace (see `ip link`)", iface);
  return static_cast<int>(idx);
}

Result<int> mtu_of(const std::string &iface) {
  if (auto why = util::interface_name_problem(iface))
    return make_error(EINVAL, "{}", *why);
  int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (s < 0)
    return make_error(errno, "socket to read the MTU of {}", iface);
  UniqueFd sock(s);
  ifreq req{};
  std::memcpy(req.ifr_name, iface.data(), std::min(iface.size(), sizeof(req.ifr_name) - 1));
  if (ioctl(sock.get(), SIOCGIFMTU, &req) != 0)
    return make_error(errno, "read the MTU of {}", iface);
  return req.ifr_mtu;
}

Result<XdpQuery> query_xdp(int ifindex) {
  LIBBPF_OPTS(bpf_xdp_query_opts, opts);
  int err = bpf_xdp_query(ifindex, 0, &opts);
  if (err)
    return libbpf_error(err, "query XDP state");
  XdpQuery q;
  switch (opts.attach_mode) {
    case XDP_ATTACHED_DRV:
      q.prog_id = opts.drv_prog_id, q.mode = XdpMode::kNative;
      break;
    case XDP_ATTACHED_SKB:
      q.prog_id = opts.skb_prog_id, q.mode = XdpMode::kGeneric;
      break;
    case XDP_ATTACHED_HW:
      q.prog_id = opts.hw_prog_id, q.mode = XdpMode::kOffload;
      break;
    case XDP_ATTACHED_MULTI:
      q.prog_id = opts.prog_id ? opts.prog_id : opts.drv_prog_id;
      break;
    default:
      break;
  }
  return q;
}

namespace {
uint32_t flags_for(XdpMode m) {
  switch (m) {
    case XdpMode::kNative:
      return XDP_FLAGS_DRV_MODE;
    case XdpMode::kGeneric:
      return XDP_FLAGS_SKB_MODE;
    case XdpMode::kOffload:
      return XDP_FLAGS_HW_MODE;
    case XdpMode::kAuto:
      return 0;
  }
  return 0;
}

std::string advice(XdpMode m, int err) {
  switch (m) {
    case XdpMode::kNative:
      if (err == EOPNOTSUPP || err == EINVAL)
        return "the driver has no native XDP (common on bonds, bridges and some virtual NICs); "
               "use --mode generic or --mode auto";
      if (err == ERANGE)
        return "the MTU is too large for native XDP on this driver; lower it";
      break;
    case XdpMode::kOffload:
      return "offload needs a NIC that runs XDP in hardware (e.g. Netronome nfp); use --mode "
             "native, generic or auto";
    case XdpMode::kGeneric:
      break;
    case XdpMode::kAuto:
      break;
  }
  if (err == EBUSY || err == EEXIST)
    return "another XDP program is attached; see `bpfgate status` or `ip link`, or use --force";
  return "check `dmesg` and the interface's driver";
}

Result<UniqueFd> try_attach(int prog_fd, int ifindex, XdpMode m) {
  LIBBPF_OPTS(bpf_link_create_opts, opts, .flags = flags_for(m));
  int fd = bpf_link_create(prog_fd, ifindex, BPF_XDP, &opts);
  if (fd < 0)
    return libbpf_error(fd, "attach in " + to_string(m) + " mode");
  return UniqueFd(fd);
}
}  // namespace

Result<XdpAttachment> attach_xdp(int prog_fd, int ifindex, const std::string &iface, XdpMode mode) {
  if (mode != XdpMode::kAuto) {
    auto l = try_attach(prog_fd, ifindex, mode);
    if (!l)
      return make_error(l.error().err(), "attach XDP to {} in {} mode failed: {}", iface,
                        to_string(mode), advice(mode, l.error().err()));
    return XdpAttachment{std::move(*l), mode, ""};
  }
  auto native = try_attach(prog_fd, ifindex, XdpMode::kNative);
  if (native)
    return XdpAttachment{std::move(*native), XdpMode::kNative, ""};
  int nerr = native.error().err();
  if (nerr == EBUSY || nerr == EEXIST || nerr == EPERM)
    return make_error(nerr, "attach XDP to {} failed: {}", iface, advice(XdpMode::kNative, nerr));
  auto generic = try_attach(prog_fd, ifindex, XdpMode::kGeneric);
  if (!generic)
    return make_error(generic.error().err(),
                      "attach XDP to {} failed in native mode ({}) and in generic mode ({}); {}",
                      iface, std::strerror(nerr), generic.error().what(),
                      advice(XdpMode::kGeneric, generic.error().err()));
  std::string note =
      fmt::format("native mode unavailable ({}), using generic", std::strerror(nerr));
  return XdpAttachment{std::move(*generic), XdpMode::kGeneric, note};
}

Status detach_foreign_xdp(int ifindex, const XdpQuery &q) {
  uint32_t flags = flags_for(q.mode == XdpMode::kAuto ? XdpMode::kNative : q.mode);
  LIBBPF_OPTS(bpf_xdp_attach_opts, opts);
  int err = bpf_xdp_detach(ifindex, flags, &opts);
  if (err)
    return make_error(-err,
                      "remove the XDP program (id {}) that is attached: it may be held by "
                      "a bpf_link of another tool, which must detach it itself",
                      q.prog_id);
  return {};
}

}  // namespace bpfgate::bpf
