// The fleet's shared blocklist end to end (issue 16): one etcd in a
// namespace of its own and three nodes, each a gateway namespace with its
// agent and XDP filter (and a peer namespace that floods it), joined to the
// etcd namespace by a veth each (fleet_support.hpp). A block made on node 1
// is enforced on nodes 2 and 3 (its source's frames dropped there), an
// unblock and a TTL reach them too, and a malformed entry put with etcdctl
// is refused by each.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <optional>
#include <set>
#include <fstream>
#include <memory>
#include <thread>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "fleet_support.hpp"

namespace bpfgate::test {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

constexpr int kNodes = 3;

TEST_F(FleetTest, ABlockOnOneNodeIsEnforcedOnTheOthers) {
  const std::string attacker = "198.18.0.80";
  // Before: node 2 passes the attacker's frames.
  ASSERT_EQ(nodes_[1]->pair.flood(attacker, 100, 20000), 100u);
  ASSERT_EQ(nodes_[1]->pair.counter("drop", "blocklist"), 0u);

  auto t0 = Clock::now();
  ASSERT_EQ(on(0, "block", attacker), 0);
  // Every other node polled in turn until all list it: when each was first seen.
  std::vector<std::optional<long long>> seen(kNodes);
  while (Clock::now() - t0 < 5s && std::count(seen.begin() + 1, seen.end(), std::nullopt) > 0)
    for (int i = 1; i < kNodes; i++)
      if (!seen[i] && !listed(i, attacker).is_null())
        seen[i] = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t0).count();
  for (int i = 1; i < kNodes; i++) {
    ASSERT_TRUE(seen[i]) << "node " << i + 1 << " never got the block: " << nodes_[i]->agent.log();
    std::printf("fleet: block on node 1 in node %d's blocklist after %lld ms\n", i + 1, *seen[i]);
    EXPECT_LT(*seen[i], 3000) << "propagation took over 3 s";
    auto e = listed(i, attacker);
    EXPECT_EQ(e["reason"], "fleet") << e.dump();
    EXPECT_EQ(e["origin"], nodes_[0]->name) << e.dump();
    // Enforced: the attacker's frames dropped by the blocklist there.
    ASSERT_EQ(nodes_[i]->pair.flood(attacker, 100, 20000), 100u);
    EXPECT_EQ(nodes_[i]->pair.counter("drop", "blocklist"), 100u);
  }
  // Node 1's own entry stays its own (manual), not a fleet entry.
  EXPECT_EQ(listed(0, attacker)["reason"], "manual");
  auto st = fleet_status(1);
  EXPECT_EQ(st["connected"], true) << st.dump();
  // The agent's own measure: node 1 learning the block to node 2 applying it.
  std::printf("fleet: node 2's lag (node 1's block learned -> applied here): %.0f ms\n",
              st["lag_s"].get<double>() * 1000);
  EXPECT_GE(st["applied"].get<uint64_t>(), 1u) << st.dump();
  EXPECT_GE(fleet_status(0)["published"].get<uint64_t>(), 1u) << fleet_status(0).dump();
  auto text = nodes_[1]->pair.bpfgate("fleet status --socket " + nodes_[1]->agent.socket());
  EXPECT_EQ(text.exit_code, 0) << text.err;
  EXPECT_TRUE(contains(text.out, "connected to " + etcd_->endpoint(1))) << text.out;
  EXPECT_TRUE(contains(text.out, "applied 1")) << text.out;
  // /metrics has the fleet's families, with samples.
  auto m = run(nodes_[1]->pair.gw().exec() + "curl -sf --max-time 3 http://127.0.0.1:9477/metrics");
  EXPECT_TRUE(contains(m.out, "bpfgate_fleet_applied_total 1")) << m.out.substr(0, 300);
  EXPECT_TRUE(
      contains(m.out, "bpfgate_fleet_connected{endpoint=\"" + etcd_->endpoint(1) + "\"} 1"));
  for (auto family : {"published", "received", "refused", "held_back"})
    EXPECT_TRUE(contains(m.out, fmt::format("bpfgate_fleet_{}_total ", family))) << family;
  EXPECT_TRUE(contains(m.out, "bpfgate_fleet_lag_seconds_count 1")) << m.out;
  // The text view names the origin.
  EXPECT_TRUE(contains(nodes_[2]->pair.bpfgate("list --iface " + nodes_[2]->pair.gw_if()).out,
                       "from " + nodes_[0]->name));

  // The unblock goes everywhere too.
  ASSERT_EQ(on(0, "unblock", attacker), 0);
  for (int i = 1; i < kNodes; i++)
    EXPECT_TRUE(within(5000ms, [&] { return listed(i, attacker).is_null(); }))
        << "node " << i + 1 << " kept the entry: " << nodes_[i]->agent.log();

  // Blocklists that do not change are read again only to reconcile (every
  // 2 s): not at every tick of the scan timer (25 ms).
  std::this_thread::sleep_for(500ms);
  auto scans = [&](int i) { return fleet_status(i)["scans"].get<uint64_t>(); };
  uint64_t before0 = scans(0), before1 = scans(1);
  std::this_thread::sleep_for(3s);
  EXPECT_LE(scans(0) - before0, 2u) << fleet_status(0).dump();
  EXPECT_LE(scans(1) - before1, 2u) << fleet_status(1).dump();
  EXPECT_TRUE(contains(text.out, "blocklists scanned")) << text.out;
}

TEST_F(FleetTest, ALocalBlockStaysWhenTheFleetEntryOfItGoes) {
  const std::string p = "198.18.0.81";
  ASSERT_EQ(on(1, "block", p), 0);  // node 2's own
  ASSERT_EQ(on(0, "block", p), 0);
  ASSERT_TRUE(within(5000ms, [&] { return !listed(2, p).is_null(); }));
  ASSERT_EQ(on(0, "unblock", p), 0);
  std::this_thread::sleep_for(1500ms);
  auto e = listed(1, p);
  ASSERT_FALSE(e.is_null()) << "node 2's own block went with the fleet entry";
  EXPECT_EQ(e["reason"], "manual");
}

// Each node has a key of its own for a CIDR: the fleet entry lasts while any
// other node's key of it is there, with the latest expiry of them.
TEST_F(FleetTest, ACidrBlockedByTwoNodesStaysUntilTheLastUnblocks) {
  const std::string p = "198.18.0.89";
  ASSERT_EQ(on(0, "block", p + " --ttl 60s"), 0);
  ASSERT_EQ(on(1, "block", p), 0);  // no TTL: lasts longer
  ASSERT_TRUE(within(5000ms, [&] {
    auto keys = etcd_->etcdctl("get --prefix /bpfgate/blocks/ --keys-only").out;
    return contains(keys, "/bpfgate/blocks/" + nodes_[0]->name + "/198.18.0.89_32") &&
           contains(keys, "/bpfgate/blocks/" + nodes_[1]->name + "/198.18.0.89_32");
  })) << etcd_->etcdctl("get --prefix /bpfgate/blocks/ --keys-only").out;
  ASSERT_TRUE(within(5000ms, [&] {
    auto e = listed(2, p);
    return !e.is_null() && e["ttl_s"].is_null();
  })) << listed(2, p).dump();
  EXPECT_EQ(listed(2, p)["origin"], nodes_[1]->name);
  ASSERT_EQ(on(1, "unblock", p), 0);
  // Node 1's key is still there: node 3 keeps the entry, now with node 1's expiry.
  EXPECT_TRUE(within(5000ms, [&] {
    auto e = listed(2, p);
    return !e.is_null() && !e["ttl_s"].is_null() && e["origin"] == nodes_[0]->name;
  })) << listed(2, p).dump();
  // And node 2, which unblocked it, takes it as node 1's fleet entry.
  EXPECT_TRUE(within(5000ms, [&] { return listed(1, p)["reason"] == "fleet"; }))
      << listed(1, p).dump();
  ASSERT_EQ(on(0, "unblock", p), 0);
  for (int i = 1; i < kNodes; i++)
    EXPECT_TRUE(within(5000ms, [&] { return listed(i, p).is_null(); }))
        << "node " << i + 1 << ": " << listed(i, p).dump();
}

TEST_F(FleetTest, ATtlBlockExpiresEverywhere) {
  const std::string p = "198.18.0.82";
  ASSERT_EQ(on(0, "block", p + " --ttl 3s"), 0);
  for (int i = 1; i < kNodes; i++) {
    ASSERT_TRUE(within(5000ms, [&] { return !listed(i, p).is_null(); }));
    EXPECT_FALSE(listed(i, p)["ttl_s"].is_null()) << listed(i, p).dump();
  }
  // Expired: swept from every filter, its key gone from etcd with its lease.
  for (int i = 0; i < kNodes; i++)
    EXPECT_TRUE(within(8000ms, [&] { return listed(i, p).is_null(); }))
        << "node " << i + 1 << " still lists " << p;
  EXPECT_TRUE(within(8000ms, [&] {
    return etcd_->etcdctl("get --prefix /bpfgate/blocks/ --keys-only").out.find("198.18.0.82") ==
           std::string::npos;
  }));
}

TEST_F(FleetTest, AMalformedEntryIsRefusedAndCountedOnEveryNode) {
  const std::string bad[] = {
      "put /bpfgate/blocks/x/198.18.0.90_32 'not json'",
      // The value's CIDR is not the key's: a key for one address blocking a whole range.
      "put /bpfgate/blocks/x/198.18.0.91_32 "
      "'{\"cidr\":\"0.0.0.0/0\",\"node\":\"x\",\"reason\":\"manual\",\"at\":1,\"expires\":0}'",
      "put /bpfgate/blocks/x/198.18.0.92_32 "
      "'{\"cidr\":\"198.18.0.92/32\",\"node\":\"bad node;\",\"reason\":\"manual\",\"at\":1,"
      "\"expires\":0}'",
      // Under node x's keys, in another node's name.
      "put /bpfgate/blocks/x/198.18.0.93_32 "
      "'{\"cidr\":\"198.18.0.93/32\",\"node\":\"y\",\"reason\":\"manual\",\"at\":1,"
      "\"expires\":0}'",
  };
  for (const auto &b : bad)
    ASSERT_EQ(etcd_->etcdctl(b).exit_code, 0) << b;
  for (int i = 0; i < kNodes; i++) {
    EXPECT_TRUE(within(5000ms, [&] {
      auto s = fleet_status(i);
      return s.is_object() && s["refused"].get<uint64_t>() >= 4;
    })) << fleet_status(i).dump();
    for (auto a : {"198.18.0.90", "0.0.0.0/0", "198.18.0.92", "198.18.0.93"})
      EXPECT_TRUE(listed(i, a).is_null()) << a << " applied on node " << i + 1;
  }
  auto metrics_ok = contains(nodes_[0]->agent.log(), "fleet: refused");
  EXPECT_TRUE(metrics_ok) << nodes_[0]->agent.log();
}

TEST_F(FleetTest, ARestartedNodeResumesFromItsRevision) {
  ASSERT_EQ(on(0, "block", "198.18.0.83"), 0);
  ASSERT_TRUE(within(5000ms, [&] { return !listed(2, "198.18.0.83").is_null(); }));
  nodes_[2]->agent.stop();  // its filter detached: the maps go, the fleet's origins stay
  ASSERT_EQ(on(0, "block", "198.18.0.84"), 0);
  ASSERT_EQ(on(0, "unblock", "198.18.0.83"), 0);
  ASSERT_TRUE(within(5000ms, [&] { return !listed(1, "198.18.0.84").is_null(); }));
  start_agent(2);
  EXPECT_TRUE(within(5000ms, [&] { return !listed(2, "198.18.0.84").is_null(); }))
      << nodes_[2]->agent.log();
  EXPECT_TRUE(within(5000ms, [&] { return listed(2, "198.18.0.83").is_null(); }))
      << "an unblocked entry came back: " << nodes_[2]->agent.log();
  // Watched on from its revision: not every entry read again.
  auto log = nodes_[2]->agent.log();
  EXPECT_TRUE(contains(log, "resuming after revision")) << log;
  EXPECT_EQ(occurrences(log, "fleet: read "), 1u) << log;  // the first start's only
}

// A CIDR two nodes blocked has two keys: a node restarted in between knows
// both (pinned beside the origins, which keep one node per CIDR), so the
// first unblock leaves its entry in force and the second takes it out.
TEST_F(FleetTest, ARestartedNodeKnowsEveryKeyOfACidr) {
  const std::string p = "198.18.0.90";
  ASSERT_EQ(on(0, "block", p), 0);                 // no TTL: in force as node 1's
  ASSERT_EQ(on(1, "block", p + " --ttl 60s"), 0);  // a second key
  ASSERT_TRUE(within(5000ms, [&] {
    return contains(etcd_->etcdctl("get --prefix /bpfgate/blocks/ --keys-only").out,
                    "/bpfgate/blocks/" + nodes_[1]->name + "/198.18.0.90_32");
  }));
  // (In force as node 1's: without TTL. The origin `list` shows is not
  // looked at: the test's nodes share one bpffs, and so their origins maps.)
  auto untimed = [&] {
    auto e = listed(2, p);
    return !e.is_null() && e["ttl_s"].is_null();
  };
  ASSERT_TRUE(within(5000ms, untimed)) << listed(2, p).dump();
  nodes_[2]->agent.stop();
  start_agent(2);
  ASSERT_TRUE(within(5000ms, untimed)) << listed(2, p).dump() << nodes_[2]->agent.log();
  ASSERT_EQ(on(0, "unblock", p), 0);
  // Node 2's key is still there: the entry stays, now node 2's (with its TTL).
  EXPECT_TRUE(within(5000ms,
                     [&] {
                       auto e = listed(2, p);
                       return !e.is_null() && !e["ttl_s"].is_null();
                     }))
      << listed(2, p).dump() << nodes_[2]->agent.log();
  std::this_thread::sleep_for(500ms);
  EXPECT_FALSE(listed(2, p).is_null()) << "node 3 forgot node 2's key: " << nodes_[2]->agent.log();
  ASSERT_EQ(on(1, "unblock", p), 0);
  EXPECT_TRUE(within(5000ms, [&] { return listed(2, p).is_null(); })) << listed(2, p).dump();
  EXPECT_EQ(occurrences(nodes_[2]->agent.log(), "fleet: read "), 1u);  // resumed, not reread
}

TEST_F(FleetTest, ANodeBehindACompactionReadsEverythingAgain) {
  ASSERT_EQ(on(0, "block", "198.18.0.85"), 0);
  ASSERT_TRUE(within(5000ms, [&] { return !listed(2, "198.18.0.85").is_null(); }));
  nodes_[2]->agent.stop();
  ASSERT_EQ(on(0, "unblock", "198.18.0.85"), 0);
  ASSERT_EQ(on(0, "block", "198.18.0.86"), 0);
  ASSERT_TRUE(within(5000ms, [&] { return !listed(1, "198.18.0.86").is_null(); }));
  // One write more (outside the prefix), then the compaction: node 3's revision is behind it.
  ASSERT_EQ(etcd_->etcdctl("put /elsewhere x").exit_code, 0);
  auto rev = nlohmann::json::parse(etcd_->etcdctl("get / -w json").out, nullptr, false);
  ASSERT_TRUE(rev.is_object());
  ASSERT_EQ(
      etcd_->etcdctl(fmt::format("compact {}", rev["header"]["revision"].get<int64_t>())).exit_code,
      0);
  start_agent(2);
  EXPECT_TRUE(within(5000ms, [&] { return !listed(2, "198.18.0.86").is_null(); }))
      << nodes_[2]->agent.log();
  EXPECT_TRUE(within(5000ms, [&] { return listed(2, "198.18.0.85").is_null(); }))
      << "an entry removed during the compaction came back: " << nodes_[2]->agent.log();
  EXPECT_EQ(occurrences(nodes_[2]->agent.log(), "fleet: read "), 2u) << nodes_[2]->agent.log();
}

// etcd gone: every node keeps filtering, says so once, and catches up when it is back.
TEST_F(FleetTest, AnEtcdOutageIsSaidOnceAndResyncedAfter) {
  ASSERT_EQ(on(0, "block", "198.18.0.87"), 0);
  ASSERT_TRUE(within(5000ms, [&] { return !listed(1, "198.18.0.87").is_null(); }));
  etcd_->kill();
  ASSERT_EQ(on(0, "block", "198.18.0.88"), 0);  // waits in node 1's queue
  std::this_thread::sleep_for(3s);
  for (int i = 0; i < kNodes; i++) {
    auto st = fleet_status(i);
    EXPECT_EQ(st["connected"], false) << st.dump();
    EXPECT_EQ(occurrences(nodes_[i]->agent.log(), "fleet: etcd: "), 1u) << nodes_[i]->agent.log();
  }
  EXPECT_FALSE(listed(1, "198.18.0.87").is_null()) << "node 2 lost an entry while etcd was gone";
  ASSERT_EQ(nodes_[1]->pair.flood("198.18.0.87", 100, 20000), 100u);
  EXPECT_EQ(nodes_[1]->pair.counter("drop", "blocklist"), 100u);
  ASSERT_TRUE(etcd_->start()) << etcd_->log();
  for (int i = 1; i < kNodes; i++)
    EXPECT_TRUE(within(10000ms, [&] { return !listed(i, "198.18.0.88").is_null(); }))
        << "node " << i + 1 << ": " << nodes_[i]->agent.log();
  EXPECT_TRUE(within(10000ms, [&] { return fleet_status(2)["connected"] == true; }));
}

// An attack that blocks many addresses: one /24 published as a prefix, one
// holding a never-block address published address by address, and the writes
// bounded by max_publish_rate (what waits is counted, then published).
TEST_F(FleetTest, ManyBlocksAggregateAndAreRateBounded) {
  nodes_[0]->agent.stop();
  start_agent(0,
              "  max_publish_rate: 2/s\n  aggregate: {threshold: 4}\n"
              "  never_block: [198.18.7.200]\n");
  for (int i = 1; i <= 6; i++) {
    ASSERT_EQ(on(0, "block", fmt::format("198.18.6.{}", i)), 0);
    ASSERT_EQ(on(0, "block", fmt::format("198.18.7.{}", i)), 0);
  }
  // 198.18.6.0/24 as one entry; 198.18.7.x one by one (198.18.7.200 is never to be covered).
  EXPECT_TRUE(within(20000ms, [&] { return !listed(1, "198.18.6.0/24").is_null(); }))
      << nodes_[0]->agent.log();
  // Addresses published before the threshold was reached are taken back.
  EXPECT_TRUE(within(20000ms, [&] { return listed(1, "198.18.6.1").is_null(); }));
  EXPECT_TRUE(within(20000ms, [&] {
    for (int i = 1; i <= 6; i++)
      if (listed(1, fmt::format("198.18.7.{}", i)).is_null())
        return false;
    return true;
  })) << nodes_[0]->agent.log();
  EXPECT_TRUE(listed(1, "198.18.7.0/24").is_null());
  // In etcd: the prefix and the six addresses, nothing else.
  EXPECT_TRUE(within(20000ms, [&] {
    auto keys = etcd_->etcdctl("get --prefix /bpfgate/blocks/ --keys-only").out;
    return occurrences(keys, "/bpfgate/blocks/") == 7 && contains(keys, "198.18.6.0_24");
  })) << etcd_->etcdctl("get --prefix /bpfgate/blocks/ --keys-only").out;
  // 7 to 10 writes at 2 a second (the 12 blocks take about 1 s to make): some
  // waited, and were counted.
  auto st = fleet_status(0);
  EXPECT_GE(st["held_back"].get<uint64_t>(), 1u) << st.dump();
  EXPECT_GE(st["published"].get<uint64_t>(), 7u) << st.dump();
}

class FleetOf5Test : public FleetTest {
 protected:
  FleetOf5Test() : FleetTest(5) {}
};

// Two nodes block (and one unblocks) while etcd is killed and started again:
// all five converge on the same set, nothing lost, nothing resurrected.
TEST_F(FleetOf5Test, BlocksThroughAnEtcdRestartConvergeEverywhere) {
  std::set<std::string> want;
  auto block = [&](int node, int a, int b) {
    auto addr = fmt::format("198.18.{}.{}", a, b);
    ASSERT_EQ(on(node, "block", addr), 0);
    want.insert(addr + "/32");
  };
  for (int b = 1; b <= 5; b++) {
    block(0, 30, b);
    block(1, 40, b);
  }
  etcd_->kill();
  for (int b = 1; b <= 5; b++) {
    block(0, 31, b);
    block(1, 41, b);
  }
  ASSERT_EQ(on(0, "unblock", "198.18.30.1"), 0);  // known to the others before the outage
  want.erase("198.18.30.1/32");
  std::this_thread::sleep_for(1s);
  ASSERT_TRUE(etcd_->start()) << etcd_->log();
  for (int b = 1; b <= 5; b++)
    block(0, 32, b);
  auto t0 = Clock::now();
  for (int i = 0; i < 5; i++)
    EXPECT_TRUE(within(15000ms, [&] { return blocklist(i) == want; }))
        << "node " << i + 1 << " holds " << fmt::format("{}", fmt::join(blocklist(i), " ")) << "\n"
        << nodes_[i]->agent.log();
  std::printf(
      "fleet: 5 nodes converged on %zu entries %lld ms after the last block\n", want.size(),
      static_cast<long long>(
          std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t0).count()));
}

}  // namespace
}  // namespace bpfgate::test
