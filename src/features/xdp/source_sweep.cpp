#include "features/xdp/source_sweep.hpp"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "bpf/error.hpp"
#include "bpf/object.hpp"
#include "source_sweep.skel.h"

namespace bpfgate::agent {

namespace {
using SweepSkel = bpf::Skeleton<bpf::SkeletonTraits<source_sweep, source_sweep__open_opts,
                                                    source_sweep__load, source_sweep__destroy>>;
}  // namespace

struct SourceSweeper::Impl {
  SweepSkel skel;
};

SourceSweeper::SourceSweeper(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
SourceSweeper::~SourceSweeper() = default;

Result<std::unique_ptr<SourceSweeper>> SourceSweeper::open(int sources_fd, int known_fd) {
  auto skel = SweepSkel::open("source_sweep");
  if (!skel)
    return skel.error();
  if (int err = bpf_map__reuse_fd((*skel)->maps.bg_sources, sources_fd); err)
    return bpf::libbpf_error(err, "reuse the sources map");
  if (int err = bpf_map__reuse_fd((*skel)->maps.bg_known, known_fd); err)
    return bpf::libbpf_error(err, "reuse the known map");
  if (auto st = skel->load(); !st)
    return st.error();
  return std::unique_ptr<SourceSweeper>(
      new SourceSweeper(std::unique_ptr<Impl>(new Impl{std::move(*skel)})));
}

Result<SourceSweeper::Pass> SourceSweeper::run(uint64_t cutoff_ns) {
  auto *bss = impl_->skel->bss;
  bss->cutoff_ns = cutoff_ns;
  LIBBPF_OPTS(bpf_test_run_opts, opts);
  if (int err = bpf_prog_test_run_opts(bpf_program__fd(impl_->skel->progs.bg_sweep_sources), &opts))
    return bpf::libbpf_error(err, "run the source sweeper");
  return Pass{bss->sources_seen, bss->sources_removed, bss->known_seen, bss->known_removed};
}

}  // namespace bpfgate::agent
