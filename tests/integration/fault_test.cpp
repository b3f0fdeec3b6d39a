// Faults (issue 13): the agent killed under a flood, killed in the middle of
// a policy apply, its XDP program replaced in place under a flood, and
// tables filled to the brim. Each test counts what reaches the gateway's
// stack (the namespace's Ip InReceives, which counts every IPv4 packet the
// filter passed, before any check of the stack's) besides the filter's own
// counters, and reads the pinned maps after the fault.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <optional>
#include <sstream>
#include <thread>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "features/xdp/filter.hpp"
#include "bpf/map.hpp"
#include "bpf/pin.hpp"
#include "bpfgate/abi/lb.h"
#include "bpf/xdp.hpp"
#include "core/cidr.hpp"
#include "support/agent.hpp"
#include "support/prometheus_parse.hpp"
#include "support/topology.hpp"

namespace bpfgate::test {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;

class FaultTest : public ::testing::Test {
 protected:
  std::string config_path() const { return agent_.config(); }
  std::string socket_path() const { return agent_.socket(); }

  void write_config(const std::string &body, const std::string &iface_extra = "",
                    const std::string &sweep = "100ms") {
    std::ofstream(config_path()) << fmt::format(
        "interfaces: [{{name: {}, mode: native{}}}]\nagent: {{control_socket: {}}}\n"
        "sweep: {{interval: {}}}\n{}",
        t_.gw_if(), iface_extra, socket_path(), sweep, body);
  }

  // `binary run` in the gateway namespace, with `env` (VAR=value ...) before
  // it; up once it says it runs (not asked with a reload: that would apply
  // the policy once more, and count as a crash point's pass).
  void start_agent(const std::string &binary = bpfgate_bin(), const std::string &env = "") {
    if (!agent_.start("env " + env + " " + t_.gw().exec() + binary, "",
                      AgentProcess::Ready::says_running, 10000ms))
      FAIL() << "the agent did not come up: " << agent_log();
  }

  std::string agent_log() const { return agent_.log(); }
  bool log_shows(const std::string &what, std::chrono::milliseconds within = 3000ms) const {
    auto until = std::chrono::steady_clock::now() + within;
    while (!contains(agent_log(), what)) {
      if (std::chrono::steady_clock::now() > until)
        return false;
      std::this_thread::sleep_for(50ms);
    }
    return true;
  }

  CmdResult reload() const { return run(bpfgate_bin() + " reload --socket " + socket_path()); }

  uint64_t counter(const char *verdict, const char *reason) const {
    return t_.counter(verdict, reason);
  }

  // IPv4 packets the gateway namespace's stack received (Ip: InReceives):
  // every frame the filter passed, and nothing it dropped.
  uint64_t stack_received() const {
    auto r = run_ok(t_.gw().exec() + "cat /proc/net/snmp");
    std::istringstream in(r.out);
    std::string names, values;
    while (std::getline(in, names) && std::getline(in, values)) {
      if (names.rfind("Ip: ", 0) != 0)
        continue;
      std::istringstream n(names), v(values);
      std::string name, value;
      while (n >> name && v >> value)
        if (name == "InReceives")
          return std::stoull(value);
    }
    ADD_FAILURE() << "no Ip InReceives in " << r.out;
    return 0;
  }

  // The per-source entry of addr, from `top`: its packets (0: no entry).
  uint64_t source_packets(const std::string &addr) const {
    auto top = json::parse(t_.bpfgate("-j top " + t_.gw_if() + " -c 1 -i 0.1 -n 1000").out, nullptr,
                           false);
    if (top.is_discarded())
      return 0;
    for (const auto &s : top["interfaces"][0]["sources"])
      if (s["addr"] == addr)
        return s["packets"].get<uint64_t>();
    return 0;
  }

  json list_blocks() const {
    auto r = t_.bpfgate("-j list --iface " + t_.gw_if());
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return json::parse(r.out, nullptr, false);
  }

  GatewayPair t_;
  static inline int n_ = 0;
  ScratchDir dir_{unique_prefix() + "-fault-" + std::to_string(n_++)};
  AgentProcess agent_{dir_.path()};
};

// Runs f on a thread; joined when the owner goes, also on a failed assertion.
class Background {
 public:
  explicit Background(std::function<void()> f) : t_(std::move(f)) {}
  ~Background() { join(); }
  void join() {
    if (t_.joinable())
      t_.join();
  }

 private:
  std::thread t_;
};

// The link pinned under the interface's pin directory keeps the program
// attached when the agent dies; the restarted agent adopts it (same link,
// same program: never detached and attached again). A denied and a blocked
// source flood across the kill and the restart: not one of their frames
// reaches the stack, their drops are counted without a gap, and the
// blocklist and per-source state are those of before.
TEST_F(FaultTest, SigkillUnderAFloodPassesNoFrameOfADeniedOrBlockedSource) {
  write_config("limits: {rate: 100, burst: 100}\ndeny: [198.18.0.66]\n");
  uint64_t rx_base = stack_received();
  start_agent();
  auto before = t_.status();
  uint32_t prog = before["prog_id"], link = before["link_id"];
  ASSERT_NE(prog, 0u);
  ASSERT_EQ(t_.bpfgate("block 198.18.0.80 --iface " + t_.gw_if()).exit_code, 0);
  ASSERT_EQ(t_.flood("198.18.0.9", 1000, 20000), 1000u);  // state to survive
  // The receiver sees exactly what the filter passed: the count can tell.
  uint64_t rx = stack_received();
  ASSERT_GE(counter("pass", "ok"), 100u);
  ASSERT_EQ(rx - rx_base, counter("pass", "ok"));
  uint64_t deny0 = counter("drop", "deny"), listed0 = counter("drop", "blocklist");

  uint64_t denied = 0, blocked = 0;
  {
    Background a([&] { denied = t_.flood("198.18.0.66", 60000, 20000); });   // 3 s
    Background b([&] { blocked = t_.flood("198.18.0.80", 30000, 10000); });  // 3 s
    std::this_thread::sleep_for(500ms);
    agent_->kill(SIGKILL);
    EXPECT_EQ(agent_->wait(2000ms), -1) << "not killed";
    EXPECT_EQ(t_.xdp_prog_id(), prog) << "the datapath went away with the agent";
    std::this_thread::sleep_for(500ms);  // flooded without an agent
    start_agent();
  }
  ASSERT_EQ(denied, 60000u);
  ASSERT_EQ(blocked, 30000u);
  EXPECT_EQ(stack_received(), rx) << "frames of the denied or blocked source reached the stack";
  EXPECT_EQ(counter("drop", "deny"), deny0 + denied) << "drops went uncounted or were reset";
  EXPECT_EQ(counter("drop", "blocklist"), listed0 + blocked);
  auto after = t_.status();
  EXPECT_EQ(after["prog_id"], prog) << "the restarted agent replaced the running program";
  EXPECT_EQ(after["link_id"], link) << "the restarted agent attached again";
  EXPECT_TRUE(contains(agent_log(), "adopted the running filter")) << agent_log();
  EXPECT_EQ(occurrences(agent_log(), "audit: action=attach "), 1u)
      << "attached again after the restart: " << agent_log();
  auto blocks = list_blocks();
  ASSERT_EQ(blocks["blocked"].size(), 1u) << blocks.dump();
  EXPECT_EQ(blocks["blocked"][0]["prefix"], "198.18.0.80/32");
  EXPECT_EQ(blocks["blocked"][0]["reason"], "manual");
  EXPECT_EQ(source_packets("198.18.0.9"), 1000u) << "per-source state was lost";
}

// Two policies that differ in every table an apply switches: the ACL, the
// port rules and the rules' actions. Four probes tell which one runs, and a
// mix of both shows as a pattern of neither.
constexpr const char *kPolicyA =
    "limits: {rate: 1000000}\ndeny: [198.18.0.66]\nrules: [{match: udp/53, action: drop}]\n"
    "auto_block: {after: 10s, ttl: 1m, never: [198.18.5.0/24]}\n";
constexpr const char *kPolicyB =
    "limits: {rate: 1000000}\ndeny: [198.18.0.67]\nrules: [{match: udp/54, action: drop}]\n"
    "auto_block: {after: 10s, ttl: 1m, never: [198.18.6.0/24]}\n";
const std::vector<bool> kRunsA = {false, true, false, true};  // passed: .66, .67, :53, :54
const std::vector<bool> kRunsB = {true, false, true, false};

struct CrashCase {
  const char *point;
  bool switched;  // the crash came after the flip of `active`: B runs
};
void PrintTo(const CrashCase &c, std::ostream *os) {
  *os << c.point;
}

class ApplyCrashTest : public FaultTest, public ::testing::WithParamInterface<CrashCase> {
 protected:
  // Which probes reached the stack (each 50 frames: all or none).
  std::vector<bool> probe() {
    const std::pair<const char *, const char *> probes[] = {{"198.18.0.66", ""},
                                                            {"198.18.0.67", ""},
                                                            {"198.18.0.70", "--dport 53"},
                                                            {"198.18.0.71", "--dport 54"}};
    std::vector<bool> passed;
    for (const auto &[src, extra] : probes) {
      uint64_t rx = stack_received();
      EXPECT_EQ(t_.flood(src, 50, 20000, extra), 50u);
      uint64_t got = stack_received() - rx;
      EXPECT_TRUE(got == 0 || got == 50) << src << " " << extra << ": " << got << " of 50";
      passed.push_back(got == 50);
    }
    return passed;
  }
  // The never-block list as the maps hold it.
  std::vector<std::string> noblock() {
    auto f = agent::PinnedFilter::open("/sys/fs/bpf", t_.gw_if());
    EXPECT_TRUE(f.ok()) << f.error().what();
    if (!f)
      return {};
    auto p = f->datapath().active_policy();
    EXPECT_TRUE(p.ok()) << p.error().what();
    std::vector<std::string> out;
    if (p)
      for (const auto &k : p->noblock)
        out.push_back(core::format_prefix(core::Prefix{k, k.prefixlen >= 96}));
    std::sort(out.begin(), out.end());
    return out;
  }
};

// Killed in the middle of an apply (a crash point of bpfgate-crashpoints,
// tests/support/crash_points.cpp, the 2nd time it is passed: the 1st is the
// attach's own apply), the datapath runs policy A or policy B whole, never
// a mix; the next start (the product's binary) writes the half-written
// generation again and runs B; the never-block list is B's alone.
TEST_P(ApplyCrashTest, AKillInTheMiddleOfAnApplyLeavesOneWholePolicy) {
  const CrashCase c = GetParam();
  write_config(kPolicyA);
  start_agent(crashpoints_bin(), fmt::format("BPFGATE_CRASH_AT={}#2", c.point));
  ASSERT_EQ(probe(), kRunsA);
  uint32_t gen = t_.status()["generation"];
  write_config(kPolicyB);
  auto r = reload();
  EXPECT_NE(r.exit_code, 0) << "the reload did not crash the agent at " << c.point;
  EXPECT_EQ(agent_->wait(5000ms), 137) << agent_log();
  EXPECT_TRUE(contains(agent_log(), "crash point reached")) << agent_log();
  EXPECT_EQ(probe(), c.switched ? kRunsB : kRunsA) << "after a crash at " << c.point;
  EXPECT_EQ(t_.status()["generation"], gen + (c.switched ? 1 : 0));

  start_agent();
  EXPECT_EQ(probe(), kRunsB) << "the restarted agent did not apply B";
  EXPECT_GT(t_.status()["generation"].get<uint32_t>(), gen);
  EXPECT_EQ(noblock(), std::vector<std::string>{"198.18.6.0/24"});
  // And A again, through both generations once more.
  write_config(kPolicyA);
  ASSERT_EQ(reload().exit_code, 0) << agent_log();
  EXPECT_EQ(probe(), kRunsA);
  EXPECT_EQ(noblock(), std::vector<std::string>{"198.18.5.0/24"});
}

INSTANTIATE_TEST_SUITE_P(Points, ApplyCrashTest,
                         ::testing::Values(CrashCase{"apply-installed", false},
                                           CrashCase{"apply-settings", false},
                                           CrashCase{"apply-switched", true}),
                         [](const auto &info) {
                           std::string n = info.param.point;
                           std::replace(n.begin(), n.end(), '-', '_');
                           return n;
                         });

// A full blocklist: `bpfgate block` says so (and what to do), the
// datapath's auto-blocks are refused and counted (status, /metrics) and the
// agent logs them; the source stays rate-limited, and is blocked once an
// entry is freed (its streak went on).
TEST_F(FaultTest, AFullBlocklistRefusesBlocksWithAReasonAndCountsAutoBlocks) {
  write_config(
      "limits: {rate: 100, burst: 100}\nauto_block: {after: 300ms, ttl: 1m}\n"
      "metrics: {listen: 127.0.0.1:9477}\n",
      "", "1s");
  start_agent();
  auto blocklist =
      bpf::Map<bg_lpm_key, bg_block>::open_pinned(t_.pin_dir() + "/" + BG_PIN_BLOCKLIST);
  ASSERT_TRUE(blocklist.ok()) << blocklist.error().what();
  auto info = bpf::map_info(blocklist->fd());
  ASSERT_TRUE(info.ok());
  // Filled with 2001:db8::/96 addresses, one syscall each, until refused.
  bg_lpm_key k{.prefixlen = 128, .addr = {0x20, 0x01, 0x0d, 0xb8}};
  bg_block b{.expires_ns = 0, .added_ns = 1, .drops = 0, .reason = BG_BLOCK_MANUAL, ._pad = 0};
  uint32_t n = 0;
  for (; n <= info->max_entries; n++) {
    uint32_t be = htonl(n);
    std::memcpy(k.addr + 12, &be, 4);
    if (bpf_map_update_elem(blocklist->fd(), &k, &b, BPF_NOEXIST) != 0)
      break;
  }
  ASSERT_EQ(n, info->max_entries) << "refused before it was full: " << strerror(errno);

  auto r = t_.bpfgate("block 198.18.0.80 --iface " + t_.gw_if());
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_TRUE(contains(r.err, fmt::format("the blocklist is full ({} entries): 198.18.0.80/32 was "
                                          "not blocked; unblock entries",
                                          info->max_entries)))
      << r.err;

  ASSERT_EQ(t_.flood("198.18.0.77", 10000, 10000), 10000u);  // 1 s over its limit
  auto s = t_.status();
  uint64_t failed = s["events"]["autoblocks_failed"];
  EXPECT_GE(failed, 1u) << s.dump();
  EXPECT_GT(counter("drop", "rate_limit"), 9000u) << "no longer rate-limited";

  EXPECT_TRUE(log_shows(
      fmt::format("auto-blocks refused: the blocklist is full ({} entries", info->max_entries),
      15000ms))
      << agent_log();
  auto scrape = run(t_.gw().exec() + "curl -sf --max-time 5 http://127.0.0.1:9477/metrics");
  ASSERT_EQ(scrape.exit_code, 0) << agent_log();
  auto p = prom::parse(scrape.out);
  ASSERT_TRUE(p.ok()) << p.error().what();
  EXPECT_GE(prom::value_of(*p, "bpfgate_autoblocks_failed_total", {{"interface", t_.gw_if()}}),
            static_cast<double>(failed));
  EXPECT_EQ(reload().exit_code, 0) << "the agent went away: " << agent_log();

  // One entry freed: the source's streak went on, so its next frames block it.
  ASSERT_EQ(t_.bpfgate("unblock 2001:db8::5 --iface " + t_.gw_if()).exit_code, 0);
  ASSERT_EQ(t_.flood("198.18.0.77", 6000, 10000), 6000u);  // past auto_block.after again
  bg_lpm_key src{.prefixlen = 128,
                 .addr = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 198, 18, 0, 77}};
  auto got = blocklist->lookup(src);
  ASSERT_TRUE(got.ok());
  ASSERT_TRUE(got->has_value()) << "not blocked once there was room";
  EXPECT_EQ((*got)->reason, static_cast<uint32_t>(BG_BLOCK_AUTO));
}

// A full known table (max_sources: 16): valid proofs beyond it are refused
// and counted, the clients still connect, the agent logs the refusals, and
// /metrics shows them.
TEST_F(FaultTest, AFullKnownTableRefusesProofsAndItsClientsStillConnect) {
  run_ok(t_.gw().exec() + "sysctl -qw net.ipv4.tcp_syncookies=2");
  write_config("limits: {rate: 1000, burst: 1000}\nmetrics: {listen: 127.0.0.1:9477}\n",
               ", max_sources: 16");
  start_agent();
  std::string batch;
  for (int i = 0; i < 20; i++)
    batch += fmt::format("addr add 198.18.0.{}/24 dev {}\n", 100 + i, t_.peer_if());
  std::ofstream(dir_.path() / "addrs") << batch;
  run_ok(t_.peer().exec() + "ip -batch " + dir_.file("addrs"));
  auto listener = t_.tcp_listen(8088);
  int connected = 0;
  for (int i = 0; i < 20; i++) {
    auto fd = t_.peer().socket(AF_INET, SOCK_STREAM);
    sockaddr_in from{}, to{};
    from.sin_family = to.sin_family = AF_INET;
    inet_pton(AF_INET, fmt::format("198.18.0.{}", 100 + i).c_str(), &from.sin_addr);
    inet_pton(AF_INET, GatewayPair::kGatewayAddr, &to.sin_addr);
    to.sin_port = htons(8088);
    timeval tv{2, 0};
    setsockopt(fd.get(), SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    ASSERT_EQ(bind(fd.get(), reinterpret_cast<sockaddr *>(&from), sizeof(from)), 0);
    if (connect(fd.get(), reinterpret_cast<sockaddr *>(&to), sizeof(to)) == 0 &&
        send(fd.get(), "x", 1, MSG_NOSIGNAL) == 1)
      connected++;
  }
  EXPECT_EQ(connected, 20);
  auto s = t_.status();
  EXPECT_EQ(s["known_sources"]["entries"], 16) << s.dump();
  EXPECT_EQ(s["known_sources"]["max_entries"], 16) << s.dump();
  uint64_t refused = s["events"]["proofs_refused"];
  EXPECT_GE(refused, 4u) << s.dump();
  EXPECT_TRUE(log_shows("proofs refused: the known table is full (16 entries")) << agent_log();
  auto scrape = run(t_.gw().exec() + "curl -sf --max-time 5 http://127.0.0.1:9477/metrics");
  ASSERT_EQ(scrape.exit_code, 0) << agent_log();
  auto p = prom::parse(scrape.out);
  ASSERT_TRUE(p.ok()) << p.error().what();
  EXPECT_GE(prom::value_of(*p, "bpfgate_proofs_refused_total", {{"interface", t_.gw_if()}}),
            static_cast<double>(refused));
  EXPECT_EQ(reload().exit_code, 0) << "the agent went away: " << agent_log();
}

// `bpfgate upgrade` loads this binary's program on the running filter's
// maps and swaps it in with one bpf_link update (BPF_F_REPLACE): ten swaps
// under a denied and a blocked flood let none of their frames through, the
// link stays, each swap runs a new program, counters and state go on, and
// the programs replaced are freed. Killed between load and swap, nothing
// changed; killed after the swap, the new program runs and the next upgrade
// goes on from there.
TEST_F(FaultTest, UpgradeReplacesTheProgramInPlaceUnderAFlood) {
  write_config("limits: {rate: 100, burst: 100}\ndeny: [198.18.0.66]\n");
  start_agent();
  auto before = t_.status();
  uint32_t first = before["prog_id"], link = before["link_id"];
  ASSERT_EQ(t_.bpfgate("block 198.18.0.80 --iface " + t_.gw_if()).exit_code, 0);
  ASSERT_EQ(t_.flood("198.18.0.9", 1000, 20000), 1000u);
  uint64_t rx = stack_received();
  uint64_t deny0 = counter("drop", "deny"), listed0 = counter("drop", "blocklist");
  uint64_t denied = 0, blocked = 0;
  std::vector<uint32_t> progs = {first};
  {
    Background a([&] { denied = t_.flood("198.18.0.66", 40000, 20000); });   // 2 s
    Background b([&] { blocked = t_.flood("198.18.0.80", 20000, 10000); });  // 2 s
    for (int i = 0; i < 10; i++) {
      auto r = t_.bpfgate("-j upgrade " + t_.gw_if());
      ASSERT_EQ(r.exit_code, 0) << r.err;
      auto j = json::parse(r.out);
      EXPECT_EQ(j["old_prog_id"], progs.back());
      EXPECT_NE(j["prog_id"], progs.back());
      EXPECT_EQ(j["link_id"], link);
      progs.push_back(j["prog_id"]);
      std::this_thread::sleep_for(100ms);
    }
  }
  ASSERT_EQ(denied, 40000u);
  ASSERT_EQ(blocked, 20000u);
  EXPECT_EQ(stack_received(), rx) << "frames of the denied or blocked source reached the stack";
  EXPECT_EQ(counter("drop", "deny"), deny0 + denied);
  EXPECT_EQ(counter("drop", "blocklist"), listed0 + blocked);
  auto after = t_.status();
  EXPECT_EQ(after["prog_id"], progs.back());
  EXPECT_EQ(after["link_id"], link);
  EXPECT_EQ(t_.xdp_prog_id(), progs.back());
  EXPECT_EQ(source_packets("198.18.0.9"), 1000u) << "per-source state was lost";
  EXPECT_EQ(list_blocks()["blocked"].size(), 1u);
  // The programs replaced are gone (their link and pin let go of them).
  bool freed = false;
  for (int i = 0; i < 40 && !freed; i++) {
    int fd = bpf_prog_get_fd_by_id(first);
    freed = fd < 0;
    if (fd >= 0) {
      ::close(fd);
      std::this_thread::sleep_for(50ms);
    }
  }
  EXPECT_TRUE(freed) << "program id " << first << " is still loaded";
  // The agent goes on with the new program: a reload, a verdict.
  ASSERT_EQ(reload().exit_code, 0) << agent_log();
  ASSERT_EQ(t_.flood("198.18.0.66", 100, 20000), 100u);
  EXPECT_EQ(counter("drop", "deny"), deny0 + denied + 100);

  // Killed with the new program loaded, not swapped in: nothing changed.
  auto crash = [&](const char *point) {
    return run(fmt::format("BPFGATE_CRASH_AT={} {}{} upgrade {}", point, t_.gw().exec(),
                           crashpoints_bin(), t_.gw_if()));
  };
  EXPECT_EQ(crash("replace-loaded").exit_code, 137);
  EXPECT_EQ(t_.xdp_prog_id(), progs.back());
  // Killed after the swap, before the pin follows: the new program runs.
  EXPECT_EQ(crash("replace-swapped").exit_code, 137);
  uint32_t swapped = t_.xdp_prog_id();
  EXPECT_NE(swapped, progs.back());
  EXPECT_EQ(t_.status()["prog_id"], swapped);
  auto r = t_.bpfgate("-j upgrade " + t_.gw_if());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(json::parse(r.out)["old_prog_id"], swapped);
  ASSERT_EQ(t_.flood("198.18.0.66", 100, 20000), 100u);
  EXPECT_EQ(counter("drop", "deny"), deny0 + denied + 200);
  EXPECT_EQ(stack_received(), rx);
  EXPECT_TRUE(contains(t_.bpfgate("upgrade " + t_.gw_if()).out, "replaced by"));
}

// The running program made another build's (tests/bpf/cas_lost_filter.bpf.c,
// the pipeline built otherwise: another tag) on the same maps, swapped in
// from here: a restarted agent finds it is not its version's and replaces
// it in place by its own, without a window (a denied flood across the
// restart: none of it reaches the stack) and keeping the counters.
TEST_F(FaultTest, ARestartedAgentReplacesAnotherVersionsProgramInPlace) {
  write_config("limits: {rate: 100, burst: 100}\ndeny: [198.18.0.66]\n");
  start_agent();
  uint32_t link = t_.status()["link_id"];
  uint32_t ours = t_.status()["prog_id"];
  // The other build, on the running program's maps (by name, from its map ids).
  ASSERT_NE(t_.run_other_build("cas_lost_filter.bpf.o", "bg_cas_lost_filter"), 0u);
  uint32_t theirs = t_.xdp_prog_id();
  ASSERT_NE(theirs, ours);
  ASSERT_EQ(t_.flood("198.18.0.66", 100, 20000), 100u);
  ASSERT_EQ(counter("drop", "deny"), 100u) << "the other build does not filter";
  // As a bpfgate older than the load balancer left its pins: no program array
  // to hand frames on with (the other build's program uses none either).
  ASSERT_EQ(::unlink((t_.pin_dir() + "/" BG_PIN_NEXT).c_str()), 0);

  uint64_t rx = stack_received();
  uint64_t denied = 0;
  {
    Background a([&] { denied = t_.flood("198.18.0.66", 40000, 20000); });  // 2 s
    std::this_thread::sleep_for(300ms);
    agent_->kill(SIGKILL);
    agent_->wait(2000ms);
    start_agent();
  }
  ASSERT_EQ(denied, 40000u);
  EXPECT_TRUE(contains(agent_log(), fmt::format("replaced the running filter program (id {}) by "
                                                "this version's (id ",
                                                theirs)))
      << agent_log();
  EXPECT_TRUE(contains(agent_log(), "audit: action=replace iface=" + t_.gw_if() +
                                        fmt::format(" old_prog_id={} prog_id=", theirs)))
      << agent_log();
  auto after = t_.status();
  EXPECT_NE(after["prog_id"], theirs);
  EXPECT_EQ(after["prog_id"], t_.xdp_prog_id());
  EXPECT_EQ(after["link_id"], link);
  EXPECT_EQ(stack_received(), rx) << "frames of the denied source reached the stack";
  EXPECT_EQ(counter("drop", "deny"), 100u + denied);
  // The new program's array is pinned, where the load balancer will find it.
  auto next = bpf::open_pinned(t_.pin_dir() + "/" BG_PIN_NEXT);
  ASSERT_TRUE(next.ok()) << next.error().what();
  bpf_map_info ni{};
  uint32_t nl = sizeof(ni);
  ASSERT_EQ(bpf_obj_get_info_by_fd(next->get(), &ni, &nl), 0);
  bpf::UniqueFd prog(bpf_prog_get_fd_by_id(t_.xdp_prog_id()));
  bpf_prog_info pi{};
  std::vector<uint32_t> used(64);
  pi.nr_map_ids = static_cast<uint32_t>(used.size());
  pi.map_ids = reinterpret_cast<uint64_t>(used.data());
  uint32_t pl = sizeof(pi);
  ASSERT_EQ(bpf_obj_get_info_by_fd(prog.get(), &pi, &pl), 0);
  used.resize(pi.nr_map_ids);
  EXPECT_NE(std::find(used.begin(), used.end(), ni.id), used.end())
      << "the pinned program array is not the running program's";
  // Its own version's program stays at the next restart.
  uint32_t now = after["prog_id"];
  agent_->kill(SIGKILL);
  agent_->wait(2000ms);
  start_agent();
  EXPECT_EQ(t_.xdp_prog_id(), now);
}

}  // namespace
}  // namespace bpfgate::test
