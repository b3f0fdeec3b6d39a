// Socket acceleration as the control plane sees it: enable (load, pin,
// attach the sock_ops program to a cgroup v2 and the sk_msg program to the
// sockhash), disable (stop redirecting, drain, unpin) and status, from any
// process. Everything is pinned under <bpffs>/bpfgate-accel/, so acceleration
// outlives the process that enabled it.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "bpfgate/abi/accel.h"
#include "util/result.hpp"

namespace bpfgate::agent::accel {

struct EnableOptions {
  // A cgroup v2 directory: an absolute path (/sys/fs/cgroup/unified/app), or a
  // path inside the unified hierarchy (/app or app). Empty: its root, that is
  // every process of the host.
  std::string cgroup;
  // Connections with either end on one of these ports. Empty: every port.
  std::vector<uint16_t> ports;
  // Prefixes both ends must be in ("127.0.0.0/8", "::1"). Empty: the
  // addresses of this network namespace (when enabling) plus loopback.
  std::vector<std::string> addresses;
  uint32_t max_sockets = BG_ACCEL_MAX_SOCKETS_DEFAULT;
  // Enable even when the kernel does not count redirected bytes in
  // FIONREAD/SIOCINQ (tcp_bpf has no ioctl before late-2025 kernels; Debian
  // 12's 6.1 lacks it). Programs that size their reads with FIONREAD, nginx
  // among them, then stall reading from accelerated sockets.
  bool ignore_fionread_check = false;
};

struct EnableReport {
  std::string cgroup;                  // absolute path
  std::vector<std::string> addresses;  // what went into the address filter
  uint32_t sockops_prog_id = 0;
  uint32_t msg_prog_id = 0;
  uint32_t link_id = 0;
  // Enabled again while a previous disable was still draining sockets: the
  // pinned sockhash was kept, with the sockets in it.
  bool resumed_draining = false;
};

struct DisableOptions {
  // How long to wait for accelerated sockets to hold no unread bytes before
  // giving up on them (they then stay pinned, see DisableReport::remaining).
  std::chrono::milliseconds drain_timeout{5000};
  // Remove sockets that still hold unread redirected bytes: those bytes are
  // lost (the kernel frees them with the socket's psock).
  bool force = false;
};

struct DisableReport {
  uint64_t released = 0;  // sockets taken out of the sockhash, nothing lost
  uint64_t dropped = 0;   // taken out with unread bytes (force)
  uint64_t dropped_bytes = 0;
  // Sockets still in the sockhash because their owner has not read what was
  // redirected to them. Acceleration is off for them (they use the normal TCP
  // path); the pins stay until they are released by another disable, or the
  // sockets close.
  uint64_t remaining = 0;
  bool removed = false;  // nothing left pinned
  std::string note;      // e.g. why draining could not check sockets
};

using Counters = std::array<bg_accel_counter, BG_ACCEL_EVENT_NR>;

enum class State { kOff, kEnabled, kDraining };
std::string to_string(State s);
std::string event_name(bg_accel_event e);

struct AccelStatus {
  State state = State::kOff;
  std::string cgroup;  // empty when off or draining
  uint64_t cgroup_id = 0;
  std::vector<uint16_t> ports;  // empty: every port
  std::vector<std::string> addresses;
  uint32_t max_sockets = 0;
  uint64_t sockets = 0;    // in the sockhash now
  uint64_t congested = 0;  // marked by the housekeeper (Housekeeper)
  uint32_t sockops_prog_id = 0;
  uint32_t msg_prog_id = 0;
  uint32_t link_id = 0;
  Counters counters{};
  // Sums of the counters above.
  uint64_t redirected_messages() const { return counters[BG_ACCEL_MSG_REDIRECTED].count; }
  uint64_t redirected_bytes() const { return counters[BG_ACCEL_MSG_REDIRECTED].bytes; }
  uint64_t fallback_messages() const;
  uint64_t fallback_bytes() const;
};

// Where the cgroup v2 hierarchy is mounted: /sys/fs/cgroup when that is
// cgroup2, else /sys/fs/cgroup/unified, else any cgroup2 mount.
Result<std::string> unified_hierarchy();
// An operator's --cgroup as an absolute cgroup v2 directory.
Result<std::string> resolve_cgroup(const std::string &cgroup);
// "443,8080,9000-9003" -> ports; an error names the bad item.
Result<std::vector<uint16_t>> parse_ports(const std::string &list);

std::string pin_dir(const std::string &bpffs);

Result<EnableReport> enable(const std::string &bpffs, const EnableOptions &opts);
Result<DisableReport> disable(const std::string &bpffs, const DisableOptions &opts);
Result<AccelStatus> status(const std::string &bpffs);

// Periodic care of the sockhash while acceleration runs; call check() every
// 100 ms to a few seconds (the agent does, on its timer; without the agent
// nothing does it). Each check walks the sockhash once and:
// - marks congested sockets: redirected bytes bypass TCP's flow control, so a
//   socket whose owner stops reading lets its peer queue into it up to the
//   host's TCP memory limit. A socket holding more than `backlog_limit`
//   unread bytes is marked; its peer then falls back to the normal TCP path
//   for good, where TCP's flow control holds it back.
// - releases sockets that fell back for good (their peer was never
//   accelerated, or they fell back for another reason) once nothing can be
//   redirected into them any more and their queue of redirected messages is
//   empty, on two checks in a row: they get the plain TCP code back.
struct HousekeepingReport {
  uint64_t sockets = 0;     // looked at
  uint64_t over_limit = 0;  // holding more than the limit now
  uint64_t newly_marked = 0;
  uint64_t released = 0;
  uint64_t max_unread = 0;  // the most any socket holds, in bytes
};

class Housekeeper {
 public:
  static Result<Housekeeper> open(const std::string &bpffs);
  Result<HousekeepingReport> check(uint64_t backlog_limit);

  Housekeeper(Housekeeper &&) noexcept;
  Housekeeper &operator=(Housekeeper &&) noexcept;
  ~Housekeeper();

 private:
  struct Impl;
  explicit Housekeeper(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// The most a normal TCP socket may buffer for receiving here (tcp_rmem's
// maximum), the guard's default limit.
uint64_t default_backlog_limit();

}  // namespace bpfgate::agent::accel
