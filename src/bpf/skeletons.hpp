// The generated skeletons, each wrapped in Skeleton<>.
#pragma once

#include "bpf/object.hpp"
#include "xdp_filter.skel.h"

namespace bpfgate::bpf {

using XdpFilterSkel = Skeleton<
    SkeletonTraits<xdp_filter, xdp_filter__open_opts, xdp_filter__load, xdp_filter__destroy>>;

}  // namespace bpfgate::bpf
