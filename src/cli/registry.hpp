// How subcommands plug into the `bpfgate` binary: each group of commands
// lives in its own file and adds its subcommands, with what to run when one
// is chosen, to the CLI11 app. main.cpp only parses and dispatches.
#pragma once

#include <CLI/CLI.hpp>

#include <functional>
#include <memory>
#include <stdexcept>
#include <vector>

#include "cli/commands.hpp"
#include "core/input_guard.hpp"

namespace bpfgate::cli {

struct Command {
  CLI::App *sub;
  std::function<int()> run;  // the exit code
};

class Registry {
 public:
  Registry(CLI::App &app, Globals &g) : app_(app), g_(g) {}
  CLI::App &app() { return app_; }
  Globals &globals() { return g_; }
  // State the parsed options write to, kept alive until the command ran.
  template <class T>
  T &keep() {
    auto p = std::make_shared<T>();
    kept_.push_back(p);
    return *p;
  }
  void add(CLI::App *sub, std::function<int()> run) { commands_.push_back({sub, std::move(run)}); }
  const std::vector<Command> &commands() const { return commands_; }

 private:
  CLI::App &app_;
  Globals &g_;
  std::vector<std::shared_ptr<void>> kept_;
  std::vector<Command> commands_;
};

// An IFACE that cannot be an interface name (it would become a pin path under
// bpffs): the command is refused like any bad request (exit 1, "error: ..."),
// not as a usage error; main() catches it.
struct BadInterfaceName : std::runtime_error {
  using std::runtime_error::runtime_error;
};
inline CLI::Validator iface_name() {
  return CLI::Validator(
      [](std::string &s) {
        if (auto why = core::interface_name_problem(s))
          throw BadInterfaceName(*why);
        return std::string();
      },
      "", "interface name");
}

// The XDP filter: attach, set, detach, status, top (features/xdp/filter_cli.cpp).
void add_filter_commands(Registry &r);
// The agent and the policy: run, check, reload, block, unblock, list (features/xdp/policy_cli.cpp).
void add_policy_commands(Registry &r);
// Observability: events (features/observe/observe_cli.cpp).
void add_observe_commands(Registry &r);
// Socket acceleration: accel enable, disable, status (features/accel/accel_cli.cpp).
void add_accel_commands(Registry &r);
// The tc datapath: tc attach, detach, status, enable, disable; class list (features/tc/tc_cli.cpp).
void add_tc_commands(Registry &r);
// The load balancer: lb list, add, remove, drain, weight (features/lb/lb_cli.cpp).
void add_lb_commands(Registry &r);
// The fleet's shared blocklist: fleet status (features/fleet/fleet_cli.cpp).
void add_fleet_commands(Registry &r);

}  // namespace bpfgate::cli
