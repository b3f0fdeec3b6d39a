// The XDP load balancer with real clients and real backends (issue 15): the
// agent in the gateway namespace balances a service over three nginx
// backends (tests/support/lb_topology.hpp); bpfgate-lb-client opens real
// TCP connections from the client namespace and learns which backend served
// each. Spread against the weights, stickiness, a backend killed or added,
// health checks, drain, dynamic weights under a slow backend, and what the
// filter drops never reaching the balancer.
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <sstream>
#include <thread>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "support/agent.hpp"
#include "support/lb_topology.hpp"

namespace bpfgate::test {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

class LbTraffic : public ::testing::Test {
 protected:
  // The agent's config: the filter on the client side, the balancer reached
  // from it and alone on the backends' links, one service `web` on port 80
  // of both VIPs with the given backends section (YAML lines, indented 8).
  void write_config(const std::string &web_extra, const std::string &filter_extra = "") {
    std::string backends4, backends6;
    for (size_t i = 0; i < in_service_; i++) {
      backends4 += fmt::format("          - {{address: {}, weight: {}}}\n", t_.addr4(i), weight(i));
      backends6 +=
          fmt::format("          - {{address: '[{}]', weight: {}}}\n", t_.addr6(i), weight(i));
    }
    std::ofstream(agent_.config()) << fmt::format(
        "interfaces: [{{name: {}, mode: native}}]\n"
        "agent: {{control_socket: {}, state_dir: {}}}\n"
        "sweep: {{interval: 200ms}}\n{}"
        "lb:\n"
        "  interfaces: {}\n"
        "  services:\n"
        "    - name: web\n"
        "      vip: {}:80/tcp\n"
        "      backends:\n{}{}"
        "    - name: web6\n"
        "      vip: '[{}]:80/tcp'\n"
        "      backends:\n{}",
        t_.pair().gw_if(), agent_.socket(), dir_.file("state"), filter_extra, t_.gw_ifs_yaml(),
        LbTopology::kVip4, backends4, web_extra, LbTopology::kVip6, backends6);
  }
  virtual int weight(size_t) const { return 100; }

  void start_agent() {
    if (!agent_.start(t_.gw().exec() + bpfgate_bin()))
      FAIL() << "the agent did not come up: " << agent_.log();
  }

  CmdResult bpfgate(const std::string &args) const { return t_.pair().bpfgate(args); }

  // `bpfgate -j lb list`, parsed.
  nlohmann::json lb_list() const {
    auto r = bpfgate("-j lb list");
    EXPECT_EQ(r.exit_code, 0) << r.err;
    auto j = nlohmann::json::parse(r.out, nullptr, false);
    EXPECT_FALSE(j.is_discarded()) << r.out;
    return j;
  }

  // N connections to VIP:80, one request each: what each backend served.
  nlohmann::json spread(const std::string &vip, unsigned n, const std::string &extra = "",
                        int threads = 8) {
    auto lines = t_.client_run(
        fmt::format("spread --target {}:80 -n {} -t {} --seconds 60 {}", vip, n, threads, extra));
    EXPECT_EQ(lines.size(), 1u);
    return lines.empty() ? nlohmann::json::object() : lines[0];
  }

  void TearDown() override {
    if (agent_)
      agent_.stop();
  }

  LbTopology t_{topology_size()};
  size_t in_service_ = 3;  // backends b1..bN in the services (the rest wait to be added)
  static int topology_size() {
    auto *info = ::testing::UnitTest::GetInstance()->current_test_info();
    return std::string(info->name()).find("Adding") != std::string::npos ? 4 : 3;
  }
  static inline int n_ = 0;
  ScratchDir dir_{unique_prefix() + "-lb-" + std::to_string(n_++)};
  AgentProcess agent_{dir_.path()};
};

uint64_t served(const nlohmann::json &j, const std::string &backend) {
  return j.contains("backends") && j["backends"].contains(backend)
             ? j["backends"][backend].get<uint64_t>()
             : 0;
}

class LbWeighted : public LbTraffic {
 protected:
  int weight(size_t i) const override { return 100 * static_cast<int>(i + 1); }  // 1:2:3
};

TEST_F(LbWeighted, ThreeThousandConnectionsSpreadWithinTenPercentOfTheWeights) {
  write_config("");
  ASSERT_NO_FATAL_FAILURE(start_agent());
  auto j = spread(LbTopology::kVip4, 3000);
  ASSERT_EQ(j["failed"], 0) << j.dump() << agent_.log();
  double total = 0;
  for (size_t i = 0; i < 3; i++)
    total += static_cast<double>(served(j, t_.name(i)));
  ASSERT_EQ(total, 3000) << j.dump();
  for (size_t i = 0; i < 3; i++) {
    double want = static_cast<double>(i + 1) / 6.0;
    double got = static_cast<double>(served(j, t_.name(i))) / total;
    std::cerr << t_.name(i) << ": share " << got << " (weight share " << want << ")\n";
    EXPECT_NEAR(got, want, 0.1 * want) << j.dump();
  }
  // IPv6: the same service shape on the v6 VIP.
  auto j6 = spread(fmt::format("[{}]", LbTopology::kVip6), 600);
  EXPECT_EQ(j6["failed"], 0) << j6.dump();
  for (size_t i = 0; i < 3; i++)
    EXPECT_GT(served(j6, t_.name(i)), 0u) << j6.dump();
}

TEST_F(LbTraffic, KillingOneBackendBreaksOnlyItsConnections) {
  write_config("");
  ASSERT_NO_FATAL_FAILURE(start_agent());
  std::string out = dir_.file("hold.out");
  auto hold = t_.client_spawn(
      fmt::format("hold --target {}:80 -n 300 --seconds 30 --hold-seconds 4", LbTopology::kVip4),
      out);
  ASSERT_TRUE(within(15s, [&] { return contains(read_file(out), "opened"); })) << read_file(out);
  auto opened = nlohmann::json::parse(read_file(out).substr(0, read_file(out).find('\n')));
  ASSERT_EQ(opened["failed"], 0) << opened.dump();
  t_.kill_nginx(1);  // b2
  ASSERT_EQ(hold.wait(20000ms), 0);
  std::string text = read_file(out);
  auto after = nlohmann::json::parse(text.substr(text.find('\n') + 1));
  std::cerr << "opened " << opened.dump() << " then " << after.dump() << "\n";
  uint64_t b2 = opened["opened"].value("b2", 0);
  ASSERT_GT(b2, 0u);
  EXPECT_EQ(after["broke"].value("b2", 0), b2) << after.dump();
  EXPECT_EQ(after["broke"].value("b1", 0), 0) << after.dump();
  EXPECT_EQ(after["broke"].value("b3", 0), 0) << after.dump();
  EXPECT_EQ(after["kept"].value("b1", 0), opened["opened"].value("b1", 0)) << after.dump();
  EXPECT_EQ(after["kept"].value("b3", 0), opened["opened"].value("b3", 0)) << after.dump();
}

TEST_F(LbTraffic, AFailingBackendLeavesOnItsHealthChecksAndComesBack) {
  write_config(
      "      health: {check: http, path: /, expect: 200, interval: 300ms, timeout: 200ms, "
      "rise: 2, fall: 2}\n");
  ASSERT_NO_FATAL_FAILURE(start_agent());
  ASSERT_TRUE(within(5s, [&] { return served(spread(LbTopology::kVip4, 60), "b3") > 0; }))
      << agent_.log();
  auto killed = Clock::now();
  t_.kill_nginx(2);  // b3
  // Out of the ring within fall checks plus two intervals (generous bound: 5 s).
  auto gone = within(5s, [&] {
    auto j = spread(LbTopology::kVip4, 60, "--timeout-ms 300");
    return j["failed"] == 0 && served(j, "b3") == 0;
  });
  ASSERT_TRUE(gone) << agent_.log();
  std::cerr << "b3 out of the ring "
            << std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - killed).count()
            << " ms after its nginx was killed\n";
  EXPECT_TRUE(contains(agent_.log(), "b3") || contains(agent_.log(), t_.addr4(2)));
  auto j = spread(LbTopology::kVip4, 300);
  EXPECT_EQ(j["failed"], 0) << j.dump();
  EXPECT_EQ(served(j, "b3"), 0u) << j.dump();
  t_.start_nginx(2);
  auto back = within(5s, [&] { return served(spread(LbTopology::kVip4, 60), "b3") > 0; });
  EXPECT_TRUE(back) << agent_.log();
}

TEST_F(LbTraffic, AddingABackendMovesAboutOneNthOfTheFlows) {
  write_config("");
  ASSERT_NO_FATAL_FAILURE(start_agent());
  // The same 1,000 flows (fixed source ports) before and after a fourth backend.
  auto before = spread(LbTopology::kVip4, 1000, "--port-base 20000", 4);
  ASSERT_EQ(before["failed"], 0) << before.dump();
  // b4 is wired (its link in lb.interfaces) but not in the service until now.
  auto r = bpfgate(fmt::format("lb add web {} --socket {}", t_.addr4(3), agent_.socket()));
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err << agent_.log();
  std::this_thread::sleep_for(2500ms);  // past TIME_WAIT reuse of the same ports on the client
  auto after = spread(LbTopology::kVip4, 1000, "--port-base 20000", 4);
  ASSERT_EQ(after["failed"], 0) << after.dump() << agent_.log();
  size_t moved = 0, to_new = 0;
  for (const auto &item : before["assign"].items()) {
    std::string was = item.value().get<std::string>();
    std::string now = after["assign"].value(item.key(), "");
    if (now != was)
      moved++, to_new += now == "b4";
  }
  double frac = static_cast<double>(moved) / 1000.0;
  std::cerr << "moved " << moved << " of 1000 flows (" << frac << "; 1/N = 0.25), " << to_new
            << " of them to the new backend\n";
  EXPECT_NEAR(frac, 0.25, 0.06);
  EXPECT_GE(to_new, moved * 95 / 100);  // Maglev moves flows to the new backend, barely elsewhere
}

// What bpfgate-lb-client's hold mode printed: its first line (opened) and,
// once it exited, its second (kept, broke, moved).
std::pair<nlohmann::json, nlohmann::json> hold_result(const std::string &text) {
  auto nl = text.find('\n');
  auto first = nlohmann::json::parse(text.substr(0, nl), nullptr, false);
  auto second = nl == std::string::npos
                    ? nlohmann::json()
                    : nlohmann::json::parse(text.substr(nl + 1), nullptr, false);
  return {first, second};
}

TEST_F(LbTraffic, ADrainedBackendFinishesItsFlowsAndTakesNoNewOnes) {
  write_config("");
  ASSERT_NO_FATAL_FAILURE(start_agent());
  std::string out = dir_.file("hold.out");
  auto hold = t_.client_spawn(
      fmt::format("hold --target {}:80 -n 150 --seconds 30 --hold-seconds 4", LbTopology::kVip4),
      out);
  ASSERT_TRUE(within(15s, [&] { return contains(read_file(out), "opened"); })) << read_file(out);
  auto r = bpfgate(fmt::format("lb drain web {} --socket {}", t_.addr4(1), agent_.socket()));
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  auto j = spread(LbTopology::kVip4, 300);
  EXPECT_EQ(j["failed"], 0) << j.dump();
  EXPECT_EQ(served(j, "b2"), 0u) << j.dump();
  ASSERT_EQ(hold.wait(20000ms), 0);
  auto [opened, after] = hold_result(read_file(out));
  EXPECT_GT(opened["opened"].value("b2", 0), 0) << opened.dump();
  EXPECT_TRUE(after["broke"].empty()) << after.dump();
  EXPECT_EQ(after["kept"].value("b2", 0), opened["opened"].value("b2", 0)) << after.dump();
}

TEST_F(LbTraffic, WhatTheFilterDropsIsNeverBalanced) {
  write_config("", "deny: [198.18.0.3]\n");
  ASSERT_NO_FATAL_FAILURE(start_agent());
  auto denied = spread(LbTopology::kVip4, 20, "--bind 198.18.0.3 --timeout-ms 300", 4);
  EXPECT_EQ(denied["failed"], 20) << denied.dump();
  EXPECT_GE(t_.pair().counter("drop", "deny"), 20u);
  auto ok = spread(LbTopology::kVip4, 30);
  EXPECT_EQ(ok["failed"], 0) << ok.dump();
  // The balancer placed the allowed flows only.
  auto list = lb_list();
  uint64_t new_flows = 0;
  for (const auto &svc : list["services"])
    for (const auto &b : svc["backends"])
      new_flows += b.value("new_flows", 0);
  // One entry per flow placed: the 30 allowed ones (the 20 denied ones, each
  // a SYN and its retries, would add 20). A SYN always goes through the ring,
  // so a retransmitted one counts as a placement again: at least 30, few more.
  EXPECT_EQ(list["conns"], 30) << list.dump();
  EXPECT_GE(new_flows, 30u) << list.dump();
  EXPECT_LE(new_flows, 35u) << list.dump();
}

TEST_F(LbTraffic, ASlowBackendLosesItsShareOfNewFlowsAndRegainsIt) {
  t_.use_slow_backend(1);  // b2: a server whose delay the test sets
  // Floor 5 %: at the default 10 % a slow backend among three keeps 4.8 % of the
  // new flows (86 % less), too close to the 80 % this test asserts over 240 flows.
  write_config("      dynamic_weights: {enabled: on, interval: 1s, floor: 5%}\n");
  ASSERT_NO_FATAL_FAILURE(start_agent());
  std::string held = dir_.file("hold.out"), rate = dir_.file("rate.out");
  auto hold = t_.client_spawn(
      fmt::format("hold --target {}:80 -n 60 --seconds 60 --hold-seconds 24", LbTopology::kVip4),
      held);
  ASSERT_TRUE(within(15s, [&] { return contains(read_file(held), "opened"); }));
  auto flows = t_.client_spawn(
      fmt::format("rate --target {}:80 --rate 60 --seconds 40 -t 16", LbTopology::kVip4), rate);
  std::this_thread::sleep_for(6s);
  t_.set_delay(1, 50);  // second 6: b2 answers 50 ms late (the others: well under 1 ms)
  std::this_thread::sleep_for(12s);
  t_.set_delay(1, 0);  // second 18: b2 is fast again
  ASSERT_EQ(flows.wait(40000ms), 0);
  ASSERT_EQ(hold.wait(40000ms), 0);
  std::vector<double> share;  // b2's share of each second's new flows
  std::ifstream in(rate);
  for (std::string line; std::getline(in, line);) {
    auto j = nlohmann::json::parse(line, nullptr, false);
    double total = 0;
    for (auto &[b, n] : j["backends"].items())
      total += n.get<double>();
    share.push_back(total > 0 ? served(j, "b2") / total : 0);
    std::cerr << "second " << share.size() << ": b2 " << share.back() << " " << j.dump() << "\n";
  }
  ASSERT_GE(share.size(), 38u);
  auto mean = [&](size_t from, size_t to) {  // seconds [from, to], 1-based
    double s = 0;
    for (size_t i = from; i <= to; i++)
      s += share[i - 1];
    return s / static_cast<double>(to - from + 1);
  };
  // Recovery is slower than the fall: at its floor b2 takes about a flow a
  // second, so it gathers min_samples (5) fresh responses in ~5-10 s (samples
  // pending from its slow seconds dilute the first mean), then climbs 25 % a
  // second. One CI run measured 0.1375 over seconds 29-32, mid-climb.
  double before = mean(2, 5), slow = mean(14, 17), after = mean(35, 38);
  std::cerr << "b2's share: " << before << " before, " << slow << " 8-11 s into its slowness, "
            << after << " 17-20 s after it recovered\n";
  {  // the agent's weight changes, to read a failure by
    std::istringstream log(agent_.log());
    for (std::string line; std::getline(log, line);)
      if (contains(line, " weight "))
        std::cerr << line << "\n";
  }
  // Its share is a third (three backends of one weight). The share measured
  // before it slowed down moves with the other backends' latencies, which a
  // loaded host spreads (0.246 in one CI run): the test holds it to a third.
  const double third = 1.0 / 3;
  EXPECT_GT(before, 0.2);
  EXPECT_LE(slow, 0.2 * third);  // lost >= 80 % of its share within 10 s
  EXPECT_GE(after, 0.6 * third);
  auto [opened, kept] = hold_result(read_file(held));
  EXPECT_TRUE(kept["broke"].empty()) << kept.dump();  // its established flows lived on
  EXPECT_TRUE(contains(agent_.log(), "weight")) << agent_.log();
}

// The README's load balancer section: its config (the interfaces named as
// this topology names them) and its commands, exactly as shown, on the
// agent's default control socket and state directory.
TEST_F(LbTraffic, TheReadmeCommandsWorkAsShown) {
  std::ifstream in(std::string(BPFGATE_SOURCE_DIR) + "/README.md");
  std::string text((std::istreambuf_iterator<char>(in)), {});
  auto at = text.find("```yaml\nlb:\n");
  ASSERT_NE(at, std::string::npos) << "README.md has no lb: example";
  std::string yaml = text.substr(at + 8, text.find("```", at + 8) - at - 8);
  auto ifs = yaml.find("interfaces: [b1, b2]");
  ASSERT_NE(ifs, std::string::npos) << yaml;
  yaml.replace(ifs, 20, "interfaces: " + t_.gw_ifs_yaml());
  std::ofstream(agent_.config()) << fmt::format("interfaces: [{{name: {}, mode: native}}]\n{}",
                                                t_.pair().gw_if(), yaml);
  // On the default control socket: up once it says it runs.
  ASSERT_TRUE(agent_.start(t_.gw().exec() + bpfgate_bin(), "", AgentProcess::Ready::says_running))
      << agent_.log();
  struct Cleanup {
    ~Cleanup() {
      std::filesystem::remove("/var/lib/bpfgate/lb-catalog.json");
      std::filesystem::remove("/var/lib/bpfgate/lb-overlay.json");
    }
  } cleanup;
  auto shown = [&](const std::string &cmd) {
    auto dir = std::filesystem::path(bpfgate_bin()).parent_path().string();
    auto r = run(t_.gw().exec() + "env PATH=" + dir + ":/usr/sbin:/usr/bin:/sbin:/bin " + cmd);
    EXPECT_EQ(r.exit_code, 0) << cmd << ": " << r.out << r.err << agent_.log();
    return r.out;
  };
  auto backend = [&](const std::string &addr) {
    auto j = nlohmann::json::parse(shown("bpfgate -j lb list"), nullptr, false);
    for (const auto &svc : j["services"])
      for (const auto &b : svc["backends"])
        if (b["address"] == addr)
          return b;
    return nlohmann::json();
  };
  EXPECT_TRUE(contains(shown("bpfgate lb list"), "web")) << agent_.log();
  EXPECT_EQ(backend("198.18.12.2:80")["state"], "up");
  auto j = spread(LbTopology::kVip4, 60);
  EXPECT_EQ(j["failed"], 0) << j.dump();
  shown("bpfgate lb drain web 198.18.12.2:80");
  EXPECT_EQ(backend("198.18.12.2:80")["state"], "draining");
  EXPECT_EQ(backend("198.18.12.2:80")["ring_entries"], 0);
  shown("bpfgate lb weight web 198.18.11.2:80 300");
  EXPECT_EQ(backend("198.18.11.2:80")["weight"]["set"], 300) << backend("198.18.11.2:80");
  shown("bpfgate lb add web 198.18.14.2:80 --weight 50");
  EXPECT_FALSE(backend("198.18.14.2:80").is_null());
  shown("bpfgate lb remove web 198.18.14.2:80");
  EXPECT_TRUE(backend("198.18.14.2:80").is_null());
  j = spread(LbTopology::kVip4, 60);
  EXPECT_EQ(j["failed"], 0) << j.dump();
  EXPECT_EQ(served(j, "b2"), 0u) << j.dump();
}

}  // namespace
}  // namespace bpfgate::test
