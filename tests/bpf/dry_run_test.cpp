// Dry-run (global and per rule) and the bypass switch, on the real filter
// run through bpf_prog_test_run_opts: what would be dropped is passed and
// counted as would-drop by reason; real drop counters stay for real drops;
// no auto-block is made; bypass passes everything, counted.
#include <linux/bpf.h>

#include <gtest/gtest.h>

#include <chrono>
#include <thread>

#include "core/packet.hpp"
#include "support/filter_harness.hpp"

namespace bpfgate::test::dry_run {
namespace {

using core::PacketBuilder;

constexpr const char *kDenied = "198.18.5.7";
constexpr const char *kOther = "198.18.0.10";
constexpr const char *kDst = "198.18.0.1";

std::vector<uint8_t> udp4(const std::string &src, uint16_t dport = 9000) {
  return PacketBuilder().ipv4(src, kDst).udp(40000, dport).frame_size(100).build();
}

uint64_t would(FilterHarness &h, bg_reason r) {
  auto ops = h.datapath().op_stats();
  EXPECT_TRUE(ops) << ops.error().what();
  return ops ? (*ops)[BG_OP_WOULD_DROP + static_cast<unsigned>(r)].packets : 0;
}

uint64_t op(FilterHarness &h, bg_op_stat s) {
  auto ops = h.datapath().op_stats();
  EXPECT_TRUE(ops) << ops.error().what();
  return ops ? (*ops)[s].packets : 0;
}

TEST(DryRun, GlobalPassesWhatItWouldDropAndCountsItByReason) {
  auto h = FilterHarness::load_or_abort(policy_from_yaml("dry_run: on\n"
                                                         "deny: [198.18.5.0/24]\n"
                                                         "limits: {rate: 2, burst: 2}\n"),
                                        1024);
  ASSERT_TRUE(h.datapath().has_op_stats());
  EXPECT_EQ(h.run(udp4(kDenied)), XDP_PASS);
  EXPECT_EQ(would(h, BG_REASON_DENY), 1u);
  EXPECT_EQ(h.packets(BG_VERDICT_DROP, BG_REASON_DENY), 0u);
  for (int i = 0; i < 5; i++)
    EXPECT_EQ(h.run(udp4(kOther)), XDP_PASS) << i;
  EXPECT_EQ(h.packets(BG_VERDICT_PASS, BG_REASON_OK), 2u);
  EXPECT_EQ(would(h, BG_REASON_RATE_LIMIT), 3u);
  EXPECT_EQ(h.packets(BG_VERDICT_DROP, BG_REASON_RATE_LIMIT), 0u);
  auto ops = h.datapath().op_stats();
  ASSERT_TRUE(ops);
  EXPECT_EQ((*ops)[BG_OP_WOULD_DROP + static_cast<unsigned>(BG_REASON_DENY)].bytes, 100u);
}

TEST(DryRun, OffDropsAsBefore) {
  auto h = FilterHarness::load_or_abort(policy_from_yaml("deny: [198.18.5.0/24]\n"), 1024);
  EXPECT_EQ(h.run(udp4(kDenied)), XDP_DROP);
  EXPECT_EQ(h.packets(BG_VERDICT_DROP, BG_REASON_DENY), 1u);
  EXPECT_EQ(would(h, BG_REASON_DENY), 0u);
}

TEST(DryRun, PerRuleCoversItsRuleAndNotTheListsNorOtherRules) {
  auto h = FilterHarness::load_or_abort(
      policy_from_yaml("deny: [198.18.5.0/24]\n"
                       "rules:\n"
                       "  - {match: udp/53, action: drop, dry_run: on}\n"
                       "  - {match: udp/54, action: drop}\n"
                       "  - {match: udp/55, rate: 1, burst: 1, dry_run: on}\n"),
      1024);
  EXPECT_EQ(h.run(udp4(kOther, 53)), XDP_PASS);
  EXPECT_EQ(would(h, BG_REASON_RULE), 1u);
  EXPECT_EQ(h.packets(BG_VERDICT_DROP, BG_REASON_RULE), 0u);
  EXPECT_EQ(h.run(udp4(kOther, 54)), XDP_DROP);
  EXPECT_EQ(h.packets(BG_VERDICT_DROP, BG_REASON_RULE), 1u);
  // The deny list comes before any rule: a dry-run rule does not open it.
  EXPECT_EQ(h.run(udp4(kDenied, 53)), XDP_DROP);
  EXPECT_EQ(h.packets(BG_VERDICT_DROP, BG_REASON_DENY), 1u);
  // The rule's own bucket: over it, passed and counted.
  EXPECT_EQ(h.run(udp4(kOther, 55)), XDP_PASS);
  EXPECT_EQ(h.run(udp4(kOther, 55)), XDP_PASS);
  EXPECT_EQ(would(h, BG_REASON_RATE_LIMIT), 1u);
  // The policy read back keeps the rules' dry-run (a `set` keeps it).
  auto p = h.datapath().active_policy();
  ASSERT_TRUE(p);
  ASSERT_EQ(p->rules.size(), 4u);
  EXPECT_EQ(p->rules[1].flags, static_cast<__u32>(BG_RULE_DRY_RUN));
  EXPECT_EQ(p->rules[2].flags, 0u);
}

TEST(DryRun, AutoBlockIsCountedNotMade) {
  auto h = FilterHarness::load_or_abort(policy_from_yaml("dry_run: on\n"
                                                         "limits: {rate: 1, burst: 1}\n"
                                                         "auto_block: {after: 100ms, ttl: 10s}\n"),
                                        1024);
  auto f = udp4(kOther);
  const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(400);
  int sent = 0;
  while (std::chrono::steady_clock::now() < until && sent < 4000) {
    EXPECT_EQ(h.run(f), XDP_PASS);
    sent++;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  EXPECT_GE(op(h, BG_OP_WOULD_AUTOBLOCK), 1u);
  auto blocks = h.datapath().blocklist().dump();
  ASSERT_TRUE(blocks);
  EXPECT_TRUE(blocks->empty()) << "dry-run made an auto-block";
  EXPECT_GT(would(h, BG_REASON_RATE_LIMIT), 0u);
  EXPECT_EQ(h.packets(BG_VERDICT_DROP, BG_REASON_RATE_LIMIT), 0u);
}

TEST(Bypass, PassesEveryFrameCountedAndStopsWhenOff) {
  auto h = FilterHarness::load_or_abort(policy_from_yaml("deny: [198.18.5.0/24]\n"), 1024);
  ASSERT_TRUE(h.datapath().set_bypass(true));
  for (int i = 0; i < 3; i++)
    EXPECT_EQ(h.run(udp4(kDenied)), XDP_PASS);
  EXPECT_EQ(op(h, BG_OP_BYPASSED), 3u);
  EXPECT_EQ(h.packets(BG_VERDICT_DROP, BG_REASON_DENY), 0u);
  // Not a policy: an apply keeps it.
  ASSERT_TRUE(h.datapath().apply(policy_from_yaml("deny: [198.18.5.0/24]\n")));
  EXPECT_EQ(h.run(udp4(kDenied)), XDP_PASS);
  ASSERT_TRUE(h.datapath().set_bypass(false));
  EXPECT_EQ(h.run(udp4(kDenied)), XDP_DROP);
  EXPECT_EQ(op(h, BG_OP_BYPASSED), 4u);
  EXPECT_EQ(h.packets(BG_VERDICT_DROP, BG_REASON_DENY), 1u);
}

}  // namespace
}  // namespace bpfgate::test::dry_run
