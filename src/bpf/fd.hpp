// A move-only owner of a file descriptor, and the one way to duplicate one.
#pragma once

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <string_view>
#include <utility>

#include "util/result.hpp"

namespace bpfgate::bpf {

class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : fd_(fd) {}
  UniqueFd(UniqueFd &&o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
  UniqueFd &operator=(UniqueFd &&o) noexcept {
    if (this != &o) {
      reset();
      fd_ = std::exchange(o.fd_, -1);
    }
    return *this;
  }
  UniqueFd(const UniqueFd &) = delete;
  UniqueFd &operator=(const UniqueFd &) = delete;
  ~UniqueFd() { reset(); }

  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  int release() { return std::exchange(fd_, -1); }
  void reset(int fd = -1) {
    if (fd_ >= 0)
      ::close(fd_);
    fd_ = fd;
  }

 private:
  int fd_ = -1;
};

// A duplicate of `fd` (close-on-exec, above stdio) that the caller owns: to
// keep a loaded object's map or program once its skeleton goes. A negative
// fd is a missing object: ENOENT naming `what`.
inline Result<UniqueFd> dup_fd(int fd, std::string_view what) {
  if (fd < 0)
    return make_error(ENOENT, "the loaded object has no {}", what);
  int d = ::fcntl(fd, F_DUPFD_CLOEXEC, 3);
  if (d < 0)
    return make_error(errno, "duplicate the fd of {}", what);
  return UniqueFd(d);
}

}  // namespace bpfgate::bpf
