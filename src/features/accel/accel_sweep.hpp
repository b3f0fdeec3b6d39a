// The drain iterator of socket acceleration (bpf/accel/accel_sweep.bpf.c) attached
// to a sockhash: each scan lists every socket in it with the bytes its owner
// has not read yet. Used by disable (release only sockets that hold none) and
// by the backlog guard. Where the kernel refuses iter/sockmap, it walks the
// TCP sockets of the caller's network namespace instead (iter/tcp): sockets
// of the sockhash in another namespace are then not seen. Internal to
// src/agent.
#pragma once

#include <memory>
#include <vector>

#include "bpfgate/abi/accel.h"
#include "util/result.hpp"

namespace bpfgate::agent::accel {

class Sweeper {
 public:
  // sk_state_fd: the accel object's socket state map, shared with the iterator;
  // sockets_fd must stay open as long as the sweeper.
  static Result<Sweeper> open(int sockets_fd, int sk_state_fd);
  Result<std::vector<bg_accel_sweep_rec>> scan();

  Sweeper(Sweeper &&) noexcept;
  Sweeper &operator=(Sweeper &&) noexcept;
  ~Sweeper();

 private:
  struct Impl;  // the skeleton and the iterator link
  explicit Sweeper(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace bpfgate::agent::accel
