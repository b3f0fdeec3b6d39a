// The observability skeletons, each wrapped in Skeleton<>.
#pragma once

#include "bpf/object.hpp"
#include "observe_tc.skel.h"
#include "observe_tp.skel.h"
#include "observe_trace.skel.h"

namespace bpfgate::bpf {

using ObserveTcSkel = Skeleton<
    SkeletonTraits<observe_tc, observe_tc__open_opts, observe_tc__load, observe_tc__destroy>>;
using ObserveTraceSkel = Skeleton<SkeletonTraits<observe_trace, observe_trace__open_opts,
                                                 observe_trace__load, observe_trace__destroy>>;
using ObserveTpSkel = Skeleton<
    SkeletonTraits<observe_tp, observe_tp__open_opts, observe_tp__load, observe_tp__destroy>>;

}  // namespace bpfgate::bpf
