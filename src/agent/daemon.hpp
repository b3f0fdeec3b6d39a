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

#include "features/accel/accel.hpp"
#include "features/xdp/block_store.hpp"
#include "features/xdp/filter.hpp"
#include "agent/link_watch.hpp"
#include "features/observe/observer.hpp"
#include "bpf/fd.hpp"
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
  // Attaches, applies and detaches what `c` asks; each change audited as `by`'s.
  Status converge(const core::Config &c, const std::string &by);
  // An adopted filter attached directly runs this version's program: swapped
  // in place (features/xdp/replace.hpp) when the running one differs; a failure
  // leaves the running program and is logged.
  void upgrade_adopted(const std::string &iface, const core::Config &c, const std::string &by);
  // One interface of the config: adopt, apply, attach; an absent one is
  // waited for (absent_), with a warning.
  Status converge_iface(const core::InterfaceConfig &i, const core::Config &c,
                        const core::PolicyImage &image, const std::string &by);
  // The interface is there and its filter is not attached to it: attach the
  // pinned filter again (reattach) or, where that cannot be, a new one.
  Status bring_up(const core::InterfaceConfig &i, const core::Config &c,
                  const core::PolicyImage &image, const std::string &by);
  // A link event: interfaces of the config that went are said once (log and
  // audit), those that came back get their XDP filter, tc datapath and
  // probes again, with the policy in force.
  void on_links_changed();
  void note_gone(const std::string &iface);  // once per absence: a warning and an audit line
  // Manual blocks kept in <state_dir>/blocks (features/xdp/block_store.hpp): read at
  // start, put back into a filter attached anew, written when they change.
  void load_saved_blocks(const core::Config &c);
  void restore_blocks(const std::string &iface, Datapath &dp);
  void save_blocks();
  // Socket acceleration: enables what the config's accel: asks (or adopts
  // it, running), disables it when the section goes; watched on the sweep
  // timer (accel::Housekeeper).
  Status accel_converge(const core::Config &c, const std::string &by);
  void stop_accel(const std::string &by);
  void accel_housekeeping();
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
  void drop_control_client(int fd);
  int expire_control_clients();  // the epoll timeout until the next deadline
  Status open_loop();
  Status watch(int fd);  // adds fd to the loop's epoll, readable
  // On SIGTERM/SIGINT: detaches everything unless keep_datapath.
  void stop(const signalfd_siginfo &si);

  DaemonOptions opts_;
  core::Config config_;
  std::map<std::string, PinnedFilter> filters_;
  std::string blocks_path_;        // empty: state_dir off
  std::vector<SavedBlock> saved_;  // the manual blocks as the file holds them
  std::string save_error_;         // the last write's error, said once
  std::set<std::string> absent_;   // interfaces of the config not there now
  // The interface index each filter was last seen attached to: a device
  // being deleted keeps its name a moment after its XDP link is detached.
  std::map<std::string, uint32_t> on_ifindex_;
  std::optional<LinkWatch> links_;
  std::map<std::string, uint64_t> known_blocks_;  // what was logged as blocked
  // Refusals of full tables (autoblocks_failed, proofs_refused) as of the
  // last sweep, so that each sweep logs the new ones.
  std::map<std::string, StatTotals> refusals_seen_;
  void log_refusals(const std::string &iface, Datapath &dp);
  bpf::UniqueFd epoll_, signals_, timer_, control_;
  std::unique_ptr<Observer> observer_;
  std::string control_path_;
  struct ControlClient {
    bpf::UniqueFd fd;
    std::string in;
    std::chrono::steady_clock::time_point deadline;
  };
  std::map<int, ControlClient> control_clients_;
  std::optional<std::chrono::steady_clock::time_point> control_resume_;  // accept paused until
  bool accel_managed_ = false;
  bool housekeeper_warned_ = false;
  std::unique_ptr<accel::Housekeeper> housekeeper_;
};

}  // namespace bpfgate::agent
