// What socket acceleration needs to know about the host: where cgroup v2 is
// mounted and which cgroup a path or an id names, this network namespace's
// cookie and its addresses.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/cidr.hpp"
#include "util/result.hpp"

namespace bpfgate::agent::accel {

// True if `path` is a directory on a cgroup2 file system.
bool is_cgroup2_dir(const std::string &path);
// The cgroup id of a cgroup v2 directory (its inode number).
Result<uint64_t> cgroup_id(const std::string &dir);
// The directory of cgroup `id` under the unified hierarchy `root`; empty when
// it no longer exists.
std::string cgroup_path_of(const std::string &root, uint64_t id);

// The cookie of the calling thread's network namespace (SO_NETNS_COOKIE).
Result<uint64_t> netns_cookie();

// Host prefixes (/32, /128) of every address in this network namespace, plus
// 127.0.0.0/8 and ::1, sorted, without duplicates.
Result<std::vector<core::Prefix>> local_prefixes();

}  // namespace bpfgate::agent::accel
