// What the fleet shares besides blocks (issue 16): the operator's fleet-wide
// never-block list (PREFIX@never/, `bpfgate fleet never-block`), which every
// node takes at once (received entries touching it refused and taken out,
// its own keys of it withdrawn, all back once it goes), and the XDP filter's
// deny list (share.deny_lists), enforced on the other nodes and taken back
// with a reload that drops it. Two nodes: what a third adds, fleet_test.cpp
// shows.
#include <gtest/gtest.h>

#include <chrono>
#include <ctime>
#include <thread>

#include <fmt/format.h>

#include "fleet_support.hpp"

namespace bpfgate::test {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

class FleetPair : public FleetTest {
 protected:
  FleetPair() : FleetTest(2) {}
  std::string keys() const {
    return etcd_->etcdctl("get --prefix /bpfgate/blocks/ --keys-only").out;
  }
  std::string key(int node, const std::string &cidr) const {
    return "/bpfgate/blocks/" + nodes_[node]->name + "/" + cidr;
  }
  // `bpfgate fleet never-block ARGS` as the operator would (no auth here).
  CmdResult never_block(const std::string &args) const {
    return nodes_[0]->pair.bpfgate("fleet never-block " + args + " --config " +
                                   nodes_[0]->agent.config());
  }
  long long ms_since(Clock::time_point t0) const {
    return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t0).count();
  }
};

TEST_F(FleetPair, TheFleetsNeverBlockListGuardsEveryNodeAtOnce) {
  const std::string x = "198.18.0.85", y = "198.18.0.86";
  ASSERT_EQ(on(0, "block", x), 0);
  ASSERT_TRUE(within(5000ms, [&] { return listed(1, x)["reason"] == "fleet"; }))
      << nodes_[1]->agent.log();

  // The operator's entry: node 2 takes node 1's entry out, node 1 withdraws its key.
  auto t0 = Clock::now();
  auto add = never_block("add 198.18.0.84/30");
  ASSERT_EQ(add.exit_code, 0) << add.out << add.err;
  EXPECT_TRUE(contains(add.err, "action=fleet-never-block-add")) << add.err;
  ASSERT_TRUE(within(2000ms, [&] { return listed(1, x).is_null(); })) << nodes_[1]->agent.log();
  std::printf("fleet: a never-block entry took node 1's block out of node 2 after %lld ms\n",
              ms_since(t0));
  EXPECT_TRUE(within(2000ms, [&] { return !contains(keys(), key(0, "198.18.0.85_32")); }))
      << keys();
  EXPECT_EQ(listed(0, x)["reason"], "manual") << "the node's own block stays";
  EXPECT_EQ(fleet_status(1)["never_block"], 1) << fleet_status(1).dump();
  auto text = nodes_[1]->pair.bpfgate("fleet status --socket " + nodes_[1]->agent.socket());
  EXPECT_TRUE(contains(text.out, "never-block prefixes: 1 of the fleet")) << text.out;
  auto list =
      nodes_[1]->pair.bpfgate("-j fleet never-block list --config " + nodes_[1]->agent.config());
  ASSERT_EQ(list.exit_code, 0) << list.err;
  EXPECT_TRUE(contains(list.out, "\"prefix\":\"198.18.0.84/30\"")) << list.out;

  // Another node's entry inside it, put now: refused, counted, not applied.
  uint64_t refused = fleet_status(1)["refused"].get<uint64_t>();
  auto put = etcd_->etcdctl(
      fmt::format("put /bpfgate/blocks/x/198.18.0.86_32 "
                  "'{{\"cidr\":\"198.18.0.86/32\",\"node\":\"x\",\"reason\":\"manual\",\"at\":{},"
                  "\"expires\":0}}'",
                  std::time(nullptr) - 1));
  ASSERT_EQ(put.exit_code, 0) << put.err;
  ASSERT_EQ(on(0, "block", "198.18.0.87"), 0);  // this node's own: not published
  EXPECT_TRUE(within(2000ms, [&] { return fleet_status(1)["refused"] > refused; }))
      << fleet_status(1).dump();
  std::this_thread::sleep_for(600ms);  // three scans
  EXPECT_TRUE(listed(1, y).is_null());
  EXPECT_TRUE(listed(1, "198.18.0.87").is_null());
  EXPECT_FALSE(contains(keys(), "198.18.0.87_32")) << keys();

  // Removed: node 1's blocks flow again, and the entry kept out comes in.
  t0 = Clock::now();
  auto rm = never_block("remove 198.18.0.84/30");
  ASSERT_EQ(rm.exit_code, 0) << rm.out << rm.err;
  EXPECT_TRUE(within(2000ms, [&] { return listed(1, "198.18.0.87")["reason"] == "fleet"; }))
      << nodes_[0]->agent.log();
  EXPECT_TRUE(within(2000ms, [&] { return listed(1, y)["origin"] == "x"; })) << listed(1, y);
  EXPECT_EQ(listed(1, x)["origin"], nodes_[0]->name) << listed(1, x);
  std::printf("fleet: blocks flowed again %lld ms after the never-block entry went\n",
              ms_since(t0));
  EXPECT_EQ(fleet_status(1)["never_block"], 0);
}

TEST_F(FleetPair, ADenyListIsSharedAndAReloadWithoutItTakesItBack) {
  const std::string deny = "198.18.0.88/29", src = "198.18.0.90";
  auto reload = [&](const std::string &extra) {
    write_config(0, extra);
    auto r = nodes_[0]->pair.bpfgate("reload --socket " + nodes_[0]->agent.socket());
    return r.exit_code == 0 ? std::string() : r.out + r.err;
  };
  ASSERT_EQ(nodes_[1]->pair.flood(src, 100, 20000), 100u);
  ASSERT_EQ(nodes_[1]->pair.counter("drop", "blocklist"), 0u);
  // Off by default: a deny list stays the node's.
  ASSERT_EQ(reload("deny: [" + deny + "]\n"), "");
  std::this_thread::sleep_for(600ms);
  EXPECT_TRUE(listed(1, deny).is_null());
  ASSERT_EQ(reload("  share: {deny_lists: on}\ndeny: [" + deny + "]\n"), "");
  ASSERT_TRUE(within(3000ms, [&] { return listed(1, deny)["reason"] == "fleet"; }))
      << nodes_[0]->agent.log() << nodes_[1]->agent.log();
  EXPECT_EQ(listed(1, deny)["origin"], nodes_[0]->name);
  EXPECT_TRUE(listed(1, deny)["ttl_s"].is_null()) << listed(1, deny);
  auto value = etcd_->etcdctl("get " + key(0, "198.18.0.88_29") + " --print-value-only").out;
  EXPECT_TRUE(contains(value, "\"reason\":\"deny\"")) << value;
  EXPECT_TRUE(contains(value, "\"expires\":0")) << value;
  ASSERT_EQ(nodes_[1]->pair.flood(src, 100, 20000), 100u);
  EXPECT_EQ(nodes_[1]->pair.counter("drop", "blocklist"), 100u);
  // The reload that drops it: its key goes, and node 2's entry with it.
  ASSERT_EQ(reload("  share: {deny_lists: on}\n"), "");
  EXPECT_TRUE(within(3000ms, [&] { return listed(1, deny).is_null(); })) << listed(1, deny);
  EXPECT_FALSE(contains(keys(), "198.18.0.88_29")) << keys();
}

}  // namespace
}  // namespace bpfgate::test
