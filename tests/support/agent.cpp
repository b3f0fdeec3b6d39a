#include "support/agent.hpp"

#include <signal.h>

#include <thread>

namespace bpfgate::test {

// What the agent logs once it is set up and serves.
static constexpr const char *kRunning = "bpfgate agent running (config ";

AgentProcess::AgentProcess(const std::filesystem::path &dir) : dir_(dir) {}

bool AgentProcess::start(const std::string &launcher, const std::string &flags, Ready ready,
                         std::chrono::milliseconds limit) {
  size_t runs = occurrences(log(), kRunning);
  process_.emplace(Process::spawn("exec " + launcher + " run -c " + config() + " " + flags + " >>" +
                                  log_path() + " 2>&1"));
  auto up = [&] {
    if (ready == Ready::says_running)
      return occurrences(log(), kRunning) > runs;
    return run(bpfgate_bin() + " reload --socket " + socket() + " >/dev/null 2>&1").exit_code == 0;
  };
  constexpr auto kPoll = std::chrono::milliseconds(50);
  for (auto waited = std::chrono::milliseconds(0); waited < limit; waited += kPoll) {
    if (up())
      return true;
    std::this_thread::sleep_for(kPoll);
  }
  return false;
}

void AgentProcess::stop(std::chrono::milliseconds timeout) {
  if (process_) {
    process_->kill(SIGTERM);
    (void)process_->wait(timeout);
  }
  process_.reset();
}

}  // namespace bpfgate::test
