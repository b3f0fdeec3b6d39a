// bpffs: checking and mounting it, the per-interface pin directory, pinning
// with mode 0600, and a lock so that CLI and agent never race on one directory.
#pragma once

#include <string>

#include "bpf/fd.hpp"
#include "util/result.hpp"

namespace bpfgate::bpf {

inline constexpr const char *kDefaultBpffs = "/sys/fs/bpf";

// Checks that `mount_point` is a bpffs. When it is the default mount point and
// nothing is mounted there, mounts one; otherwise says how to.
Status ensure_bpffs(const std::string &mount_point);

// <bpffs>/bpfgate and <bpffs>/bpfgate/<iface>.
std::string pin_root(const std::string &bpffs);
std::string pin_dir(const std::string &bpffs, const std::string &iface);

Status make_private_dir(const std::string &path);  // mkdir -p, mode 0700
Status pin_fd(int fd, const std::string &path);    // pins, then chmod 0600
Status unpin(const std::string &path);             // unlink; absent is fine
Status remove_dir_if_empty(const std::string &path);
bool exists(const std::string &path);
// A pin bpfgate may trust: owned by the user it runs as (root) and with no
// group or other permission bits. Anything else (a pin another user made, or
// one opened up with chmod) is refused with its path, mode and owner. An
// absent pin is ENOENT, as opening it would say.
Status check_pin_owner(const std::string &path);

// An exclusive flock on a directory, released when the owner goes.
class DirLock {
 public:
  static Result<DirLock> acquire(const std::string &dir, bool wait = true);

 private:
  explicit DirLock(UniqueFd fd) : fd_(std::move(fd)) {}
  UniqueFd fd_;
};

}  // namespace bpfgate::bpf
