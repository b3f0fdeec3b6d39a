// The agent (`bpfgate run`) as the integration tests start it: its config,
// control socket and log in a test's scratch folder, the process in a
// namespace, waited for until it is up and stopped (SIGKILL) with its owner,
// so that a failing test still cleans up.
#pragma once

#include <chrono>
#include <filesystem>
#include <optional>
#include <string>

#include "support/system.hpp"

namespace bpfgate::test {

// `bpfgate run` in the background, its config, control socket and log in one
// folder (gw.yaml, agent.sock, agent.log), its stdout and stderr appended to
// the log across restarts. Used like the std::optional<Process> it holds:
// agent->kill(SIGTERM), agent->wait(5s), agent.reset(); a new start()
// replaces the process, which the destructor SIGKILLs if it still runs.
class AgentProcess {
 public:
  // How start() knows the agent is up.
  enum class Ready {
    // `bpfgate reload --socket SOCKET` succeeds (which applies the policy once more).
    answers,
    // Its log gains a "bpfgate agent running (config " line: nothing applied or audited twice.
    says_running,
  };

  explicit AgentProcess(const std::filesystem::path &dir);

  std::string config() const { return (dir_ / "gw.yaml").string(); }
  std::string socket() const { return (dir_ / "agent.sock").string(); }
  std::string log_path() const { return (dir_ / "agent.log").string(); }
  std::string log() const { return read_file(log_path()); }

  // Runs `exec LAUNCHER run -c CONFIG FLAGS >>LOG 2>&1`, LAUNCHER being what
  // comes before `run` (e.g. ns.exec() + bpfgate_bin(), with --bpffs or an
  // `env VAR=value` in front), and polls every 50 ms for at most `limit`
  // until it is up: false if it never was (the caller says so, with log()).
  bool start(const std::string &launcher, const std::string &flags = "",
             Ready ready = Ready::answers,
             std::chrono::milliseconds limit = std::chrono::milliseconds(5000));

  Process *operator->() { return &*process_; }
  explicit operator bool() const { return process_.has_value(); }
  void reset() { process_.reset(); }  // SIGKILL if it still runs
  // A clean stop, as a test's teardown wants one (its probes and pins gone):
  // SIGTERM, up to `timeout` for it to exit, then reset().
  void stop(std::chrono::milliseconds timeout = std::chrono::milliseconds(5000));

 private:
  std::filesystem::path dir_;
  std::optional<Process> process_;
};

}  // namespace bpfgate::test
