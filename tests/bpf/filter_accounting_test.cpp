// What the pipeline counts when something goes wrong around a verdict: a
// bucket's compare-and-swap lost to other CPUs, a prefix bucket refusing a
// frame its source's bucket already paid for, an auto-block the blocklist
// has no room for. Each case failed before its fix.
#include <bpf/libbpf.h>
#include <linux/bpf.h>

#include <gtest/gtest.h>

#include <chrono>
#include <thread>

#include "features/xdp/blocklist.hpp"
#include "core/config.hpp"
#include "core/packet.hpp"
#include "core/policy.hpp"
#include "support/filter_harness.hpp"
#include "support/prog_runner.hpp"

namespace bpfgate::test::filter_accounting {
namespace {

using core::PacketBuilder;

std::vector<uint8_t> udp(const std::string &src) {
  return PacketBuilder().ipv4(src, "198.18.0.1").udp(40000, 9).build();
}

// A packet whose compare-and-swap lost every try is no evidence of a source
// over its limit: it passes, is counted as contended, and never feeds the
// auto-block streak.
TEST(FilterAccounting, LosingEveryCasRacePassesAndIsCountedAsContended) {
  CasLostFilter f = load_cas_lost_filter_or_abort();
  agent::Datapath *dp = &f.dp;
  core::PolicyImage p = policy_from_yaml("limits: {rate: 1, burst: 1}\n");
  p.settings.block_after_ns = 1;  // any streak at all would block
  p.settings.block_ttl_ns = 60'000'000'000;
  ASSERT_TRUE(dp->apply(p).ok());
  ProgRunner run(f.prog_fd);
  for (int i = 0; i < 20; i++) {
    auto r = run.run(udp("198.18.4.4"));
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(r->retval, static_cast<uint32_t>(XDP_PASS)) << "packet " << i;
  }
  auto c = dp->counters();
  ASSERT_TRUE(c.ok());
  EXPECT_EQ((*c)[bg_counter_key(BG_VERDICT_DROP, BG_REASON_RATE_LIMIT)].packets, 0u);
  EXPECT_EQ((*c)[bg_counter_key(BG_VERDICT_PASS, BG_REASON_OK)].packets, 20u);
  auto s = dp->stats();
  ASSERT_TRUE(s.ok());
  EXPECT_EQ((*s)[BG_STAT_CAS_CONTENDED], 20u);
  EXPECT_TRUE(agent::list_blocks(*dp)->empty()) << "a lost race fed the auto-block streak";
}

// A source the per-source table has no room for (a test build whose table is
// a plain hash, full: the production LRU makes room) passes, since the
// filter fails open, and each such frame is counted, never silent.
TEST(FilterAccounting, ASourceTheTableRefusesPassesAndIsCounted) {
  CasLostFilter f = load_test_filter_or_abort("no_state_filter", "bg_no_state_filter", 1);
  ASSERT_TRUE(f.dp.apply(policy_from_yaml("limits: {rate: 1, burst: 1}\n")).ok());
  ProgRunner run(f.prog_fd);
  auto verdict = [&](const char *src) {
    auto r = run.run(udp(src));
    return r.ok() ? r->retval : ~0u;
  };
  // The first source takes the table's one entry: held to its limit.
  EXPECT_EQ(verdict("198.18.4.4"), static_cast<uint32_t>(XDP_PASS));
  EXPECT_EQ(verdict("198.18.4.4"), static_cast<uint32_t>(XDP_DROP));
  for (int i = 0; i < 5; i++)
    EXPECT_EQ(verdict("198.18.4.5"), static_cast<uint32_t>(XDP_PASS)) << "frame " << i;
  auto s = f.dp.stats();
  ASSERT_TRUE(s.ok());
  EXPECT_EQ((*s)[BG_STAT_NO_STATE], 5u);
}

// A frame the prefix bucket refuses gives its source's token back: the
// source's own bucket is charged only for frames that passed.
TEST(FilterAccounting, APrefixRefusalDoesNotSpendTheSourcesToken) {
  auto h = FilterHarness::load(policy_from_yaml(
      "limits: {rate: 1, burst: 10, prefix: {ipv4: 24, ipv6: 64, rate: 1, burst: 2}}\n"));
  ASSERT_TRUE(h.ok()) << h.error().what();
  int passed = 0;
  for (int i = 0; i < 6; i++)
    passed += h->run(udp("198.18.7.1")) == XDP_PASS;
  EXPECT_EQ(passed, 2);
  EXPECT_EQ(h->packets(BG_VERDICT_DROP, BG_REASON_PREFIX_LIMIT), 4u);
  auto st = h->source("198.18.7.1");
  ASSERT_TRUE(st.has_value());
  EXPECT_EQ(st->packets, 6u);
  EXPECT_EQ(st->drops, 4u);
  // Rate 1/s: each charged token moves the theoretical arrival time a second.
  const uint64_t charged_ns = st->tat_ns - st->first_seen_ns;
  EXPECT_GE(charged_ns, 2'000'000'000u);
  EXPECT_LT(charged_ns, 2'500'000'000u) << "the refused frames were charged to the source";
}

// An auto-block the blocklist refuses (full) is counted, and the source's
// over-limit streak goes on, so it is blocked as soon as there is room.
TEST(FilterAccounting, AnAutoBlockTheBlocklistRefusesIsCountedAndRetried) {
  core::PolicyImage p = policy_from_yaml("limits: {rate: 1, burst: 1}\n");
  p.settings.block_after_ns = 20'000'000;  // 20 ms over the limit
  p.settings.block_ttl_ns = 60'000'000'000;
  auto h = FilterHarness::load(p);
  ASSERT_TRUE(h.ok()) << h.error().what();
  auto &dp = h->datapath();
  // Fill the blocklist with manual /128 entries of 2001:db8:f::/48.
  bg_block b{};
  b.reason = BG_BLOCK_MANUAL;
  bg_lpm_key k{};
  k.prefixlen = 128;
  k.addr[0] = 0x20, k.addr[1] = 0x01, k.addr[2] = 0x0d, k.addr[3] = 0xb8, k.addr[5] = 0x0f;
  for (uint32_t i = 0; i < BG_BLOCKLIST_MAX; i++) {
    std::memcpy(k.addr + 12, &i, 4);
    ASSERT_TRUE(dp.blocklist().update(k, b).ok()) << "entry " << i;
  }
  ASSERT_TRUE(dp.blocklist_added().ok());
  auto f = udp("198.18.3.3");
  EXPECT_EQ(h->run(f), static_cast<uint32_t>(XDP_PASS)) << "the burst of one";
  auto start = std::chrono::steady_clock::now();
  while (std::chrono::steady_clock::now() - start < std::chrono::milliseconds(60)) {
    EXPECT_EQ(h->run(f), static_cast<uint32_t>(XDP_DROP));
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  auto s = dp.stats();
  ASSERT_TRUE(s.ok());
  EXPECT_GT((*s)[BG_STAT_AUTOBLOCK_FAILED], 0u);
  EXPECT_EQ(h->packets(BG_VERDICT_DROP, BG_REASON_BLOCKLIST), 0u);
  // Room for one: the next frame over the limit blocks the source at once.
  uint32_t first = 0;
  std::memcpy(k.addr + 12, &first, 4);
  ASSERT_TRUE(dp.blocklist().erase(k).value());
  EXPECT_EQ(h->run(f), static_cast<uint32_t>(XDP_DROP));
  EXPECT_EQ(h->run(f), static_cast<uint32_t>(XDP_DROP));
  EXPECT_GE(h->packets(BG_VERDICT_DROP, BG_REASON_BLOCKLIST), 1u)
      << "the streak restarted although the source was never blocked";
  auto blocks = agent::list_blocks(dp);
  ASSERT_TRUE(blocks.ok());
  bool found = false;
  for (const auto &e : *blocks)
    found |= core::format_prefix(e.prefix) == "198.18.3.3/32" && e.value.reason == BG_BLOCK_AUTO;
  EXPECT_TRUE(found);
}

}  // namespace
}  // namespace bpfgate::test::filter_accounting
