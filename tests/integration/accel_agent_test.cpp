// Socket acceleration run by the agent: the config's accel: section enables
// it, /metrics shows it beside the rest, SIGTERM disables it and unpins.
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <optional>
#include <string>
#include <thread>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "accel_support.hpp"
#include "support/agent.hpp"
#include "support/prometheus_parse.hpp"

namespace bpfgate::test {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

class AccelAgent : public ::testing::Test {
 protected:
  void SetUp() override {
    // The agent needs an interface for its XDP filter: a veth pair inside the namespace.
    make_veth(ns, accel::name("x"), "198.18.30.1/24", ns, accel::name("y"), "198.18.30.2/24");
  }
  void TearDown() override { agent_.stop(); }
  std::string socket_path() const { return agent_.socket(); }
  std::string log() const { return agent_.log(); }
  void start(const std::string &accel_yaml) {
    std::ofstream(agent_.config()) << fmt::format(
        "interfaces: [{{name: {}}}]\nagent: {{control_socket: {}, state_dir: {}}}\n"
        "sweep: {{interval: 100ms}}\nmetrics: {{listen: 127.0.0.1:9478}}\n{}",
        accel::name("x"), socket_path(), dir_.string(), accel_yaml);
    if (!agent_.start(ns.exec() + bpfgate_bin() + " --bpffs " + acc.bpffs()))
      FAIL() << "the agent did not come up: " << log();
  }
  prom::Parsed scrape() const {
    auto r = run(ns.exec() + "curl -sf http://127.0.0.1:9478/metrics");
    EXPECT_EQ(r.exit_code, 0) << r.err;
    auto p = prom::parse(r.out);
    EXPECT_TRUE(p.ok()) << (p ? "" : p.error().what());
    return p ? *p : prom::Parsed{};
  }

  Netns ns{accel::name("g")};
  accel::Cgroup cg{"agent"};
  accel::Accel acc{ns, cg};
  ScratchDir dir_{accel::name("-agent")};
  AgentProcess agent_{dir_.path()};
};

TEST_F(AccelAgent, TheConfigEnablesItMetricsShowItSigtermDisablesIt) {
  start(fmt::format("accel: {{cgroup: {}, max_sockets: 4096}}\n", cg.path()));
  auto s = acc.status();
  ASSERT_EQ(s["state"], "enabled") << log();
  EXPECT_EQ(s["cgroup"], cg.path());
  EXPECT_EQ(s["max_sockets"], 4096);
  EXPECT_NE(log().find("audit: action=accel_enable cgroup=" + cg.path() + " ports=any prog_id="),
            std::string::npos)
      << log();

  cg.join();
  accel::Pair p = accel::connect_pair(ns, AF_INET);
  cg.leave();
  ASSERT_TRUE(accel::send_pattern(p.client.get(), 7, 1 << 20, 65536));
  accel::set_timeouts(p.server.get(), 3000);
  auto got = accel::recv_pattern(p.server.get(), 7, 1 << 20, 65536);
  EXPECT_EQ(got.bytes, 1u << 20);
  EXPECT_EQ(got.first_bad, -1);
  uint64_t redirected = acc.status()["redirected"]["bytes"].get<uint64_t>();
  EXPECT_EQ(redirected, 1u << 20);

  auto m = scrape();
  EXPECT_EQ(prom::value_of(m, "bpfgate_accel_enabled"), 1);
  EXPECT_EQ(prom::value_of(m, "bpfgate_accel_sockets"), 2);
  EXPECT_EQ(prom::value_of(m, "bpfgate_accel_bytes_total", {{"event", "redirected"}}),
            static_cast<double>(redirected));
  EXPECT_GE(
      prom::value_of(m, "bpfgate_packets_total", {{"verdict", "pass"}, {"reason", "not_ip"}}) + 1,
      1)
      << "the filter's families are there too";
  // Fallbacks and refusals, as `accel status` counts them; the sockhash's capacity.
  auto st = acc.status();
  EXPECT_EQ(prom::sum_of(m, "bpfgate_accel_fallbacks_total"),
            st["fallback"]["messages"].get<double>());
  EXPECT_EQ(prom::sum_of(m, "bpfgate_accel_fallback_bytes_total"),
            st["fallback"]["bytes"].get<double>());
  EXPECT_EQ(prom::value_of(m, "bpfgate_accel_sockets_refused_total"),
            st["counters"]["sockets_add_failed"]["count"].get<double>());
  EXPECT_EQ(prom::value_of(m, "bpfgate_accel_max_sockets"), 4096);
  // Every bpfgate_accel_* metric the dashboard and the alert rules use is in the scrape
  // (observe_test.cpp checks the others, with acceleration off).
  for (const char *file : {"grafana-bpfgate.json", "prometheus-bpfgate-rules.yaml"}) {
    std::ifstream in(std::string(BPFGATE_SOURCE_DIR) + "/deploy/" + file);
    std::string text((std::istreambuf_iterator<char>(in)), {});
    int used = 0;
    for (size_t i = text.find("bpfgate_accel_"); i != std::string::npos;
         i = text.find("bpfgate_accel_", i + 1), used++) {
      size_t j = i;
      while (j < text.size() &&
             (std::islower(static_cast<unsigned char>(text[j])) || text[j] == '_'))
        j++;
      std::string metric = text.substr(i, j - i);
      bool found = false;
      for (const auto &sample : m.samples)
        found = found || sample.name == metric;
      EXPECT_TRUE(found) << file << " uses " << metric << ", which the agent does not export";
    }
    EXPECT_GE(used, 2) << file;
  }

  // A reload keeps it running as it is.
  EXPECT_EQ(run(bpfgate_bin() + " reload --socket " + socket_path()).exit_code, 0);
  EXPECT_EQ(acc.status()["state"], "enabled");

  agent_->kill(SIGTERM);
  EXPECT_EQ(agent_->wait(5000ms), 0) << log();
  agent_.reset();
  EXPECT_EQ(acc.status()["state"], "off") << log();
  EXPECT_FALSE(fs::exists(acc.pin_dir())) << "the sockets held nothing unread: all released";
  EXPECT_NE(log().find("audit: action=accel_disable released=2 draining=0 by=SIGTERM,uid:0,pid:"),
            std::string::npos)
      << log();
  // The connection keeps working on the normal path.
  ASSERT_TRUE(accel::send_pattern(p.client.get(), 8, 4096, 4096));
  got = accel::recv_pattern(p.server.get(), 8, 4096, 4096);
  EXPECT_EQ(got.bytes, 4096u);
  EXPECT_EQ(got.first_bad, -1);
}

TEST_F(AccelAgent, ABadSectionIsRefusedWithItsLine) {
  std::string cfg = dir_.file("bad.yaml");
  std::ofstream(cfg) << fmt::format(
      "interfaces: [{{name: {}}}]\naccel:\n  cgroup: {}\n  ports: 80,70000\n", accel::name("x"),
      cg.path());
  auto r = run(ns.exec() + bpfgate_bin() + " --bpffs " + acc.bpffs() + " check " + cfg);
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find(cfg + ":4: accel.ports:"), std::string::npos) << r.err;
  std::ofstream(cfg) << fmt::format("interfaces: [{{name: {}}}]\naccel: {{cgroup: {}, speed: 9}}\n",
                                    accel::name("x"), cg.path());
  r = run(ns.exec() + bpfgate_bin() + " --bpffs " + acc.bpffs() + " check " + cfg);
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find(cfg + ":2: unknown key 'speed' in accel"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(acc.pin_dir()));
}

}  // namespace
}  // namespace bpfgate::test
