#include "bpf/iter.hpp"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <unistd.h>

#include <cerrno>

#include "bpf/error.hpp"
#include "bpf/fd.hpp"

namespace bpfgate::bpf {

void IterLink::Deleter::operator()(bpf_link *l) const {
  bpf_link__destroy(l);
}

Result<IterLink> IterLink::attach(const bpf_program *prog, int map_fd, const std::string &what) {
  union bpf_iter_link_info linfo {};
  linfo.map.map_fd = static_cast<__u32>(map_fd);
  LIBBPF_OPTS(bpf_iter_attach_opts, opts, .link_info = &linfo, .link_info_len = sizeof(linfo));
  bpf_link *l = bpf_program__attach_iter(prog, map_fd >= 0 ? &opts : nullptr);
  if (!l)
    return libbpf_error(-errno, "attach " + what);
  return IterLink(l, what);
}

Result<std::vector<uint8_t>> IterLink::read_all() const {
  int fd = bpf_iter_create(bpf_link__fd(link_.get()));
  if (fd < 0)
    return libbpf_error(fd, "start " + what_);
  UniqueFd it(fd);
  std::vector<uint8_t> out;
  uint8_t chunk[16384];
  for (;;) {
    ssize_t n = ::read(it.get(), chunk, sizeof(chunk));
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0)
      return Error(errno, "read " + what_);
    if (n == 0)
      return out;
    out.insert(out.end(), chunk, chunk + n);
  }
}

}  // namespace bpfgate::bpf
