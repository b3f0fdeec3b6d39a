#include "agent/source_sweep.hpp"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <unistd.h>

#include <cerrno>

#include "bpf/error.hpp"
#include "bpf/fd.hpp"
#include "bpf/object.hpp"
#include "source_sweep.skel.h"

namespace bpfgate::agent {

namespace {
using SweepSkel = bpf::Skeleton<bpf::SkeletonTraits<source_sweep, source_sweep__open_opts,
                                                    source_sweep__load, source_sweep__destroy>>;
struct LinkDeleter {
  void operator()(bpf_link *l) const { bpf_link__destroy(l); }
};
}  // namespace

struct SourceSweeper::Impl {
  SweepSkel skel;
  std::unique_ptr<bpf_link, LinkDeleter> link;
};

SourceSweeper::SourceSweeper(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
SourceSweeper::~SourceSweeper() = default;

Result<std::unique_ptr<SourceSweeper>> SourceSweeper::open(int sources_fd) {
  auto skel = SweepSkel::open("source_sweep");
  if (!skel)
    return skel.error();
  if (int err = bpf_map__reuse_fd((*skel)->maps.bg_sources, sources_fd); err)
    return bpf::libbpf_error(err, "reuse the sources map");
  if (auto st = skel->load(); !st)
    return st.error();
  union bpf_iter_link_info linfo {};
  linfo.map.map_fd = static_cast<__u32>(sources_fd);
  LIBBPF_OPTS(bpf_iter_attach_opts, opts, .link_info = &linfo, .link_info_len = sizeof(linfo));
  bpf_link *link = bpf_program__attach_iter((*skel)->progs.bg_sweep_sources, &opts);
  if (!link)
    return bpf::libbpf_error(-errno, "attach the sweeper to the sources map");
  return std::unique_ptr<SourceSweeper>(
      new SourceSweeper(std::unique_ptr<Impl>(new Impl{std::move(*skel), {link, LinkDeleter{}}})));
}

Result<SourceSweeper::Pass> SourceSweeper::run(uint64_t cutoff_ns) {
  auto *bss = impl_->skel->bss;
  bss->cutoff_ns = cutoff_ns;
  bss->seen = 0;
  bss->removed = 0;
  int fd = bpf_iter_create(bpf_link__fd(impl_->link.get()));
  if (fd < 0)
    return bpf::libbpf_error(fd, "start the sweeper");
  bpf::UniqueFd it(fd);
  char buf[64];
  for (;;) {
    ssize_t n = ::read(it.get(), buf, sizeof(buf));
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0)
      return Error(errno, "run the sweeper");
    if (n == 0)
      break;
  }
  return Pass{bss->seen, bss->removed};
}

}  // namespace bpfgate::agent
