#include "bpf/pin.hpp"

#include <bpf/bpf.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <filesystem>

#include "bpf/error.hpp"
#include "util/log.hpp"

namespace bpfgate::bpf {

namespace {
constexpr long kBpfFsMagic = 0xcafe4a11;

bool is_bpffs(const std::string &path) {
  struct statfs st {};
  return statfs(path.c_str(), &st) == 0 && st.f_type == kBpfFsMagic;
}
}  // namespace

Status ensure_bpffs(const std::string &mount_point) {
  if (is_bpffs(mount_point))
    return {};
  if (mount_point == kDefaultBpffs) {
    std::error_code ec;
    std::filesystem::create_directories(mount_point, ec);
    if (::mount("bpf", mount_point.c_str(), "bpf", 0, "mode=0700") == 0) {
      log::info("mounted bpffs at {}", mount_point);
      return {};
    }
    return make_error(errno,
                      "bpffs is not mounted at {} and mounting it failed; mount it with "
                      "`mount -t bpf bpf {}`",
                      mount_point, mount_point);
  }
  return make_error(ENOTDIR,
                    "{} is not a bpffs mount; mount one with `mount -t bpf bpf {}` or "
                    "leave --bpffs at its default ({})",
                    mount_point, mount_point, kDefaultBpffs);
}

std::string feature_dir(const std::string &bpffs, std::string_view feature) {
  return pin_path(bpffs, feature);
}
std::string feature_dir(const std::string &bpffs, std::string_view feature,
                        std::string_view iface) {
  return pin_path(feature_dir(bpffs, feature), iface);
}
std::string pin_path(const std::string &dir, std::string_view name) {
  return dir + "/" + std::string(name);
}
std::string pin_root(const std::string &bpffs) {
  return feature_dir(bpffs, kXdpPinDir);
}
std::string pin_dir(const std::string &bpffs, const std::string &iface) {
  return feature_dir(bpffs, kXdpPinDir, iface);
}

Result<std::vector<std::string>> pinned_dirs(const std::string &dir) {
  std::vector<std::string> out;
  std::error_code ec;
  if (!std::filesystem::exists(dir, ec))
    return out;
  for (const auto &e : std::filesystem::directory_iterator(dir, ec))
    if (e.is_directory())
      out.push_back(e.path().filename());
  if (ec)
    return Error(ec.value(), "list " + dir);
  std::sort(out.begin(), out.end());
  return out;
}

Status make_private_dir(const std::string &path) {
  std::error_code ec;
  std::filesystem::create_directories(path, ec);
  if (ec)
    return Error(ec.value(), "create directory " + path);
  if (::chmod(path.c_str(), 0700) != 0)
    return Error(errno, "chmod 0700 " + path);
  return {};
}

Status pin_fd(int fd, const std::string &path) {
  int err = bpf_obj_pin(fd, path.c_str());
  if (err)
    return libbpf_error(err, "pin " + path);
  if (::chmod(path.c_str(), 0600) != 0)
    return Error(errno, "chmod 0600 " + path);
  return {};
}

Status unpin(const std::string &path) {
  if (::unlink(path.c_str()) != 0 && errno != ENOENT)
    return Error(errno, "unpin " + path);
  return {};
}

Status remove_dir_if_empty(const std::string &path) {
  if (::rmdir(path.c_str()) != 0 && errno != ENOENT && errno != ENOTEMPTY)
    return Error(errno, "remove " + path);
  return {};
}

bool exists(const std::string &path) {
  return ::access(path.c_str(), F_OK) == 0;
}

Status check_pin_owner(const std::string &path) {
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0)
    return Error(errno, "open pinned object " + path);
  uid_t self = ::geteuid();
  if (st.st_uid == self && (st.st_mode & 077) == 0)
    return {};
  return make_error(EPERM,
                    "refusing pinned object {}: mode {:04o}, owner uid {} (bpfgate's pins are "
                    "0600 and owned by uid {}); someone else made or opened it up: inspect it, "
                    "remove it (`rm {}`) and attach again",
                    path, st.st_mode & 07777, st.st_uid, self, path);
}

Result<DirLock> DirLock::acquire(const std::string &dir, bool create) {
  for (int attempt = 0; attempt < 8; attempt++) {
    if (create)
      if (auto st = make_private_dir(dir); !st)
        return st.error();
    int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
      return Error(errno, "open " + dir + " for locking");
    UniqueFd owner(fd);
    if (::flock(fd, LOCK_EX) != 0)
      return Error(errno, "lock " + dir + " (another bpfgate is working on it)");
    struct stat locked {
    }, now{};
    if (::fstat(fd, &locked) == 0 && ::stat(dir.c_str(), &now) == 0 &&
        locked.st_ino == now.st_ino && locked.st_dev == now.st_dev)
      return DirLock(std::move(owner));
    if (!create && !exists(dir))
      return Error(ENOENT, "lock " + dir + " (removed meanwhile)");
  }
  return make_error(EBUSY, "{} keeps changing under bpfgate: another bpfgate is working on it",
                    dir);
}

}  // namespace bpfgate::bpf
