// What socket acceleration needs to know about the host: where cgroup v2 is
// mounted and which cgroup a path or an id names (unified_hierarchy and
// resolve_cgroup, declared in accel.hpp, are defined here too), this network
// namespace's cookie and its addresses, and whether FIONREAD sees redirects.
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

// Whether FIONREAD on a socket in the sockhash counts the bytes redirected to
// it (tcp_bpf has no ioctl before late-2025 kernels), asked with a loopback
// pair put into the sockhash before it is attached.
Result<bool> fionread_counts_redirects(int sockets_fd, int sk_state_fd, int counters_fd,
                                       uint64_t netns);

}  // namespace bpfgate::agent::accel
