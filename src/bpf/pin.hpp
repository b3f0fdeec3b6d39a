// bpffs: checking and mounting it, the pin rules every feature follows, pinning
// with mode 0600, and a lock so that CLI and agent never race on one directory.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "bpf/fd.hpp"
#include "util/result.hpp"

namespace bpfgate::bpf {

inline constexpr const char *kDefaultBpffs = "/sys/fs/bpf";

// Checks that `mount_point` is a bpffs. When it is the default mount point and
// nothing is mounted there, mounts one; otherwise says how to.
Status ensure_bpffs(const std::string &mount_point);

// The pin rules, one for every feature: a feature's objects are pinned in
// <bpffs>/<feature>/ (a feature per interface: <bpffs>/<feature>/<iface>/),
// one file per object, named by the feature's ABI header (BG_*_PIN_*). The
// names are what a restarted or upgraded bpfgate adopts: never renamed.
inline constexpr const char *kXdpPinDir = "bpfgate";  // the XDP filter's <feature>
std::string feature_dir(const std::string &bpffs, std::string_view feature);
std::string feature_dir(const std::string &bpffs, std::string_view feature, std::string_view iface);
std::string pin_path(const std::string &dir, std::string_view name);
// The XDP filter's: <bpffs>/bpfgate and <bpffs>/bpfgate/<iface>.
std::string pin_root(const std::string &bpffs);
std::string pin_dir(const std::string &bpffs, const std::string &iface);

// The directories under a feature's pin directory, sorted (a feature per
// interface: its interfaces, whether or not they still exist); none when
// `dir` is absent.
Result<std::vector<std::string>> pinned_dirs(const std::string &dir);

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

// An exclusive flock on a pin directory, released when the owner goes. A
// feature may remove its directory while holding the lock, so a waiter checks
// that the path still names the directory it locked and starts over if not:
// making it again (mode 0700) when `create`, else failing with ENOENT.
class DirLock {
 public:
  static Result<DirLock> acquire(const std::string &dir, bool create = false);

 private:
  explicit DirLock(UniqueFd fd) : fd_(std::move(fd)) {}
  UniqueFd fd_;
};

}  // namespace bpfgate::bpf
