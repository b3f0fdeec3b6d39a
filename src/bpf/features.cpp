#include "bpf/features.hpp"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/capability.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <memory>

#include "bpf/object.hpp"
#include "freplace_probe.skel.h"

namespace bpfgate::bpf {

bool has_map_type(bpf_map_type type) {
  return libbpf_probe_bpf_map_type(type, nullptr) == 1;
}
bool has_prog_type(bpf_prog_type type) {
  return libbpf_probe_bpf_prog_type(type, nullptr) == 1;
}

std::string kernel_release() {
  struct utsname u {};
  if (uname(&u) != 0)
    return "unknown";
  return u.release;
}

bool has_bpf_privileges() {
  __user_cap_header_struct hdr{_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct data[2]{};
  if (syscall(SYS_capget, &hdr, data) != 0)
    return geteuid() == 0;
  auto has = [&](int cap) { return (data[cap / 32].effective >> (cap % 32)) & 1U; };
  constexpr int kCapBpf = 39;  // CAP_BPF, absent from older headers
  bool bpf = has(CAP_SYS_ADMIN) || has(kCapBpf);
  return bpf && has(CAP_NET_ADMIN);
}

Status require_privileges(std::string_view who, std::string_view to) {
  if (has_bpf_privileges())
    return {};
  return make_error(EPERM,
                    "{} needs root, or CAP_BPF (or CAP_SYS_ADMIN) and CAP_NET_ADMIN, to {}: run "
                    "it with sudo",
                    who, to);
}

}  // namespace bpfgate::bpf

namespace bpfgate::bpf {

bool has_helper(bpf_prog_type type, bpf_func_id helper) {
  return libbpf_probe_bpf_helper(type, helper, nullptr) == 1;
}

bool xdp_frags_support() {
  static const bool have = [] {
    const bpf_insn insns[] = {
        {.code = BPF_ALU64 | BPF_MOV | BPF_K,
         .dst_reg = BPF_REG_0,
         .src_reg = 0,
         .off = 0,
         .imm = XDP_PASS},
        {.code = BPF_JMP | BPF_EXIT, .dst_reg = 0, .src_reg = 0, .off = 0, .imm = 0},
    };
    LIBBPF_OPTS(bpf_prog_load_opts, opts, .prog_flags = BPF_F_XDP_HAS_FRAGS);
    int fd = bpf_prog_load(BPF_PROG_TYPE_XDP, "bg_frags_probe", "GPL", insns, 2, &opts);
    if (fd < 0)
      return false;
    close(fd);
    return true;
  }();
  return have;
}

int xdp_single_buffer_mtu() {
  const long page = sysconf(_SC_PAGESIZE);
  return static_cast<int>(page > 0 ? page : 4096) - 256 - 320 - 14 - 8;
}

}  // namespace bpfgate::bpf

namespace bpfgate::bpf {

namespace {
using ProbeSkel = Skeleton<SkeletonTraits<freplace_probe, freplace_probe__open_opts,
                                          freplace_probe__load, freplace_probe__destroy>>;

// Loads bpf/xdp/freplace_probe.bpf.c's XDP program, then its extension against
// it, then attaches the extension: each step the dispatcher takes.
Status probe_freplace() {
  auto target = ProbeSkel::open("freplace_probe");
  if (!target)
    return target.error();
  bpf_program__set_autoload((*target)->progs.bg_probe_ext, false);
  if (auto st = target->load(); !st)
    return st.error().context("load a plain XDP program");
  int target_fd = bpf_program__fd((*target)->progs.bg_probe_target);

  auto ext = ProbeSkel::open("freplace_probe");
  if (!ext)
    return ext.error();
  bpf_program__set_autoload((*ext)->progs.bg_probe_target, false);
  if (int err =
          bpf_program__set_attach_target((*ext)->progs.bg_probe_ext, target_fd, "bg_probe_slot"))
    return libbpf_error(err, "aim an extension program at an XDP program");
  if (auto st = ext->load(); !st)
    return st.error().context("load an extension (freplace) program");
  std::unique_ptr<bpf_link, decltype(&bpf_link__destroy)> link(
      bpf_program__attach_freplace((*ext)->progs.bg_probe_ext, target_fd, "bg_probe_slot"),
      bpf_link__destroy);
  if (!link)
    return libbpf_error(-errno, "attach an extension (freplace) program to an XDP program");
  return {};
}
}  // namespace

Status freplace_support() {
  static const Status kAnswer = probe_freplace();
  return kAnswer;
}

}  // namespace bpfgate::bpf
