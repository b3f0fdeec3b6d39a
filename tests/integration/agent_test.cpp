// The agent (`bpfgate run`) over veth in namespaces: it applies its config,
// reloads under traffic without mis-verdicting a packet, refuses a broken
// config with its line while the old policy keeps running, auto-blocks and
// releases, shows the datapath's events in status and /metrics, and survives
// SIGKILL with the datapath filtering throughout.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <gtest/gtest.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <thread>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "support/agent.hpp"
#include "support/prometheus_parse.hpp"
#include "support/topology.hpp"

namespace bpfgate::test {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;

class AgentTest : public ::testing::Test {
 protected:
  std::string config_path() const { return agent_.config(); }
  std::string socket_path() const { return agent_.socket(); }

  void write_config(const std::string &body) {
    std::ofstream(config_path()) << fmt::format(
        "interfaces: [{{name: {}, mode: native}}]\nagent: {{control_socket: {}, state_dir: {}}}\n"
        "sweep: {{interval: 100ms}}\n{}",
        t_.gw_if(), socket_path(), dir_.string(), body);
  }

  void start_agent(const std::string &flags = "") {
    if (!agent_.start(t_.gw().exec() + bpfgate_bin(), flags))
      FAIL() << "the agent did not come up: " << agent_log();
  }

  std::string agent_log() const { return agent_.log(); }

  CmdResult reload() const { return run(bpfgate_bin() + " reload --socket " + socket_path()); }

  uint64_t counter(const char *verdict, const char *reason) const {
    return t_.counter(verdict, reason);
  }

  GatewayPair t_;
  static inline int n_ = 0;
  ScratchDir dir_{unique_prefix() + "-agent-" + std::to_string(n_++)};
  AgentProcess agent_{dir_.path()};
};

TEST_F(AgentTest, AppliesItsConfigAndDetachesOnSigterm) {
  write_config(
      "limits: {rate: 100, burst: 100}\ndeny: [198.18.0.66]\nrules:\n"
      "  - {match: udp/53, action: drop}\n");
  start_agent();
  EXPECT_NE(t_.xdp_prog_id(), 0u);
  ASSERT_EQ(t_.flood("198.18.0.66", 500, 20000), 500u);
  ASSERT_EQ(t_.flood("198.18.0.70", 500, 20000, "--dport 53"), 500u);
  ASSERT_EQ(t_.flood("198.18.0.71", 500, 20000), 500u);
  EXPECT_EQ(counter("drop", "deny"), 500u);
  EXPECT_EQ(counter("drop", "rule"), 500u);
  // 500 packets in 25 ms against 100 pps, burst 100: the burst and a token or so.
  EXPECT_GE(counter("pass", "ok"), 100u);
  EXPECT_LE(counter("pass", "ok"), 105u);
  EXPECT_EQ(counter("drop", "rate_limit"), 500u - counter("pass", "ok"));

  agent_->kill(SIGTERM);
  EXPECT_EQ(agent_->wait(5000ms), 0) << agent_log();
  EXPECT_EQ(t_.xdp_prog_id(), 0u) << "SIGTERM without keep_datapath detaches";
  EXPECT_FALSE(std::filesystem::exists(t_.pin_dir()));
  EXPECT_FALSE(std::filesystem::exists(socket_path()));
}

// One agent per control socket: a second one on the same socket says who
// answers there and exits before it touches the datapath; the first goes on.
TEST_F(AgentTest, ASecondAgentOnTheSameSocketTouchesNothing) {
  write_config("limits: {rate: 100, burst: 100}\n");
  start_agent();
  uint32_t prog = t_.xdp_prog_id();
  ASSERT_NE(prog, 0u);
  auto second = run(t_.gw().exec() + bpfgate_bin() + " run -c " + config_path());
  EXPECT_EQ(second.exit_code, 1) << second.err;
  EXPECT_TRUE(contains(second.err, "another agent answers on " + socket_path())) << second.err;
  EXPECT_EQ(t_.xdp_prog_id(), prog);
  EXPECT_EQ(reload().exit_code, 0) << "the first agent no longer answers";
  EXPECT_TRUE(std::filesystem::exists(socket_path()));
}

// A metrics address that cannot be bound ends the start before anything is
// attached (it used to attach, fail, and leave a restart loop to systemd).
TEST_F(AgentTest, AMetricsPortInUseFailsTheStartBeforeAttaching) {
  auto taken = t_.gw().socket(AF_INET, SOCK_STREAM);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(9477);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(bind(taken.get(), reinterpret_cast<sockaddr *>(&a), sizeof(a)), 0) << strerror(errno);
  ASSERT_EQ(listen(taken.get(), 1), 0);
  write_config("metrics: {listen: 127.0.0.1:9477}\n");
  auto r = run(t_.gw().exec() + bpfgate_bin() + " run -c " + config_path());
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_TRUE(contains(r.err, "serve metrics on 127.0.0.1:9477: cannot bind")) << r.err;
  EXPECT_EQ(t_.xdp_prog_id(), 0u) << "attached before finding the port taken";
  EXPECT_FALSE(std::filesystem::exists(t_.pin_dir()));
  EXPECT_FALSE(std::filesystem::exists(socket_path()));
}

// /metrics faces whoever can reach its port: GET and HEAD only (a POST gets
// 405 at once; it used to hang), a request head over 8 KiB gets 431, and 300
// idle connections (slowloris) do not keep a scrape out; the server closes
// an idle connection at its 5 s deadline.
TEST_F(AgentTest, MetricsServesScrapesBesideHostileClients) {
  write_config("metrics: {listen: 127.0.0.1:9477}\n");
  start_agent();
  auto curl = [&](const std::string &args) {
    return run(t_.gw().exec() + "curl -s -o /dev/null -w '%{http_code}' --max-time 3 " + args +
               " http://127.0.0.1:9477/metrics");
  };
  EXPECT_EQ(curl("").out, "200");
  EXPECT_EQ(curl("-I").out, "200");
  EXPECT_EQ(curl("-X POST").out, "405");
  EXPECT_EQ(curl("-X POST --data x").out, "405");
  EXPECT_EQ(curl("-X DELETE").out, "405");
  EXPECT_EQ(curl("-H \"X-Big: $(head -c 10000 /dev/zero | tr '\\0' a)\"").out, "431");

  std::vector<bpf::UniqueFd> idle;
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(9477);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  for (int i = 0; i < 300; i++) {
    auto fd = t_.gw().socket(AF_INET, SOCK_STREAM);
    ASSERT_EQ(connect(fd.get(), reinterpret_cast<sockaddr *>(&a), sizeof(a)), 0) << i;
    if (i % 2) {  // half of them start a request and never finish it
      ASSERT_EQ(send(fd.get(), "GET /metrics HTTP/1.1\r\n", 23, MSG_NOSIGNAL), 23);
    }
    idle.push_back(std::move(fd));
  }
  auto t0 = std::chrono::steady_clock::now();
  auto scrape = run(t_.gw().exec() + "curl -sf --max-time 3 http://127.0.0.1:9477/metrics");
  auto took = std::chrono::steady_clock::now() - t0;
  EXPECT_EQ(scrape.exit_code, 0) << "no scrape beside 300 idle connections";
  EXPECT_TRUE(contains(scrape.out, "bpfgate_packets_total")) << scrape.out;
  EXPECT_LT(took, 2500ms) << "a hang, not a measurement";
  // The last idle connection is closed by the server at its deadline.
  std::this_thread::sleep_for(5500ms);
  char c;
  EXPECT_EQ(recv(idle.back().get(), &c, 1, MSG_DONTWAIT), 0) << "still open after 5 s";
}

// The control socket is made 0600 by bind itself, and the agent serves root
// only, checked from the kernel's SO_PEERCRED even where the mode is opened
// up; each request is logged with who asked.
TEST_F(AgentTest, TheControlSocketServesRootOnlyAndLogsWhoAsked) {
  write_config("limits: {rate: 100, burst: 100}\n");
  start_agent();
  struct stat st {};
  ASSERT_EQ(stat(socket_path().c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  EXPECT_TRUE(contains(agent_log(),
                       "audit: action=reload path=" + config_path() + " result=ok by=uid:0,pid:"))
      << agent_log();
  ASSERT_EQ(chmod(socket_path().c_str(), 0666), 0);
  ASSERT_EQ(chmod(dir_.path().c_str(), 0755), 0);
  auto r = run("setpriv --reuid=65534 --regid=65534 --clear-groups " + bpfgate_bin() +
               " reload --socket " + socket_path());
  EXPECT_EQ(r.exit_code, 1) << r.out << r.err;
  EXPECT_TRUE(contains(r.err, "the agent serves root only")) << r.err;
  EXPECT_TRUE(contains(agent_log(), "control: refused 'reload' from uid 65534")) << agent_log();
  EXPECT_EQ(reload().exit_code, 0);
}

// A client that connects and says nothing, and a thousand that connect at
// once, do not hold up the agent: a reload right after is answered at once
// (each silent client has 2 s, at most 64 wait, the oldest evicted).
TEST_F(AgentTest, SilentControlClientsDoNotHoldUpTheAgent) {
  write_config("limits: {rate: 100, burst: 100}\n");
  start_agent();
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  std::strncpy(a.sun_path, socket_path().c_str(), sizeof(a.sun_path) - 1);
  std::vector<bpf::UniqueFd> silent;
  int connected = 0;
  for (int i = 0; i < 1000; i++) {
    bpf::UniqueFd fd(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
    if (connect(fd.get(), reinterpret_cast<sockaddr *>(&a), sizeof(a)) == 0)
      connected++;
    silent.push_back(std::move(fd));
  }
  EXPECT_GT(connected, 0);
  auto t0 = std::chrono::steady_clock::now();
  auto r = reload();
  auto took = std::chrono::steady_clock::now() - t0;
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_LT(took, 1500ms) << "held up by silent clients (a hang bound, not a measurement)";
  std::this_thread::sleep_for(2500ms);  // past every silent client's deadline
  char c;
  EXPECT_EQ(recv(silent.front().get(), &c, 1, MSG_DONTWAIT), 0) << "a silent client kept open";
  EXPECT_EQ(reload().exit_code, 0);
}

// /metrics says which config is in force (its hash changes with the file)
// and when the last reload was tried, and with what result.
TEST_F(AgentTest, MetricsNameTheConfigInForceAndTheLastReload) {
  write_config("limits: {rate: 100, burst: 100}\n");
  start_agent();
  auto scrape = [&] {
    return prom::parse(
        run_ok(t_.gw().exec() + "curl -sf --max-time 3 http://127.0.0.1:9477/metrics").out);
  };
  auto hash_of = [](const prom::Parsed &p) {
    for (const auto &s : p.samples)
      if (s.name == "bpfgate_agent_config_info")
        return s.labels.count("hash") ? s.labels.at("hash") : std::string();
    return std::string();
  };
  auto first = scrape();
  ASSERT_TRUE(first.ok()) << first.error().what();
  std::string h1 = hash_of(*first);
  EXPECT_EQ(h1.size(), 16u) << h1;
  write_config("limits: {rate: 200, burst: 200}\n");
  ASSERT_EQ(reload().exit_code, 0);
  auto second = scrape();
  ASSERT_TRUE(second.ok());
  EXPECT_NE(hash_of(*second), h1) << "the hash did not follow the file";
  EXPECT_GT(
      prom::value_of(*second, "bpfgate_agent_last_reload_timestamp_seconds", {{"result", "ok"}}),
      1.7e9);
  EXPECT_TRUE(contains(agent_log(), "config=" + hash_of(*second))) << agent_log();
}

TEST_F(AgentTest, ReloadUnderTrafficKeepsVerdictsAndCounters) {
  const std::string base = "limits: {rate: 1000000}\nallow: [198.18.0.2]\ndeny: [198.18.0.66]\n";
  write_config(base);
  start_agent();
  // Two floods run through ten reloads: the allowed source must never be
  // dropped, the denied one never passed, and counters never go back.
  uint64_t sent_ok = 0, sent_bad = 0;
  std::thread a([&] { sent_ok = t_.flood("198.18.0.2", 60000, 20000); });
  std::thread b([&] { sent_bad = t_.flood("198.18.0.66", 60000, 20000); });
  uint64_t last = 0;
  for (int i = 0; i < 10; i++) {
    write_config(base + fmt::format("rules: [{{match: tcp/{}, action: drop}}]\n", 1000 + i));
    auto r = reload();
    ASSERT_EQ(r.exit_code, 0) << r.err;
    uint64_t now = counter("pass", "allow");
    EXPECT_GE(now, last);
    last = now;
    std::this_thread::sleep_for(150ms);
  }
  a.join();
  b.join();
  ASSERT_GT(sent_ok, 0u);
  EXPECT_EQ(counter("pass", "allow"), sent_ok);
  EXPECT_EQ(counter("drop", "deny"), sent_bad);
  EXPECT_EQ(counter("drop", "rate_limit") + counter("pass", "ok") + counter("drop", "rule"), 0u);
  EXPECT_GE(t_.status()["generation"].get<uint32_t>(), 11u);
}

TEST_F(AgentTest, BrokenConfigIsRefusedWithItsLineAndTheOldPolicyStays) {
  write_config("limits: {rate: 1000000}\ndeny: [198.18.0.66]\n");
  start_agent();
  uint32_t gen = t_.status()["generation"];
  write_config("limits: {rate: 1000000}\ndeny: [198.18.0.66, 198.18.0.300]\n");
  auto r = reload();
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_TRUE(contains(r.err, config_path() + ":5: bad CIDR in deny: '198.18.0.300'")) << r.err;
  EXPECT_TRUE(contains(r.err, "nothing was applied")) << r.err;
  auto check = run(t_.gw().exec() + bpfgate_bin() + " check " + config_path());
  EXPECT_EQ(check.exit_code, 1);
  EXPECT_TRUE(contains(check.err, ":5: bad CIDR")) << check.err;
  EXPECT_EQ(t_.status()["generation"], gen) << "a refused config switched the policy";
  ASSERT_EQ(t_.flood("198.18.0.66", 300, 20000), 300u);
  EXPECT_EQ(counter("drop", "deny"), 300u) << "the old policy stopped working";
  // SIGHUP takes the same path.
  agent_->kill(SIGHUP);
  std::this_thread::sleep_for(300ms);
  EXPECT_TRUE(contains(agent_log(), "reload refused, the running policy stays")) << agent_log();
  EXPECT_EQ(t_.status()["generation"], gen);
}

TEST_F(AgentTest, AutoBlockHappensAndExpires) {
  write_config("limits: {rate: 100, burst: 100}\nauto_block: {after: 500ms, ttl: 2s}\n");
  start_agent();
  ASSERT_EQ(t_.flood("198.18.0.77", 20000, 10000), 20000u);  // 2 s over the limit
  auto list = run(t_.gw().exec() + bpfgate_bin() + " -j list --iface " + t_.gw_if());
  ASSERT_EQ(list.exit_code, 0) << list.err;
  auto j = json::parse(list.out);
  ASSERT_EQ(j["blocked"].size(), 1u) << list.out;
  EXPECT_EQ(j["blocked"][0]["prefix"], "198.18.0.77/32");
  EXPECT_EQ(j["blocked"][0]["reason"], "auto");
  EXPECT_GT(j["blocked"][0]["drops"].get<uint64_t>(), 1000u);
  EXPECT_GT(counter("drop", "blocklist"), 1000u);
  std::this_thread::sleep_for(2500ms);
  j = json::parse(run(t_.gw().exec() + bpfgate_bin() + " -j list --iface " + t_.gw_if()).out);
  EXPECT_TRUE(j["blocked"].empty()) << j.dump();
  EXPECT_TRUE(contains(agent_log(), "audit: action=block iface=" + t_.gw_if() +
                                        " prefix=198.18.0.77/32 reason=auto ttl="))
      << agent_log();
  EXPECT_TRUE(contains(agent_log(), "audit: action=unblock iface=" + t_.gw_if() +
                                        " prefix=198.18.0.77/32 why=expired reason=auto drops="))
      << agent_log();
  // Manual entries from the CLI, with and without a TTL, while the agent runs.
  ASSERT_EQ(t_.bpfgate("block 198.18.0.80 --ttl 1h --iface " + t_.gw_if()).exit_code, 0);
  ASSERT_EQ(t_.bpfgate("block 198.18.1.0/24 --iface " + t_.gw_if()).exit_code, 0);
  ASSERT_EQ(t_.flood("198.18.1.9", 100, 20000), 100u);
  j = json::parse(t_.bpfgate("-j list --iface " + t_.gw_if()).out);
  ASSERT_EQ(j["blocked"].size(), 2u) << j.dump();
  EXPECT_TRUE(j["blocked"][0]["ttl_s"].is_null() || j["blocked"][1]["ttl_s"].is_null());
  auto un = t_.bpfgate("unblock 198.18.1.0/24 --iface " + t_.gw_if());
  EXPECT_EQ(un.exit_code, 0) << un.err;
  auto again = t_.bpfgate("unblock 198.18.1.0/24 --iface " + t_.gw_if());
  EXPECT_EQ(again.exit_code, 1);
  EXPECT_TRUE(contains(again.err, "is not on the blocklist")) << again.err;
  auto bad = t_.bpfgate("block 198.18.1.0/33 --iface " + t_.gw_if());
  EXPECT_EQ(bad.exit_code, 1);
  EXPECT_TRUE(contains(bad.err, "bad prefix length")) << bad.err;
}

// A client that proves itself (a handshake answered with a SYN cookie) is
// counted and known; a flood under its address then spends its bucket but
// never gets it auto-blocked, and each auto-block spared is counted: all of
// it in `status -j` and in the agent's /metrics.
TEST_F(AgentTest, DatapathEventsAndTheKnownTableShowInStatusAndMetrics) {
  run_ok(t_.gw().exec() + "sysctl -qw net.ipv4.tcp_syncookies=2");
  write_config("limits: {rate: 100, burst: 100}\nauto_block: {after: 300ms, ttl: 1m}\n");
  start_agent();
  auto listener = t_.tcp_listen(8088);
  ASSERT_TRUE(t_.tcp_connect(8088));
  ASSERT_EQ(t_.flood(GatewayPair::kClientAddr, 10000, 10000), 10000u);  // 1 s over its limit
  auto s = t_.status();
  EXPECT_EQ(s["events"]["sources_proven"], 1) << s.dump();
  uint64_t spared = s["events"]["autoblocks_spared"];
  EXPECT_GE(spared, 1u) << s.dump();
  EXPECT_EQ(s["events"]["autoblocks_capped"], 0) << s.dump();
  EXPECT_EQ(s["known_sources"]["entries"], 1) << s.dump();
  auto list = json::parse(t_.bpfgate("-j list --iface " + t_.gw_if()).out);
  EXPECT_TRUE(list["blocked"].empty()) << list.dump();
  auto text = t_.bpfgate("status " + t_.gw_if());
  EXPECT_TRUE(contains(text.out, "known sources 1/65536")) << text.out;
  EXPECT_TRUE(contains(text.out, "sources_proven 1 ")) << text.out;

  auto r = run_ok(t_.gw().exec() + "curl -sf --max-time 5 http://127.0.0.1:9477/metrics");
  auto p = prom::parse(r.out);
  ASSERT_TRUE(p.ok()) << p.error().what();
  prom::Labels iface = {{"interface", t_.gw_if()}};
  auto known = [&](const char *metric) {
    return prom::value_of(*p, metric, {{"interface", t_.gw_if()}, {"map", "known"}});
  };
  EXPECT_EQ(prom::value_of(*p, "bpfgate_sources_proven_total", iface), 1);
  EXPECT_EQ(prom::value_of(*p, "bpfgate_autoblocks_spared_total", iface),
            static_cast<double>(spared));
  EXPECT_EQ(prom::value_of(*p, "bpfgate_autoblocks_capped_total", iface), 0);
  EXPECT_EQ(p->types["bpfgate_sources_proven_total"], "counter");
  EXPECT_EQ(known("bpfgate_map_entries"), 1);
  EXPECT_EQ(known("bpfgate_map_max_entries"), 65536);
}

TEST_F(AgentTest, SigkillAndRestartNeverStopFiltering) {
  write_config("limits: {rate: 100, burst: 100}\ndeny: [198.18.0.66]\n");
  start_agent();
  uint32_t prog = t_.xdp_prog_id();
  ASSERT_EQ(t_.flood("198.18.0.9", 1000, 20000), 1000u);  // state to survive
  // A denied flood runs across the kill and the restart.
  uint64_t sent = 0;
  std::thread flood([&] { sent = t_.flood("198.18.0.66", 40000, 20000); });
  std::this_thread::sleep_for(300ms);
  agent_->kill(SIGKILL);
  agent_->wait(2000ms);
  EXPECT_EQ(t_.xdp_prog_id(), prog) << "the datapath went away with the agent";
  std::this_thread::sleep_for(300ms);
  start_agent();
  flood.join();
  EXPECT_EQ(t_.xdp_prog_id(), prog) << "the restarted agent replaced the running program";
  EXPECT_TRUE(contains(agent_log(), "adopted the running filter")) << agent_log();
  EXPECT_EQ(counter("drop", "deny"), sent) << "packets went unfiltered across the restart";
  auto top = json::parse(t_.bpfgate("-j top " + t_.gw_if() + " -c 1 -i 0.1").out);
  bool found = false;
  for (const auto &s : top["interfaces"][0]["sources"])
    if (s["addr"] == "198.18.0.9") {
      found = true;
      EXPECT_EQ(s["packets"], 1000);
      EXPECT_GE(s["drops"].get<uint64_t>(), 880u);  // 1000 in 50 ms against 100 pps, burst 100
      EXPECT_LE(s["drops"].get<uint64_t>(), 900u);
    }
  EXPECT_TRUE(found) << "per-source state was lost";
  // --keep-datapath: a clean stop leaves the filter running for the next agent.
  agent_->kill(SIGTERM);
  EXPECT_EQ(agent_->wait(5000ms), 0);
  EXPECT_EQ(t_.xdp_prog_id(), 0u);
  start_agent("--keep-datapath");
  prog = t_.xdp_prog_id();
  agent_->kill(SIGTERM);
  EXPECT_EQ(agent_->wait(5000ms), 0);
  EXPECT_EQ(t_.xdp_prog_id(), prog);
  EXPECT_TRUE(contains(agent_log(), "the datapath keeps running from its pins"));
}

// The agent confines itself with its own seccomp filter once it is set up
// (agent.seccomp, on by default, so every test here runs under it) and still
// reloads (here one that loads and attaches the service probes), sees a
// block, serves /metrics and stops cleanly; `seccomp: off` runs it without.
// What the filter refuses: tests/unit/agent/seccomp_test.cpp.
TEST_F(AgentTest, RunsUnderItsSeccompFilterUnlessTheConfigSaysOff) {
  write_config("metrics: {listen: 127.0.0.1:9477}\n");
  start_agent();
  auto proc_status = [&] {
    return read_file("/proc/" + std::to_string(agent_->pid()) + "/status");
  };
  EXPECT_TRUE(contains(proc_status(), "Seccomp:\t2\n")) << proc_status();
  EXPECT_TRUE(contains(proc_status(), "Seccomp_filters:\t1\n")) << proc_status();
  EXPECT_TRUE(contains(agent_log(), "seccomp: on: ")) << agent_log();

  write_config(
      "metrics: {listen: 127.0.0.1:9477}\ndeny: [198.18.0.66]\n"
      "services: [{name: web, port: 80}]\n");
  auto r = reload();
  EXPECT_EQ(r.exit_code, 0) << r.err << agent_log();
  EXPECT_TRUE(contains(agent_log(), "audit: action=probes_attach iface=" + t_.gw_if()))
      << agent_log();
  ASSERT_EQ(t_.flood("198.18.0.66", 100, 20000), 100u);
  EXPECT_EQ(counter("drop", "deny"), 100u);
  ASSERT_EQ(t_.bpfgate("block 198.18.0.80 --iface " + t_.gw_if()).exit_code, 0);
  for (int i = 0; i < 40 && !contains(agent_log(), "blocked 198.18.0.80/32 (manual"); i++)
    std::this_thread::sleep_for(50ms);
  EXPECT_TRUE(contains(agent_log(), "blocked 198.18.0.80/32 (manual")) << agent_log();
  auto scrape = run(t_.gw().exec() + "curl -sf --max-time 3 http://127.0.0.1:9477/metrics");
  EXPECT_EQ(scrape.exit_code, 0) << agent_log();
  EXPECT_TRUE(contains(scrape.out, "bpfgate_service_requests_total")) << scrape.out;
  agent_->kill(SIGTERM);
  EXPECT_EQ(agent_->wait(5000ms), 0) << agent_log();
  EXPECT_EQ(t_.xdp_prog_id(), 0u);
  EXPECT_TRUE(contains(agent_log(), "stopping on Terminated: detached")) << agent_log();

  std::ofstream(config_path()) << fmt::format(
      "interfaces: [{{name: {}}}]\nagent: {{control_socket: {}, seccomp: off, state_dir: {}}}\n",
      t_.gw_if(), socket_path(), dir_.string());
  start_agent();
  EXPECT_TRUE(contains(proc_status(), "Seccomp:\t0\n")) << proc_status();
  EXPECT_TRUE(contains(agent_log(), "seccomp: off (agent.seccomp in " + config_path()))
      << agent_log();
}

}  // namespace
}  // namespace bpfgate::test
