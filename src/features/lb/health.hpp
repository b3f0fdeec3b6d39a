// Active health checks of the balancer's backends (issue 15), run inside the
// agent's single-threaded loop: one epoll fd of its own (fd()) holds a
// one-shot timerfd and every check's non-blocking socket, so the daemon
// watches one descriptor however many checks are in flight, and nothing
// ever blocks. Checks go out from the namespace the agent runs in.
//
// A check is a TCP connect (done when the handshake completes) or an HTTP
// GET (connect, request, the response's status line compared with
// `expect`), each bounded by `timeout`. Each backend is checked on its own
// interval; the timer is armed for the earliest deadline (the next check
// due or a check's timeout), so a timeout is seen when it happens.
//
// States: a backend starts Unknown and is kept out of traffic until its
// first check passes: one passing check brings a new backend Up (as Envoy
// does for hosts added to an actively checked cluster), one failing check
// makes it Down. From then on an Up backend goes Down after `fall`
// consecutive failures and a Down one comes back Up after `rise`
// consecutive passes. Unknown lasts one check (at most `timeout`): checks
// of a new backend start at once.
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "bpf/fd.hpp"
#include "util/result.hpp"

namespace bpfgate::features::lb {

enum class HealthCheck { None, Tcp, Http };

// How to check a backend (the service's `health:`, core::LbHealthConfig).
struct HealthSpec {
  HealthCheck check = HealthCheck::Tcp;
  std::string path = "/";      // HTTP: the request's target
  std::string expect = "200";  // HTTP: "200", "2xx", or a list "200,204"
  uint64_t interval_ns = 1'000'000'000;
  uint64_t timeout_ns = 500'000'000;
  uint32_t rise = 2;
  uint32_t fall = 3;
};

// One backend to check.
struct HealthTarget {
  std::string key;                     // stable name across set_backends, e.g. "198.18.2.3:80"
  std::string address;                 // IPv4 or IPv6 text
  uint16_t port = 0;                   // the traffic port
  std::optional<uint16_t> check_port;  // when the check uses another port
  HealthSpec spec;
};

enum class HealthState { Unknown, Up, Down };
const char *health_state_name(HealthState s);  // "unknown", "up", "down"

// A backend changed state (Unknown -> Up/Down, Up -> Down, Down -> Up).
struct HealthChange {
  std::string key;
  HealthState from = HealthState::Unknown;
  HealthState to = HealthState::Unknown;
  std::string reason;  // the last check's: "connect refused", "timeout after 500 ms", "status 503"
};

// What `lb list` and /metrics show of a backend.
struct HealthStatus {
  std::string key;
  HealthState state = HealthState::Unknown;
  bool last_ok = false;
  std::string last_reason;        // "" before the first check
  uint64_t last_duration_ns = 0;  // the last check's, start to result
  uint32_t consecutive_ok = 0;
  uint32_t consecutive_failed = 0;
  uint64_t checks = 0;
  uint64_t failures = 0;
};

// "2xx", "200" or "200,204" matched against a status code.
bool status_matches(const std::string &expect, int status);

class HealthChecker {
 public:
  // The epoll fd and its timerfd; nothing is checked before set_backends.
  static Result<HealthChecker> create();

  HealthChecker(HealthChecker &&) noexcept = default;
  HealthChecker &operator=(HealthChecker &&) noexcept = default;
  HealthChecker(const HealthChecker &) = delete;
  HealthChecker &operator=(const HealthChecker &) = delete;
  ~HealthChecker() = default;

  // The one fd for the agent's loop: readable when a check or the timer is.
  int fd() const { return epoll_.get(); }
  std::vector<int> fds() const { return {epoll_.get()}; }

  // The backends to check from now on. Those that stay (same key) keep their
  // state and counts; a changed address, port or check restarts their check
  // in flight. New ones are checked at once. Check::None backends are Up.
  // An unparsable address refuses the whole list, nothing changed.
  Status set_backends(const std::vector<HealthTarget> &targets);

  // Runs what is ready (sockets, the timer) without blocking.
  void on_readable(int fd);

  // The state changes since the last call, in the order they happened.
  std::vector<HealthChange> take_changes();

  std::vector<HealthStatus> status() const;
  std::optional<HealthStatus> status(const std::string &key) const;
  HealthState state(const std::string &key) const;

  // A backend and its check in flight (health.cpp).
  struct Backend {
    enum class Phase { Idle, Connecting, Sending, Reading };
    HealthTarget target;
    sockaddr_storage addr{};
    socklen_t addr_len = 0;
    HealthStatus status;
    bpf::UniqueFd sock;
    Phase phase = Phase::Idle;
    uint64_t started_ns = 0, deadline_ns = 0, next_due_ns = 0;
    std::string request, reply;
    size_t sent = 0;
  };

 private:
  HealthChecker(bpf::UniqueFd epoll, bpf::UniqueFd timer);

  void run_due(uint64_t now);
  void start_check(Backend &b, uint64_t now);
  void advance(Backend &b, uint32_t events, uint64_t now);
  void connected(Backend &b, uint64_t now);
  void send_more(Backend &b, uint64_t now);
  void read_more(Backend &b, uint64_t now);
  bool watch(Backend &b, uint32_t events, uint64_t now);
  void finish(Backend &b, bool ok, std::string reason, uint64_t now);
  void record(Backend &b, bool ok, const std::string &reason);
  void arm_timer();

  bpf::UniqueFd epoll_, timer_;
  std::map<std::string, Backend> backends_;
  std::unordered_map<int, std::string> by_fd_;  // check socket -> backend key
  std::vector<HealthChange> changes_;
};

}  // namespace bpfgate::features::lb
