// What the socket acceleration tests share: a cgroup v2 the test creates (and
// removes, moving its processes out, also on failure), a network namespace
// with acceleration enabled in it, connected TCP pairs, and byte streams
// whose every byte is checked at its offset (a lost, doubled or reordered
// byte is found where it happened).
#pragma once

#include <sys/resource.h>
#include <sys/types.h>

#include <cstdint>
#include <string>
#include <utility>

#include <nlohmann/json.hpp>

#include "bpf/fd.hpp"
#include "support/system.hpp"

namespace bpfgate::test::accel {

// "bgacc<pid><suffix>": every namespace, cgroup and temp dir of these tests.
std::string name(const std::string &suffix);

// A cgroup under the unified hierarchy, removed with everything moved out.
class Cgroup {
 public:
  explicit Cgroup(const std::string &suffix);
  ~Cgroup();
  Cgroup(const Cgroup &) = delete;
  Cgroup &operator=(const Cgroup &) = delete;

  const std::string &path() const { return path_; }
  // `sh -c '<move this shell into the cgroup>; exec CMD'`.
  std::string run_in(const std::string &cmd) const;
  // Moves this test process (every thread) in; its new sockets belong here.
  void join();
  void leave();

 private:
  std::string path_, parent_, original_;
  bool joined_ = false;
};

// A network namespace with socket acceleration enabled in it, for the
// cgroup; disabled (--force) when the owner goes, whatever happened. Its pins
// live in a bpffs of its own (--bpffs), so that test runs on one machine
// never meet in /sys/fs/bpf/bpfgate-accel.
class Accel {
 public:
  Accel(const Netns &ns, const Cgroup &cg);
  ~Accel();
  Accel(const Accel &) = delete;
  Accel &operator=(const Accel &) = delete;

  // `bpfgate ARGS` in the namespace.
  CmdResult cli(const std::string &args) const;
  // Enables with extra arguments (ports, addresses); fails the test if it fails.
  void enable(const std::string &extra = "");
  nlohmann::json status() const;  // `bpfgate -j accel status`
  uint64_t redirected_bytes() const;
  uint64_t sockets() const;
  const std::string &bpffs() const { return bpffs_; }
  std::string pin_dir() const { return bpffs_ + "/bpfgate-accel"; }

 private:
  const Netns &ns_;
  const Cgroup &cg_;
  std::string bpffs_;
};

// A connected TCP pair in `ns` over loopback (127.0.0.1 or ::1).
struct Pair {
  bpf::UniqueFd client, server;
};
Pair connect_pair(const Netns &ns, int family);

// Deterministic byte streams: byte i of stream `seed`.
uint8_t pattern_byte(uint64_t seed, uint64_t i);
// Sends `total` bytes of stream `seed` in writes of `chunk`; false on error.
bool send_pattern(int fd, uint64_t seed, uint64_t total, size_t chunk = 65536);
struct ReadResult {
  uint64_t bytes = 0;
  int64_t first_bad = -1;  // offset of the first wrong byte, -1 if none
  bool eof = false;
  int error = 0;  // errno of the read that failed (EAGAIN: timed out)
  // EAGAIN from a blocking read long before its SO_RCVTIMEO: a socket in the
  // sockhash returns it when woken without data (see README, accel). Retried.
  uint64_t early_eagain = 0;
};
// Reads up to `total` bytes (until EOF or a read timeout) and checks them.
ReadResult recv_pattern(int fd, uint64_t seed, uint64_t total, size_t chunk = 65536);

void set_timeouts(int fd, int ms);
// Raises RLIMIT_NOFILE (soft and hard) to at least n.
bool raise_nofile(rlim_t n);

}  // namespace bpfgate::test::accel
