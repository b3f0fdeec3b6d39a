#include "agent/source_sweep.hpp"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "bpf/error.hpp"
#include "bpf/iter.hpp"
#include "bpf/object.hpp"
#include "source_sweep.skel.h"

namespace bpfgate::agent {

namespace {
using SweepSkel = bpf::Skeleton<bpf::SkeletonTraits<source_sweep, source_sweep__open_opts,
                                                    source_sweep__load, source_sweep__destroy>>;
}  // namespace

struct SourceSweeper::Impl {
  SweepSkel skel;
  bpf::IterLink link;
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
  auto link = bpf::IterLink::attach((*skel)->progs.bg_sweep_sources, sources_fd,
                                    "the sweeper to the sources map");
  if (!link)
    return link.error();
  return std::unique_ptr<SourceSweeper>(
      new SourceSweeper(std::unique_ptr<Impl>(new Impl{std::move(*skel), std::move(*link)})));
}

Result<SourceSweeper::Pass> SourceSweeper::run(uint64_t cutoff_ns) {
  auto *bss = impl_->skel->bss;
  bss->cutoff_ns = cutoff_ns;
  bss->seen = 0;
  bss->removed = 0;
  if (auto r = impl_->link.read_all(); !r)  // the program writes nothing: it counts
    return r.error();
  return Pass{bss->seen, bss->removed};
}

}  // namespace bpfgate::agent
