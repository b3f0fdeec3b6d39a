// What enable, disable, status and the housekeeper share: the objects of
// socket acceleration pinned under <bpffs>/bpfgate-accel/, listed once, and
// the lock on that directory.
#pragma once

#include <string>

#include "bpf/map.hpp"
#include "bpf/pin_set.hpp"
#include "bpfgate/abi/accel.h"
#include "bpfgate/abi/xdp.h"  // bg_lpm_key
#include "util/result.hpp"

namespace bpfgate::agent::accel {

using ConfigMap = bpf::Map<__u32, bg_accel_config>;
using PortsMap = bpf::Map<__u32, __u32>;
using AddrMap = bpf::Map<bg_lpm_key, __u32>;
using CounterMap = bpf::PerCpuMap<__u32, bg_accel_counter>;

// Every pin, in the order they are pinned: the cgroup link last, so that a
// failure before it leaves nothing running.
bpf::PinSet pins(const std::string &bpffs);
Error not_enabled(const std::string &dir);
// The pin directory's lock (making it when `create`); not_enabled when the
// directory is gone.
Result<bpf::DirLock> lock(const bpf::PinSet &set, bool create);
Result<uint64_t> count_sockets(int sockets_fd);

}  // namespace bpfgate::agent::accel
