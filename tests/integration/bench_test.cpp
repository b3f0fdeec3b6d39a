// The load balancer's and the fleet's benchmarks (bench/run lb, bench/run fleet; issues 15
// and 16): each part answers --help and refuses a bad argument with exit 2, and the test_run
// part runs every case once with few repeats, each checked against the balancer's counters.
// The flood, TCP, propagation, storm and sync parts take minutes: a benchmark, not a test.
// The filter's cost on a live flood (bench/run live, issue 12) runs one short round.
#include <gtest/gtest.h>

#include <filesystem>
#include <set>
#include <sstream>

#include <nlohmann/json.hpp>

#include "support/system.hpp"

namespace bpfgate::test {
namespace {

std::string bench_bin(const std::string &name) {
  return (std::filesystem::path(BPFGATE_BINARY).parent_path() / "bench" / name).string();
}

TEST(Bench, EachPartAnswersHelpAndRefusesABadArgument) {
  for (const char *name : {"lb_bench", "lb_nspp", "fleet_bench", "live_bench"}) {
    auto r = run(bench_bin(name) + " --help");
    EXPECT_EQ(r.exit_code, 0) << name << ": " << r.err;
    EXPECT_NE(r.out.find("--runs"), std::string::npos) << name << ": " << r.out;
    EXPECT_NE(r.out.find("--json"), std::string::npos) << name << ": " << r.out;
    EXPECT_EQ(run(bench_bin(name) + " --no-such-option").exit_code, 2) << name;
  }
  EXPECT_EQ(run(bench_bin("lb_bench") + " --runs 0").exit_code, 2);
  EXPECT_EQ(run(bench_bin("fleet_bench") + " --sizes 1,x").exit_code, 2);
  EXPECT_EQ(run(bench_bin("live_bench") + " --family 5").exit_code, 2);
  EXPECT_EQ(run(bench_bin("live_bench") + " --ab /nonexistent").exit_code, 2);
  for (const char *name : {"live_bench", "flood_bench", "compare_bench"}) {
    EXPECT_EQ(run(bench_bin(name) + " --coalesce-us 2000").exit_code, 2) << name;
    EXPECT_EQ(run(bench_bin(name) + " --napi-fifo 100").exit_code, 2) << name;
  }
}

// One round at a low rate, this build taking turns with itself (--ab), the gateway's NAPI
// coalescing its polls at SCHED_FIFO priority 10: every program ran on the flood's frames and has a
// run time, and the bench leaves no namespace, pin or bpf_stats setting behind.
TEST(Bench, TheLiveFloodRoundMeasuresEveryProgram) {
  std::string stats_before = run("sysctl -n kernel.bpf_stats_enabled").out;
  auto r = run(bench_bin("live_bench") +
               " --rounds 1 --phase 1 --rate 50000 --coalesce-us 50 --napi-fifo 10 --json --ab " +
               BPFGATE_BINARY);
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  std::set<std::string> modes;
  std::istringstream in(r.out);
  for (std::string line; std::getline(in, line);) {
    auto j = nlohmann::json::parse(line, nullptr, false);
    ASSERT_FALSE(j.is_discarded()) << line;
    modes.insert(j["mode"].get<std::string>());
    EXPECT_GT(j["frames"].get<long>(), 10000) << line;  // 50,000 frames/s for a second
    EXPECT_GT(j["ns_per_frame"].get<double>(), 0) << line;
  }
  EXPECT_EQ(modes, (std::set<std::string>{"drop", "oracle", "bpfgate", "ab"})) << r.out;
  EXPECT_NE(r.err.find("| bpfgate |"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("NAPI coalescing 50 us, SCHED_FIFO priority 10"), std::string::npos)
      << r.err;
  EXPECT_EQ(run("sysctl -n kernel.bpf_stats_enabled").out, stats_before);
  EXPECT_FALSE(std::filesystem::exists("/run/netns/bglv-gw"));
  EXPECT_FALSE(std::filesystem::exists("/run/netns/bglv-net"));
  EXPECT_FALSE(std::filesystem::exists("/sys/fs/bpf/bpfgate/bglv-gw0"));
}

TEST(Bench, TheBalancersTestRunCasesRunOnce) {
  auto r = run(bench_bin("lb_nspp") + " --quick --runs 1 --repeat 2000 --json");
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  std::set<std::string> names;
  std::istringstream in(r.out);
  for (std::string line; std::getline(in, line);) {
    auto j = nlohmann::json::parse(line, nullptr, false);
    ASSERT_FALSE(j.is_discarded()) << line;
    names.insert(j["name"].get<std::string>());
    if (j.contains("forwarded")) {
      EXPECT_EQ(j["forwarded"], j["packets"]) << line;
      EXPECT_GT(j["ratio_vs_xdp_tx"].get<double>(), 0) << line;
    }
    if (j.contains("moved")) {  // one backend of N: at least 1/N of the table changes hands
      EXPECT_GE(j["ratio"].get<double>(), 0.99) << line;
    }
  }
  for (const char *c : {"lb_v4_established", "lb_v4_new_flow", "lb_v6_established",
                        "lb_v6_new_flow", "lb_v4_minimal", "lb_chain_v4", "lb_chain_v6"})
    EXPECT_TRUE(names.count(c)) << c << " missing:\n" << r.out;
  EXPECT_TRUE(names.count("lb_flows_moved_n3_remove_4099")) << r.out;
}

}  // namespace
}  // namespace bpfgate::test
