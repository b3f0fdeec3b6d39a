#include "bpf/features.hpp"

#include <bpf/libbpf.h>
#include <linux/capability.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <unistd.h>

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

}  // namespace bpfgate::bpf

namespace bpfgate::bpf {

bool has_helper(bpf_prog_type type, bpf_func_id helper) {
  return libbpf_probe_bpf_helper(type, helper, nullptr) == 1;
}

}  // namespace bpfgate::bpf
