// The load balancer's and the fleet's benchmarks (bench/run lb, bench/run fleet; issues 15
// and 16): each part answers --help and refuses a bad argument with exit 2, and the test_run
// part runs every case once with few repeats, each checked against the balancer's counters.
// The flood, TCP, propagation, storm and sync parts take minutes: a benchmark, not a test.
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
  for (const char *name : {"lb_bench", "lb_nspp", "fleet_bench"}) {
    auto r = run(bench_bin(name) + " --help");
    EXPECT_EQ(r.exit_code, 0) << name << ": " << r.err;
    EXPECT_NE(r.out.find("--runs"), std::string::npos) << name << ": " << r.out;
    EXPECT_NE(r.out.find("--json"), std::string::npos) << name << ": " << r.out;
    EXPECT_EQ(run(bench_bin(name) + " --no-such-option").exit_code, 2) << name;
  }
  EXPECT_EQ(run(bench_bin("lb_bench") + " --runs 0").exit_code, 2);
  EXPECT_EQ(run(bench_bin("fleet_bench") + " --sizes 1,x").exit_code, 2);
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
