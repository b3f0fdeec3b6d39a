// `bpfgate run`: the long-running agent. One event loop (epoll) over signals
// (SIGHUP reloads, SIGTERM/SIGINT stop), a sweep timer and a control socket
// (`bpfgate reload`). It attaches to the interfaces its config names, or
// adopts the datapath it finds pinned there, so a restart never leaves a
// window without filtering.
#pragma once

#include <sys/signalfd.h>

#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>

#include "agent/link_watch.hpp"
#include "bpf/fd.hpp"
#include "features/feature.hpp"
#include "core/config.hpp"
#include "util/result.hpp"

namespace bpfgate::agent {

struct DaemonOptions {
  std::string config_path;
  std::string bpffs = "/sys/fs/bpf";
  bool keep_datapath = false;  // also settable in the config
};

// Everything the config asks of the machine that parsing alone cannot see
// (interfaces that exist): errors as "FILE:LINE: reason". The agent passes
// absent_interfaces_ok: an interface of interfaces: that is not there (yet)
// is waited for, not an error; `bpfgate check` does not, and reports it.
Status check_environment(const core::Config &c, bool absent_interfaces_ok = false);

class Daemon {
 public:
  static Result<std::unique_ptr<Daemon>> start(const DaemonOptions &opts);
  ~Daemon();
  // Runs until SIGTERM or SIGINT; then detaches unless keep_datapath.
  Status run();
  // Re-reads the config; on any error the running policy stays as it was.
  // `by`: who asked, as the audit log names them (util/audit.hpp).
  Status reload(const std::string &by);
  void sweep_now();

 private:
  explicit Daemon(DaemonOptions opts) : opts_(std::move(opts)) {}
  // Converges every feature on `c`, in order; each change audited as `by`'s.
  Status converge(const core::Config &c, const std::string &by);
  // A link event: each feature attaches again what came back.
  void on_links_changed();
  // Watches the features' fds (after each converge: a feature starts some).
  Status watch_features();
  Status reload_config(const std::string &by);
  // After setup: the agent's own seccomp filter (agent/seccomp.hpp), unless
  // the config says agent.seccomp: off. Logs which.
  static Status confine(const core::Config &c);
  // The control socket (agent/daemon_control.cpp): clients are non-blocking, each has 2 s to send
  // its one-line command, at most kMaxControlClients wait at once (a new one evicts the oldest);
  // none can hold up the loop.
  Status open_control_socket(const std::string &path);
  void accept_control();
  void on_control_client(int fd);
  void answer_control(int fd, const std::string &cmd);
  // A request a feature serves (`events`): true if one took the client.
  bool offer_control_client(int fd, ControlVerb verb, const std::string &cmd);
  void drop_control_client(int fd);
  int expire_control_clients();  // the epoll timeout until the next deadline
  Status open_loop();
  Status watch(int fd);  // adds fd to the loop's epoll, readable
  // On SIGTERM/SIGINT: detaches everything unless keep_datapath.
  void stop(const signalfd_siginfo &si);

  DaemonOptions opts_;
  core::Config config_;
  bool started_ = false;  // the first converge succeeded: config_ is in force
  Features features_;
  std::map<int, Feature *> feature_fds_;
  std::optional<LinkWatch> links_;
  bpf::UniqueFd epoll_, signals_, timer_, control_;
  std::string control_path_;
  struct ControlClient {
    bpf::UniqueFd fd;
    std::string in;
    std::chrono::steady_clock::time_point deadline;
  };
  std::map<int, ControlClient> control_clients_;
  std::optional<std::chrono::steady_clock::time_point> control_resume_;  // accept paused until
};

}  // namespace bpfgate::agent
