// The policy stages of the real XDP filter, each and in order of precedence:
//   ACL (longest prefix wins; allow passes unlimited, deny drops)
//   -> blocklist -> rule (pass, drop, own limit) -> source bucket -> prefix bucket.
#include <linux/bpf.h>
#include <sched.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <thread>

#include <fmt/format.h>

#include "features/xdp/blocklist.hpp"
#include "bpf/map.hpp"
#include "core/config.hpp"
#include "core/packet.hpp"
#include "core/policy.hpp"
#include "support/filter_harness.hpp"

namespace bpfgate::test::policy {
namespace {

using core::PacketBuilder;
constexpr const char *kDst = "198.18.0.1";
constexpr const char *kDst6 = "2001:db8::1";

FilterHarness load(const core::PolicyImage &p, uint32_t max_sources = 4096) {
  return FilterHarness::load_or_abort(p, max_sources);
}

std::vector<uint8_t> udp(const std::string &src, uint16_t dport = 9) {
  if (src.find(':') != std::string::npos)
    return PacketBuilder().ipv6(src, kDst6).udp(40000, dport).build();
  return PacketBuilder().ipv4(src, kDst).udp(40000, dport).build();
}
std::vector<uint8_t> tcp(const std::string &src, uint16_t dport) {
  if (src.find(':') != std::string::npos)
    return PacketBuilder().ipv6(src, kDst6).tcp(40000, dport).build();
  return PacketBuilder().ipv4(src, kDst).tcp(40000, dport).build();
}

int passes(FilterHarness &h, const std::vector<uint8_t> &f, int n) {
  int p = 0;
  for (int i = 0; i < n; i++)
    p += h.run(f) == XDP_PASS;
  return p;
}

TEST(Policy, AllowSkipsLimitsDenyDropsFirst) {
  auto h = load(
      policy_from_yaml("limits: {rate: 1, burst: 1}\nallow: [198.18.9.0/24, '2001:db8:9::/48']\n"
                       "deny: [198.18.66.0/24, '2001:db8:66::/48']\n"));
  EXPECT_EQ(passes(h, udp("198.18.9.5"), 50), 50);
  EXPECT_EQ(passes(h, udp("2001:db8:9::5"), 50), 50);
  EXPECT_EQ(passes(h, udp("198.18.66.1"), 10), 0);
  EXPECT_EQ(passes(h, udp("2001:db8:66::1"), 10), 0);
  EXPECT_EQ(passes(h, udp("198.18.10.1"), 10), 1);  // neither: the default limit
  EXPECT_EQ(h.packets(BG_VERDICT_PASS, BG_REASON_ALLOW), 100u);
  EXPECT_EQ(h.packets(BG_VERDICT_DROP, BG_REASON_DENY), 20u);
  EXPECT_EQ(h.packets(BG_VERDICT_DROP, BG_REASON_RATE_LIMIT), 9u);
  EXPECT_FALSE(h.source("198.18.9.5")) << "allowed sources cost no per-source state";
  EXPECT_FALSE(h.source("198.18.66.1")) << "denied sources cost no per-source state";
}

TEST(Policy, TheLongestPrefixDecides) {
  auto h =
      load(policy_from_yaml("limits: {rate: 1, burst: 1}\n"
                            "deny: [198.18.0.0/16, 198.18.7.7, '2001:db8::/32']\n"
                            "allow: [198.18.7.0/24, '2001:db8:1::/48']\n"));
  EXPECT_EQ(h.run(udp("198.18.7.8")), XDP_PASS);  // allow /24 inside deny /16
  EXPECT_EQ(h.run(udp("198.18.7.8")), XDP_PASS);  // ... without limits
  EXPECT_EQ(h.run(udp("198.18.7.7")), XDP_DROP);  // deny /32 inside allow /24
  EXPECT_EQ(h.run(udp("198.18.8.1")), XDP_DROP);  // only the deny /16
  EXPECT_EQ(h.run(udp("2001:db8:1::9")), XDP_PASS);
  EXPECT_EQ(h.run(udp("2001:db8:2::9")), XDP_DROP);
  EXPECT_EQ(h.packets(BG_VERDICT_PASS, BG_REASON_ALLOW), 3u);
  EXPECT_EQ(h.packets(BG_VERDICT_DROP, BG_REASON_DENY), 3u);
}

// An IPv6 prefix covers IPv6 sources only, however short: ::/0 denies every
// IPv6 source and no IPv4 one (which live in the trie as ::ffff:a.b.c.d);
// 0.0.0.0/0 is IPv4's. The longest prefix still decides within a family.
TEST(Policy, AnIpv6PrefixNeverMatchesIpv4Sources) {
  auto h =
      load(policy_from_yaml("limits: {rate: 1000, burst: 1000}\n"
                            "deny: ['::/0', 198.18.66.0/24]\n"
                            "allow: ['2001:db8:9::/48', '8000::/1']\n"));
  EXPECT_EQ(h.run(udp("198.18.0.5")), XDP_PASS) << "::/0 denied an IPv4 source";
  EXPECT_EQ(h.run(udp("198.18.66.5")), XDP_DROP);
  EXPECT_EQ(h.run(udp("2001:db8::5")), XDP_DROP);
  EXPECT_EQ(h.run(udp("::1")), XDP_DROP);
  EXPECT_EQ(h.run(udp("2001:db8:9::5")), XDP_PASS);
  EXPECT_EQ(h.run(udp("fe80::1")), XDP_PASS);  // allow 8000::/1 over deny ::/0
  auto v4 = load(policy_from_yaml("deny: ['0.0.0.0/0']\n"));
  EXPECT_EQ(v4.run(udp("198.18.0.5")), XDP_DROP);
  EXPECT_EQ(v4.run(udp("2001:db8::5")), XDP_PASS);
}

// A blocklist entry is one trie key, not split like an ACL prefix: an IPv6
// prefix that holds the IPv4 sources' range is refused, nothing is blocked.
TEST(Policy, ABlockOfAnIpv6PrefixHoldingIpv4SourcesIsRefused) {
  auto h = load(policy_from_yaml("limits: {rate: 1000, burst: 1000}\n"));
  auto &dp = h.datapath();
  for (const char *p : {"::/0", "::/1", "::ffff:0:0/96"}) {
    auto st = agent::block(dp, *core::parse_prefix(p), 0);
    ASSERT_FALSE(st.ok()) << p;
    EXPECT_NE(std::string(st.error().what()).find("would block IPv4 too"), std::string::npos)
        << st.error().what();
  }
  EXPECT_EQ(agent::list_blocks(dp)->size(), 0u);
  EXPECT_EQ(h.run(udp("198.18.0.5")), XDP_PASS);
  ASSERT_TRUE(agent::block(dp, *core::parse_prefix("2000::/3"), 0).ok());
  ASSERT_TRUE(agent::block(dp, *core::parse_prefix("::ffff:198.18.7.0/120"), 0).ok());
  EXPECT_EQ(h.run(udp("2001:db8::5")), XDP_DROP);
  EXPECT_EQ(h.run(udp("198.18.7.5")), XDP_DROP);
  EXPECT_EQ(h.run(udp("198.18.0.5")), XDP_PASS);
}

TEST(Policy, BlocklistDropsUntilItExpiresAndAllowStillWins) {
  auto h = load(policy_from_yaml("limits: {rate: 1000}\nallow: [198.18.9.0/24]\n"));
  auto &dp = h.datapath();
  ASSERT_TRUE(agent::block(dp, *core::parse_prefix("198.18.5.0/24"), 0).ok());
  ASSERT_TRUE(agent::block(dp, *core::parse_prefix("198.18.9.9"), 0).ok());
  ASSERT_TRUE(agent::block(dp, *core::parse_prefix("2001:db8:5::/64"), 0).ok());
  EXPECT_EQ(passes(h, udp("198.18.5.1"), 5), 0);
  EXPECT_EQ(passes(h, udp("198.18.5.200"), 5), 0);
  EXPECT_EQ(passes(h, udp("2001:db8:5::1"), 5), 0);
  EXPECT_EQ(passes(h, udp("198.18.6.1"), 5), 5);
  EXPECT_EQ(passes(h, udp("198.18.9.9"), 5), 5) << "the allow list comes before the blocklist";
  EXPECT_EQ(h.packets(BG_VERDICT_DROP, BG_REASON_BLOCKLIST), 15u);
  auto blocks = agent::list_blocks(dp);
  ASSERT_TRUE(blocks.ok());
  for (const auto &b : *blocks) {
    if (core::format_prefix(b.prefix) == "198.18.5.0/24") {
      EXPECT_EQ(b.value.drops, 10u);
    }
  }

  // An entry whose time is up drops nothing more, and the sweep removes it.
  bg_block old{};
  // A second ago: the datapath reads a block's expiry on the coarse clock,
  // which may be a tick (1-10 ms) behind.
  old.expires_ns = agent::monotonic_ns() - 1'000'000'000ULL;
  old.reason = BG_BLOCK_MANUAL;
  ASSERT_TRUE(dp.blocklist().update(core::parse_prefix("198.18.5.0/24")->key, old).ok());
  EXPECT_EQ(passes(h, udp("198.18.5.1"), 5), 5);
  auto r = agent::sweep(dp, 0);
  ASSERT_TRUE(r.ok());
  ASSERT_EQ(r->released.size(), 1u);
  EXPECT_EQ(core::format_prefix(r->released[0].prefix), "198.18.5.0/24");
  EXPECT_EQ(agent::list_blocks(dp)->size(), 2u);
  ASSERT_TRUE(agent::unblock(dp, *core::parse_prefix("2001:db8:5::/64")).value());
  EXPECT_EQ(passes(h, udp("2001:db8:5::1"), 5), 5);
}

TEST(Policy, RulesByProtocolAndPortRange) {
  auto h =
      load(policy_from_yaml("limits: {rate: 2, burst: 2}\nrules:\n"
                            "  - {match: udp/53, action: drop}\n"
                            "  - {match: tcp/8000-8099, action: pass}\n"
                            "  - {match: tcp/443, rate: 3, burst: 3}\n"
                            "  - {match: icmp, action: drop}\n"
                            "  - {match: icmpv6, action: pass}\n"));
  const std::string a = "198.18.1.1", b = "2001:db8::a";
  EXPECT_EQ(passes(h, udp(a, 53), 5), 0);
  EXPECT_EQ(passes(h, udp(b, 53), 5), 0);
  EXPECT_EQ(passes(h, tcp(a, 8000), 10), 10);
  EXPECT_EQ(passes(h, tcp(a, 8099), 10), 10);
  EXPECT_EQ(passes(h, tcp(b, 8050), 10), 10);
  EXPECT_EQ(passes(h, tcp(a, 443), 10), 3);   // the rule's own bucket
  EXPECT_EQ(passes(h, tcp(a, 7999), 10), 2);  // the default bucket, untouched by 443
  EXPECT_EQ(passes(h, tcp(a, 8100), 10), 0);  // ... now empty
  EXPECT_EQ(passes(h, PacketBuilder().ipv4(a, kDst).icmp(8, 0).build(), 3), 0);
  EXPECT_EQ(passes(h, PacketBuilder().ipv6(b, kDst6).icmp(128, 0).build(), 3), 3);
  EXPECT_EQ(h.packets(BG_VERDICT_DROP, BG_REASON_RULE), 13u);
  EXPECT_EQ(h.packets(BG_VERDICT_PASS, BG_REASON_RULE), 33u);
  ASSERT_TRUE(h.source(a, 3).has_value());  // rule 3 (tcp/443) has a bucket per source
  EXPECT_EQ(h.source(a, 3)->drops, 7u);
  EXPECT_EQ(h.source(a, 0)->drops, 18u);
}

TEST(Policy, PrefixLimitCatchesAFloodSpreadOverAddresses) {
  auto h = load(
      policy_from_yaml("limits: {rate: 100, prefix: {ipv4: 24, ipv6: 64, rate: 5, burst: 5}}\n"));
  int passed = 0;
  for (int i = 1; i <= 20; i++)
    passed += h.run(udp("198.18.7." + std::to_string(i))) == XDP_PASS;
  EXPECT_EQ(passed, 5);
  EXPECT_EQ(h.run(udp("198.18.8.1")), XDP_PASS) << "another /24 has its own bucket";
  passed = 0;
  for (int i = 1; i <= 20; i++)
    passed += h.run(udp("2001:db8:0:7::" + std::to_string(i))) == XDP_PASS;
  EXPECT_EQ(passed, 5);
  EXPECT_EQ(h.run(udp("2001:db8:0:8::1")), XDP_PASS);
  EXPECT_EQ(h.packets(BG_VERDICT_DROP, BG_REASON_PREFIX_LIMIT), 30u);
  auto p4 = h.prefix("198.18.7.0/24");
  ASSERT_TRUE(p4.has_value());
  EXPECT_EQ(p4->packets, 20u);
  EXPECT_EQ(p4->drops, 15u);
  ASSERT_TRUE(h.prefix("2001:db8:0:7::/64").has_value());
}

// Sources without state get some at the new-source rate (each CPU its share);
// the rest are dropped and leave nothing in the sources map, so a flood of
// spoofed sources cannot churn it; sources already known keep passing.
TEST(Policy, NewSourcesGetInAtTheirRateAndKnownSourcesKeepPassing) {
  const unsigned cpus = static_cast<unsigned>(std::max(bpf::possible_cpus(), 1));
  // One CPU runs every frame below: its share of a 40-burst.
  cpu_set_t old_set, one;
  sched_getaffinity(0, sizeof(old_set), &old_set);
  CPU_ZERO(&one);
  CPU_SET(0, &one);
  ASSERT_EQ(sched_setaffinity(0, sizeof(one), &one), 0);
  const int share = static_cast<int>(std::max(40u / cpus, 1u));
  auto h = load(policy_from_yaml("limits: {rate: 100, new_sources: {rate: 4, burst: 40}}\n"));
  ASSERT_EQ(h.run(udp("198.18.9.1")), XDP_PASS) << "the first source takes one of the share";
  int passed = 0;
  for (int i = 0; i < 200; i++)
    passed += h.run(udp(fmt::format("198.18.{}.{}", 10 + i / 200, 1 + i % 200))) == XDP_PASS;
  EXPECT_GE(passed, share - 1);
  EXPECT_LE(passed, share) << "at most one token refilled while the loop ran";
  EXPECT_EQ(h.packets(BG_VERDICT_DROP, BG_REASON_NEW_SOURCE), static_cast<uint64_t>(200 - passed));
  EXPECT_EQ(h.source_count(), static_cast<size_t>(1 + passed)) << "refused sources leave no state";
  for (int i = 0; i < 5; i++)
    EXPECT_EQ(h.run(udp("198.18.9.1")), XDP_PASS) << "a known source is not a new one";
  EXPECT_EQ(h.run(udp("2001:db8:77::1")), XDP_DROP) << "IPv6 sources count the same";

  auto off = load(policy_from_yaml("limits: {rate: 100, new_sources: off}\n"));
  int all = 0;
  for (int i = 0; i < 200; i++)
    all += off.run(udp(fmt::format("198.18.11.{}", 1 + i % 250))) == XDP_PASS;
  EXPECT_EQ(all, 200) << "off: every new source gets state";
  EXPECT_EQ(off.packets(BG_VERDICT_DROP, BG_REASON_NEW_SOURCE), 0u);
  sched_setaffinity(0, sizeof(old_set), &old_set);
}

TEST(Policy, AutoBlockAfterStayingOverTheLimitThenExpires) {
  core::PolicyImage p = policy_from_yaml("limits: {rate: 1, burst: 1}\n");
  p.settings.block_after_ns = 50'000'000;  // 50 ms over the limit
  p.settings.block_ttl_ns = 300'000'000;   // blocked for 300 ms
  auto h = load(p);
  auto f = udp("198.18.3.3");
  auto start = std::chrono::steady_clock::now();
  while (std::chrono::steady_clock::now() - start < std::chrono::milliseconds(150)) {
    h.run(f);
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  EXPECT_GT(h.packets(BG_VERDICT_DROP, BG_REASON_BLOCKLIST), 0u);
  auto blocks = agent::list_blocks(h.datapath());
  ASSERT_TRUE(blocks.ok());
  ASSERT_EQ(blocks->size(), 1u);
  EXPECT_EQ(core::format_prefix((*blocks)[0].prefix), "198.18.3.3/32");
  EXPECT_EQ((*blocks)[0].value.reason, BG_BLOCK_AUTO);
  EXPECT_LE((*blocks)[0].remaining_ns, 300'000'000u);
  EXPECT_EQ(h.run(udp("198.18.3.4")), XDP_PASS) << "only the offender is blocked";

  std::this_thread::sleep_for(std::chrono::milliseconds(350));
  uint64_t blocked = h.packets(BG_VERDICT_DROP, BG_REASON_BLOCKLIST);
  h.run(f);
  EXPECT_EQ(h.packets(BG_VERDICT_DROP, BG_REASON_BLOCKLIST), blocked) << "still blocked after TTL";
  auto r = agent::sweep(h.datapath(), 0);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->released.size(), 1u);
  EXPECT_TRUE(agent::list_blocks(h.datapath())->empty());
}

// A source with state carries what the ACL and the blocklist said of it
// under the policy in force (bg_src_state.policy_epoch) and skips both
// lookups while that policy holds. Every change that could turn the answer
// must reach a source that cached "neither".
TEST(Policy, ASourceWithStateSeesEveryBlockAndEveryNewAcl) {
  auto h = load(policy_from_yaml("limits: {rate: 1000, burst: 1000}\n"));
  auto &dp = h.datapath();
  auto f = udp("198.18.12.1");
  EXPECT_EQ(passes(h, f, 3), 3);
  auto st = h.source("198.18.12.1");
  ASSERT_TRUE(st);
  EXPECT_NE(st->policy_epoch, 0u) << "the entry caches the lists' answer";

  // A manual block of its prefix: the next frame is dropped.
  ASSERT_TRUE(agent::block(dp, *core::parse_prefix("198.18.12.0/24"), 0).ok());
  EXPECT_EQ(passes(h, f, 3), 0);
  EXPECT_EQ(h.packets(BG_VERDICT_DROP, BG_REASON_BLOCKLIST), 3u);
  ASSERT_TRUE(agent::unblock(dp, *core::parse_prefix("198.18.12.0/24")).value());
  EXPECT_EQ(passes(h, f, 3), 3);

  // A new policy that denies it, then one that allows it (no bucket).
  ASSERT_TRUE(
      dp.apply(policy_from_yaml("limits: {rate: 1000, burst: 1000}\ndeny: [198.18.12.0/24]\n"))
          .ok());
  EXPECT_EQ(passes(h, f, 2), 0);
  EXPECT_EQ(h.packets(BG_VERDICT_DROP, BG_REASON_DENY), 2u);
  ASSERT_TRUE(
      dp.apply(policy_from_yaml("limits: {rate: 1000, burst: 1000}\nallow: [198.18.12.1]\n")).ok());
  EXPECT_EQ(passes(h, f, 2), 2);
  EXPECT_EQ(h.packets(BG_VERDICT_PASS, BG_REASON_ALLOW), 2u);
  ASSERT_TRUE(dp.apply(policy_from_yaml("limits: {rate: 1000, burst: 1000}\n")).ok());
  EXPECT_EQ(passes(h, f, 2), 2);
  EXPECT_EQ(h.packets(BG_VERDICT_PASS, BG_REASON_OK), 3u + 3u + 2u);
}

// An auto-block earned under one rule's bucket drops the source under every
// rule, also where its entry (the default limit's) had cached "not listed".
TEST(Policy, AnAutoBlockReachesTheSourcesOtherBuckets) {
  core::PolicyImage p = policy_from_yaml(
      "limits: {rate: 1000, burst: 1000}\nrules:\n  - {match: udp/53, rate: 1, burst: 1}\n");
  p.settings.block_after_ns = 20'000'000;  // 20 ms over the limit
  p.settings.block_ttl_ns = 60'000'000'000ULL;
  auto h = load(p);
  auto other = udp("198.18.13.1", 9);
  auto dns = udp("198.18.13.1", 53);
  EXPECT_EQ(passes(h, other, 3), 3);  // its default-limit entry caches "not listed"
  auto start = std::chrono::steady_clock::now();
  while (h.packets(BG_VERDICT_DROP, BG_REASON_BLOCKLIST) == 0 &&
         std::chrono::steady_clock::now() - start < std::chrono::seconds(5)) {
    h.run(dns);
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  ASSERT_GT(h.packets(BG_VERDICT_DROP, BG_REASON_BLOCKLIST), 0u) << "never auto-blocked";
  EXPECT_EQ(passes(h, other, 3), 0) << "blocked under its other rule too";
  EXPECT_EQ(h.run(udp("198.18.13.2", 9)), XDP_PASS) << "only the offender";
}

TEST(Policy, ApplyKeepsCountersAndPerSourceState) {
  auto h = load(policy_from_yaml("limits: {rate: 1, burst: 3}\n"));
  auto f = udp("198.18.4.4");
  EXPECT_EQ(passes(h, f, 10), 3);
  auto before = h.counters();
  ASSERT_TRUE(h.datapath()
                  .apply(policy_from_yaml("limits: {rate: 1, burst: 3}\ndeny: [198.18.99.0/24]\n"))
                  .ok());
  auto after = h.counters();
  for (int k = 0; k < BG_COUNTER_NR; k++)
    EXPECT_EQ(after[k].packets, before[k].packets) << k;
  EXPECT_EQ(passes(h, f, 5), 0) << "the bucket survived the switch";
  EXPECT_EQ(h.source("198.18.4.4")->packets, 15u);
  EXPECT_EQ(h.run(udp("198.18.99.1")), XDP_DROP);
  auto cfg = h.datapath().config();
  ASSERT_TRUE(cfg.ok());
  EXPECT_EQ(cfg->generation, 2u);  // the initial policy, then this one
}

TEST(Policy, HundredThousandPrefixesLoadAndWork) {
  core::Config c;
  for (uint32_t i = 0; i < 50000; i++) {
    // 198.18.0.0/15 holds 512 /24s; the rest are IPv6 /64s and /48s.
    auto v6 = core::parse_prefix(fmt::format("2001:db8:{:x}:{:x}::/64", i / 256, i % 256));
    auto v4 = core::parse_prefix(fmt::format("2001:db8:8{:03x}:{:x}::/64", i / 4096, i % 4096));
    ASSERT_TRUE(v6.ok() && v4.ok());
    c.allow.push_back(*v6);
    c.deny.push_back(*v4);
  }
  for (uint32_t i = 0; i < 256; i++)
    c.deny.push_back(*core::parse_prefix(fmt::format("198.19.{}.0/24", i)));
  c.limits = {1, 1};
  auto t0 = std::chrono::steady_clock::now();
  auto h = load(core::compile(c));
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  RecordProperty("load_and_apply_s", std::to_string(secs));
  EXPECT_EQ(passes(h, udp("2001:db8:0:5::1"), 10), 10);
  EXPECT_EQ(passes(h, udp("2001:db8:c3:4f::9"), 10), 10);  // entry 49999
  EXPECT_EQ(passes(h, udp("2001:db8:8000:1::1"), 10), 0);
  EXPECT_EQ(passes(h, udp("2001:db8:800c:34f::1"), 10), 0);  // entry 49999
  EXPECT_EQ(passes(h, udp("198.19.200.7"), 10), 0);
  EXPECT_EQ(passes(h, udp("198.18.200.7"), 10), 1);  // in no list: the default limit
  auto active = h.datapath().active_policy();
  ASSERT_TRUE(active.ok());
  EXPECT_EQ(active->acl.size(), 100256u);
}

// Packets run on every CPU while the policy switches back and forth between
// two large policies: no packet ever sees a mix or a gap.
TEST(Policy, SwitchingUnderTrafficNeverMisverdicts) {
  std::string big_a = "limits: {rate: 1, burst: 1}\nallow: [198.18.9.0/24]\ndeny: [198.18.66.0/24";
  std::string big_b = big_a;
  for (int i = 0; i < 5000; i++) {
    big_a += ", '2001:db8:a:" + std::to_string(i) + "::/64'";
    big_b += ", '2001:db8:b:" + std::to_string(i) + "::/64'";
  }
  core::PolicyImage a = policy_from_yaml(big_a + "]\n"), b = policy_from_yaml(big_b + "]\n");
  auto h = load(a);
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> wrong{0}, runs{0};
  auto hammer = [&](int cpu) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
    ProgRunner r(h.prog_fd());
    auto ok = udp("198.18.9.1"), bad = udp("198.18.66.1");
    while (!stop) {
      auto x = r.run(ok), y = r.run(bad);
      if (!x || !y || x->retval != XDP_PASS || y->retval != XDP_DROP)
        wrong++;
      runs += 2;
    }
  };
  std::vector<std::thread> threads;
  for (unsigned c = 0; c < std::max(2u, std::thread::hardware_concurrency()) && c < 4; c++)
    threads.emplace_back(hammer, static_cast<int>(c % std::thread::hardware_concurrency()));
  for (int i = 0; i < 10; i++)
    ASSERT_TRUE(h.datapath().apply(i % 2 ? a : b).ok());
  stop = true;
  for (auto &t : threads)
    t.join();
  EXPECT_GT(runs.load(), 1000u);
  EXPECT_EQ(wrong.load(), 0u);
  EXPECT_EQ(
      h.packets(BG_VERDICT_PASS, BG_REASON_ALLOW) + h.packets(BG_VERDICT_DROP, BG_REASON_DENY),
      runs.load());
}

}  // namespace
}  // namespace bpfgate::test::policy
