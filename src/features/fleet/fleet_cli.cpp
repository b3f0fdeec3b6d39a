// The fleet's verbs: `bpfgate fleet status [-j]`, asked of the running agent
// through its control socket (the counters live in the agent).
#include <nlohmann/json.hpp>

#include <cstring>

#include "bpf/fd.hpp"
#include "cli/commands.hpp"
#include "cli/registry.hpp"

namespace bpfgate::cli {

namespace {

int cmd_fleet_status(const Globals &g, const std::string &socket) {
  auto r = ask_agent(socket, "fleet status");
  if (!r)
    return fail(r.error());
  auto j = nlohmann::json::parse(*r, nullptr, false);
  if (!j.is_object())
    return fail(Error(EPROTO, "agent: an answer that is no JSON object"));
  if (g.json) {
    fmt::print("{}\n", j.dump());
    return 0;
  }
  fmt::print("fleet: node {}, {}{}, revision {}\n", j.value("node", ""),
             j.value("connected", false) ? "connected to " : "not connected",
             j.value("connected", false) ? j.value("endpoint", "")
                                         : " (" + j.value("last_error", std::string()) + ")",
             j.value("revision", 0));
  fmt::print(
      "  published {}  received {}  applied {}  refused {}  held back {}  queued {}\n"
      "  entries of other nodes in force {}  last lag {:.3f} s\n",
      j.value("published", 0), j.value("received", 0), j.value("applied", 0), j.value("refused", 0),
      j.value("held_back", 0), j.value("queued", 0), j.value("entries", 0), j.value("lag_s", 0.0));
  return 0;
}

}  // namespace

void add_fleet_commands(Registry &r) {
  auto *fleet = r.app().add_subcommand("fleet", "the fleet's shared blocklist (etcd)");
  fleet->require_subcommand(1);
  auto &socket = r.keep<std::string>();
  socket = "/run/bpfgate/agent.sock";
  auto *st = fleet->add_subcommand(
      "status", "connection, endpoint, revision, published/received/applied/refused counters");
  st->add_option("--socket", socket, "the agent's control socket")->capture_default_str();
  r.add(st, [&socket, &g = r.globals()] { return cmd_fleet_status(g, socket); });
}

}  // namespace bpfgate::cli
