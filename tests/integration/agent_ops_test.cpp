// What an operator expects of the agent (`bpfgate run`, under its seccomp
// filter) across the machine's changes (issue 13).
// Interfaces that come and go: the gateway's veth is deleted and made again
// with the same name, and the agent attaches its pinned filter again within
// 2 s, with the policy, the blocklist, per-source state and counters it had;
// an interface the config names that is absent at start is waited for and
// attached when it appears, while `bpfgate check` still reports it.
// Manual blocks survive a reboot (bpffs wiped): kept in the state directory,
// put back with their expiry, expired and unblocked ones not; a bad line of
// that file is named and skipped.
#include <signal.h>

#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <optional>
#include <thread>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "support/agent.hpp"
#include "support/topology.hpp"

namespace bpfgate::test {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

class AgentOpsTest : public ::testing::Test {
 protected:
  void TearDown() override {
    agent_.reset();
    run("rm -rf /sys/fs/bpf/bpfgate-tc/" + t_.gw_if());
  }
  // The agent's bpfgate_interface_up for the gateway's interface ("" if none).
  std::string interface_up() const {
    auto r = run(t_.gw().exec() + "curl -sf --max-time 3 http://127.0.0.1:9477/metrics");
    std::string key = "bpfgate_interface_up{interface=\"" + t_.gw_if() + "\"} ";
    auto at = r.out.find(key);
    return at == std::string::npos ? "" : r.out.substr(at + key.size(), 1);
  }
  bool tc_attached() const {
    return contains(t_.bpfgate("-j tc status " + t_.gw_if()).out, "\"attached\":true");
  }

  std::string config_path() const { return agent_.config(); }
  std::string socket_path() const { return agent_.socket(); }
  std::string state_dir() const { return dir_.file("state"); }
  std::string blocks_file() const { return state_dir() + "/blocks"; }
  std::string read_blocks_file() const { return read_file(blocks_file()); }
  // The blocklist entry of `prefix` in `bpfgate -j list` (null: none).
  nlohmann::json listed(const std::string &prefix) const {
    auto j = nlohmann::json::parse(t_.bpfgate("-j list").out, nullptr, false);
    if (!j.is_discarded())
      for (const auto &e : j["blocked"])
        if (e["iface"] == t_.gw_if() && e["prefix"] == prefix)
          return e;
    return nullptr;
  }
  void stop_agent() {
    agent_->kill(SIGTERM);
    EXPECT_EQ(agent_->wait(5000ms), 0) << agent_log();
    agent_.reset();
  }

  void write_config(const std::string &body) {
    std::ofstream(config_path()) << fmt::format(
        "interfaces: [{{name: {}, mode: native}}]\nagent: {{control_socket: {}, state_dir: {}}}\n"
        "sweep: {{interval: 100ms}}\n{}",
        t_.gw_if(), socket_path(), state_dir(), body);
  }

  void start_agent() {
    if (!agent_.start(t_.gw().exec() + bpfgate_bin()))
      FAIL() << "the agent did not come up: " << agent_log();
  }

  std::string agent_log() const { return agent_.log(); }

  uint64_t counter(const char *verdict, const char *reason) const {
    return t_.counter(verdict, reason);
  }

  GatewayPair t_;
  static inline int n_ = 0;
  ScratchDir dir_{unique_prefix() + "-iface-" + std::to_string(n_++)};
  AgentProcess agent_{dir_.path()};
};

TEST_F(AgentOpsTest, AnInterfaceMadeAgainGetsItsFilterBackWithItsState) {
  write_config(
      fmt::format("limits: {{rate: 100, burst: 100}}\ndeny: [198.18.0.66]\n"
                  "metrics: {{listen: 127.0.0.1:9477}}\ntc:\n  interfaces: [{}]\n"
                  "  classes:\n    - {{name: web, direction: ingress, match: {{protocol: tcp}}}}\n",
                  t_.gw_if()));
  start_agent();
  uint32_t prog = t_.xdp_prog_id();
  ASSERT_NE(prog, 0u);
  ASSERT_TRUE(tc_attached());
  EXPECT_TRUE(contains(agent_log(), "seccomp: on")) << agent_log();
  EXPECT_EQ(interface_up(), "1");
  ASSERT_EQ(t_.flood("198.18.0.9", 1000, 20000), 1000u);  // per-source state to keep
  ASSERT_EQ(t_.bpfgate("block 198.18.0.80 --iface " + t_.gw_if()).exit_code, 0);
  ASSERT_EQ(t_.flood("198.18.0.66", 100, 20000), 100u);
  ASSERT_EQ(counter("drop", "deny"), 100u);

  t_.remove_link();
  auto gone = within(2000ms, [&] {
    return contains(agent_log(), "audit: action=iface_gone iface=" + t_.gw_if());
  });
  ASSERT_TRUE(gone) << agent_log();
  // While it is absent, status and /metrics say so.
  auto s = t_.status();
  EXPECT_EQ(s["attached"], false) << s.dump();
  EXPECT_TRUE(contains(t_.bpfgate("status " + t_.gw_if()).out, "DEFUNCT (interface gone"));
  EXPECT_EQ(interface_up(), "0");

  t_.make_link();
  // The audit line comes once the link is attached and pinned again.
  auto back = within(2000ms, [&] {
    return contains(agent_log(), "audit: action=attach iface=" + t_.gw_if() +
                                     " mode=native prog_id=" + std::to_string(prog) +
                                     " why=\"interface back\"");
  });
  ASSERT_TRUE(back) << "the filter was not attached again within 2 s: " << agent_log();
  std::cerr << "re-attached " << back->count() << " ms after the link was made again\n";
  EXPECT_EQ(t_.xdp_prog_id(), prog);
  EXPECT_EQ(t_.status()["attached"], true);
  EXPECT_EQ(interface_up(), "1");
  // The tc datapath went with the interface too, and is back.
  EXPECT_TRUE(within(2000ms, [&] { return tc_attached(); })) << agent_log();

  // The policy in force, the blocklist and the counters carried over.
  ASSERT_EQ(t_.flood("198.18.0.66", 100, 20000), 100u);
  EXPECT_EQ(counter("drop", "deny"), 200u);
  ASSERT_EQ(t_.flood("198.18.0.80", 100, 20000), 100u);
  EXPECT_EQ(counter("drop", "blocklist"), 100u);
  auto top = nlohmann::json::parse(t_.bpfgate("-j top " + t_.gw_if() + " -c 1 -i 0.1").out);
  bool kept = false;
  for (const auto &src : top["interfaces"][0]["sources"])
    kept = kept || (src["addr"] == "198.18.0.9" && src["packets"] == 1000);
  EXPECT_TRUE(kept) << "per-source state was lost: " << top.dump();
  EXPECT_FALSE(contains(agent_log(), "could not be attached")) << agent_log();
  EXPECT_FALSE(contains(agent_log(), "tc: attach again")) << agent_log();
  // An allowed client is served over the new interface.
  auto listener = t_.tcp_listen(8080);
  EXPECT_TRUE(t_.tcp_connect(8080));
  EXPECT_GE(counter("pass", "ok"), 1u);
}

// bypass: on|off on an interface sets the switch at start and at reloads
// (audited); without the key the switch is the CLI's. dry_run: on passes
// what the deny list would drop and counts it as would-drop.
TEST_F(AgentOpsTest, BypassFollowsTheConfigAndDryRunCountsWouldDrops) {
  auto config = [&](const std::string &iface_extra, const std::string &body) {
    std::ofstream(config_path()) << fmt::format(
        "interfaces: [{{name: {}, mode: native{}}}]\nagent: {{control_socket: {}, state_dir: "
        "{}}}\ndeny: [198.18.0.66]\n{}",
        t_.gw_if(), iface_extra, socket_path(), state_dir(), body);
  };
  auto ops = [&] { return t_.status()["operations"]; };
  auto reload = [&] {
    auto r = run(t_.gw().exec() + bpfgate_bin() + " reload --socket " + socket_path());
    EXPECT_EQ(r.exit_code, 0) << r.err << agent_log();
  };
  config(", bypass: on", "");
  start_agent();
  EXPECT_TRUE(contains(agent_log(), "audit: action=bypass iface=" + t_.gw_if() + " bypass=on"))
      << agent_log();
  EXPECT_EQ(ops()["bypass"], true);
  ASSERT_EQ(t_.flood("198.18.0.66", 100, 20000), 100u);
  EXPECT_EQ(counter("drop", "deny"), 0u);
  EXPECT_GE(ops()["bypassed"]["packets"].get<uint64_t>(), 100u);

  config(", bypass: off", "dry_run: on\n");
  reload();
  EXPECT_EQ(ops()["bypass"], false);
  EXPECT_EQ(ops()["dry_run"], true);
  ASSERT_EQ(t_.flood("198.18.0.66", 100, 20000), 100u);
  EXPECT_EQ(counter("drop", "deny"), 0u);
  EXPECT_EQ(ops()["would_drop"]["deny"]["packets"].get<uint64_t>(), 100u);

  // No key: the switch the CLI set stays through a reload.
  ASSERT_EQ(t_.bpfgate("bypass " + t_.gw_if() + " on").exit_code, 0);
  config("", "");
  reload();
  EXPECT_EQ(ops()["bypass"], true);
  EXPECT_EQ(ops()["dry_run"], false);
  ASSERT_EQ(t_.bpfgate("bypass " + t_.gw_if() + " off").exit_code, 0);
  ASSERT_EQ(t_.flood("198.18.0.66", 100, 20000), 100u);
  EXPECT_EQ(counter("drop", "deny"), 100u);
}

TEST_F(AgentOpsTest, AnInterfaceAbsentAtStartIsAttachedWhenItAppears) {
  write_config("deny: [198.18.0.66]\nmetrics: {listen: 127.0.0.1:9477}\n");
  t_.remove_link();
  // `bpfgate check` still reports it: a name that exists nowhere is a typo
  // until it appears.
  auto check = t_.bpfgate("check " + config_path());
  EXPECT_EQ(check.exit_code, 1);
  EXPECT_TRUE(contains(check.err, "unknown interface '" + t_.gw_if() + "'")) << check.err;
  start_agent();
  EXPECT_TRUE(contains(agent_log(), config_path() + ":1: interface '" + t_.gw_if() +
                                        "' is not in this network namespace: its filter is "
                                        "attached when it appears"))
      << agent_log();
  EXPECT_EQ(interface_up(), "0");  // nothing pinned to show in status yet; /metrics says so

  t_.make_link();
  // The program shows on the link a moment before the agent has pinned it and
  // logged the attach; /metrics reads the pins, so wait for the audit line.
  auto up = within(
      2000ms, [&] { return contains(agent_log(), "audit: action=attach iface=" + t_.gw_if()); });
  ASSERT_TRUE(up) << "not attached within 2 s of appearing: " << agent_log();
  EXPECT_NE(t_.xdp_prog_id(), 0u);
  EXPECT_EQ(interface_up(), "1");
  EXPECT_TRUE(contains(agent_log(), "why=\"interface appeared\"")) << agent_log();
  ASSERT_EQ(t_.flood("198.18.0.66", 100, 20000), 100u);
  EXPECT_EQ(counter("drop", "deny"), 100u);
  auto listener = t_.tcp_listen(8080);
  EXPECT_TRUE(t_.tcp_connect(8080));
}

// A reboot wipes bpffs: the agent stopped (without keep_datapath it detaches
// and removes its pins, as a fresh bpffs has none) and started again puts the
// manual blocks back from its state directory, each with its expiry.
TEST_F(AgentOpsTest, ManualBlocksSurviveAWipedBpffs) {
  write_config("");
  start_agent();
  auto block = [&](const std::string &args) {
    auto r = t_.bpfgate("block " + args + " --iface " + t_.gw_if());
    EXPECT_EQ(r.exit_code, 0) << r.err;
  };
  block("198.18.0.80");
  block("198.18.0.81 --ttl 10m");
  block("198.18.0.82");
  block("198.18.0.83 --ttl 1s");  // expires while the agent is down
  ASSERT_TRUE(within(2000ms, [&] { return contains(read_blocks_file(), "198.18.0.83/32"); }))
      << read_blocks_file() << agent_log();
  ASSERT_EQ(t_.bpfgate("unblock 198.18.0.82 --iface " + t_.gw_if()).exit_code, 0);
  ASSERT_TRUE(within(2000ms, [&] { return !contains(read_blocks_file(), "198.18.0.82/32"); }))
      << read_blocks_file();
  std::string file = read_blocks_file();
  EXPECT_TRUE(contains(file, t_.gw_if() + " 198.18.0.80/32 never\n")) << file;
  EXPECT_TRUE(contains(file, t_.gw_if() + " 198.18.0.81/32 20")) << file;  // an expiry, UTC

  stop_agent();
  ASSERT_FALSE(std::filesystem::exists(t_.pin_dir()));
  std::this_thread::sleep_for(1100ms);
  start_agent();
  EXPECT_TRUE(contains(agent_log(), t_.gw_if() + ": put back 2 manual blocks from " +
                                        blocks_file() + " (1 expired meanwhile, dropped)"))
      << agent_log();
  EXPECT_TRUE(contains(
      agent_log(), "audit: action=block iface=" + t_.gw_if() + " prefix=198.18.0.80/32 ttl=none"))
      << agent_log();
  auto e80 = listed("198.18.0.80/32"), e81 = listed("198.18.0.81/32");
  ASSERT_FALSE(e80.is_null());
  EXPECT_TRUE(e80["ttl_s"].is_null()) << e80.dump();
  ASSERT_FALSE(e81.is_null());
  EXPECT_EQ(e81["reason"], "manual");
  EXPECT_GT(e81["ttl_s"].get<double>(), 590.0) << e81.dump();
  EXPECT_LE(e81["ttl_s"].get<double>(), 600.0) << e81.dump();
  EXPECT_TRUE(listed("198.18.0.82/32").is_null()) << "an unblocked entry came back";
  EXPECT_TRUE(listed("198.18.0.83/32").is_null()) << "an expired entry came back";
  // Enforced: the restored block drops real frames.
  ASSERT_EQ(t_.flood("198.18.0.80", 100, 20000), 100u);
  EXPECT_EQ(counter("drop", "blocklist"), 100u);
  ASSERT_TRUE(within(2000ms, [&] { return !contains(read_blocks_file(), "198.18.0.83/32"); }))
      << read_blocks_file();
}

// A line of the blocks file that cannot be read is named with its line and
// skipped; the agent starts with the others.
TEST_F(AgentOpsTest, ABadLineOfTheBlocksFileIsNamedAndSkipped) {
  std::filesystem::create_directories(state_dir());
  std::ofstream(blocks_file()) << "# kept\n"
                               << t_.gw_if() << " 198.18.0.90 never\n"
                               << t_.gw_if() << " 198.18.0.300/32 never\n"
                               << t_.gw_if() << " 198.18.0.91/32 tomorrow\n"
                               << t_.gw_if() << " 198.18.0.92/32\n";
  write_config("");
  start_agent();
  std::string log = agent_log();
  EXPECT_TRUE(contains(log, blocks_file() + ":3: ")) << log;
  EXPECT_TRUE(contains(log, blocks_file() + ":4: expiry 'tomorrow' is neither")) << log;
  EXPECT_TRUE(contains(log, blocks_file() + ":5: expected 'INTERFACE PREFIX EXPIRY'")) << log;
  EXPECT_TRUE(contains(log, "3 bad lines skipped: the agent starts without those entries")) << log;
  EXPECT_FALSE(listed("198.18.0.90/32").is_null()) << log;
  EXPECT_TRUE(listed("198.18.0.91/32").is_null());
}

}  // namespace
}  // namespace bpfgate::test
