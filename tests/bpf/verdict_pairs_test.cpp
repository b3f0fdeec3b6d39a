// The verdict x reason pairs /metrics exports (agent::kVerdictReasons), each
// made by the real XDP filter from a crafted frame: the pair's counter moves,
// and no frame moves the counter of a pair the table lacks. A pair in the
// table that no case here produces fails, so the table cannot list a pair the
// pipeline never makes.
//
// Some pairs have more than one path through bpf/xdp/filter.h;
// the cases take the plainest. pass/ok also comes from a SYN passed without
// state (proof_test.cpp), a compare-and-swap lost on every try
// (filter_accounting_test.cpp) and a config map without its entry (no frame
// can make that: the array map always has it). unparseable also comes from a
// transport header cut short, after the source's bucket (xdp_filter_test.cpp);
// allow, deny and blocklist also from a rule whose action is pass or drop
// (the lists come first).
#include <linux/bpf.h>

#include <gtest/gtest.h>

#include <functional>
#include <ostream>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "features/xdp/blocklist.hpp"
#include "core/cidr.hpp"
#include "core/packet.hpp"
#include "support/filter_harness.hpp"

namespace bpfgate::agent {
// How gtest names a pair (found by argument-dependent lookup).
void PrintTo(const VerdictReason &p, std::ostream *os) {
  *os << to_string(p.verdict) << "/" << to_string(p.reason);
}
}  // namespace bpfgate::agent

namespace bpfgate::test {
namespace {

using agent::kVerdictReasons;
using agent::VerdictReason;
using core::PacketBuilder;
using Frames = std::vector<std::vector<uint8_t>>;

constexpr const char *kDst = "198.18.0.1";

std::vector<uint8_t> udp(const std::string &src, uint16_t dport = 9) {
  return PacketBuilder().ipv4(src, kDst).udp(40000, dport).build();
}

// Runs every frame through h; the counters after.
agent::CounterTotals run_all(FilterHarness h, const Frames &frames) {
  for (const auto &f : frames)
    h.run(f);
  return h.counters();
}

agent::CounterTotals with_policy(const std::string &yaml, const Frames &frames) {
  return run_all(FilterHarness::load_or_abort(policy_from_yaml(yaml), 1024), frames);
}

agent::CounterTotals with_unparsed(bg_verdict unparsed, const Frames &frames) {
  auto h = FilterHarness::load({100, 100}, 1024, unparsed);
  if (!h) {
    ADD_FAILURE() << h.error().what();
    return {};
  }
  return run_all(std::move(*h), frames);
}

struct Case {
  VerdictReason pair;
  const char *how;
  std::function<agent::CounterTotals()> run;
};

std::vector<Case> cases() {
  auto ipv4_cut_short = [] {
    auto f = udp("198.18.1.1");
    f.resize(14 + 12);
    return f;
  };
  return {
      {{BG_VERDICT_PASS, BG_REASON_NOT_IP},
       "an ARP frame",
       [] {
         auto arp = PacketBuilder().payload(46).build();
         arp[12] = 0x08, arp[13] = 0x06;
         return with_policy("limits: {rate: 1, burst: 1}\n", {arp});
       }},
      {{BG_VERDICT_PASS, BG_REASON_UNPARSEABLE},
       "an IPv4 header cut short, unparsed: pass",
       [=] { return with_unparsed(BG_VERDICT_PASS, {ipv4_cut_short()}); }},
      {{BG_VERDICT_DROP, BG_REASON_UNPARSEABLE},
       "an IPv4 header cut short, unparsed: drop",
       [=] { return with_unparsed(BG_VERDICT_DROP, {ipv4_cut_short()}); }},
      {{BG_VERDICT_PASS, BG_REASON_ALLOW},
       "a source on the allow list",
       [] { return with_policy("allow: [198.18.9.0/24]\n", {udp("198.18.9.5")}); }},
      {{BG_VERDICT_DROP, BG_REASON_DENY},
       "a source on the deny list",
       [] { return with_policy("deny: [198.18.66.0/24]\n", {udp("198.18.66.1")}); }},
      {{BG_VERDICT_DROP, BG_REASON_BLOCKLIST},
       "a source on the blocklist",
       [] {
         auto h = FilterHarness::load_or_abort(policy_from_yaml("limits: {rate: 1000}\n"), 1024);
         EXPECT_TRUE(agent::block(h.datapath(), *core::parse_prefix("198.18.5.0/24"), 0).ok());
         return run_all(std::move(h), {udp("198.18.5.1")});
       }},
      {{BG_VERDICT_PASS, BG_REASON_RULE},
       "a frame to a rule whose action is pass",
       [] {
         return with_policy("rules: [{match: udp/123, action: pass}]\n", {udp("198.18.1.1", 123)});
       }},
      {{BG_VERDICT_DROP, BG_REASON_RULE},
       "a frame to a rule whose action is drop",
       [] {
         return with_policy("rules: [{match: udp/53, action: drop}]\n", {udp("198.18.1.1", 53)});
       }},
      {{BG_VERDICT_DROP, BG_REASON_NEW_SOURCE},
       "20 new sources, 1 a second let in",
       [] {
         Frames f;
         for (int i = 1; i <= 20; i++)
           f.push_back(udp(fmt::format("198.18.3.{}", i)));
         return with_policy("limits: {rate: 100, new_sources: {rate: 1, burst: 1}}\n", f);
       }},
      {{BG_VERDICT_DROP, BG_REASON_UNPROVEN},
       "20 admitted sources, unproven sources 1 frame at once",
       [] {
         Frames f;
         for (int i = 1; i <= 20; i++)
           f.push_back(udp(fmt::format("198.18.8.{}", i)));
         return with_policy(
             "limits: {rate: 100, new_sources: off, unproven: {rate: 1, burst: 1}}\n", f);
       }},
      {{BG_VERDICT_DROP, BG_REASON_RATE_LIMIT},
       "3 frames of a source with a burst of 1",
       [] {
         auto f = udp("198.18.4.4");
         return with_policy("limits: {rate: 1, burst: 1}\n", {f, f, f});
       }},
      {{BG_VERDICT_DROP, BG_REASON_PREFIX_LIMIT},
       "5 sources of a /24 with a burst of 1",
       [] {
         Frames f;
         for (int i = 1; i <= 5; i++)
           f.push_back(udp(fmt::format("198.18.7.{}", i)));
         return with_policy(
             "limits: {rate: 100, prefix: {ipv4: 24, ipv6: 64, rate: 1, burst: 1}}\n", f);
       }},
      {{BG_VERDICT_PASS, BG_REASON_OK},
       "a frame within its source's limit",
       [] { return with_policy("limits: {rate: 10}\n", {udp("198.18.1.1")}); }},
  };
}

bool same(const VerdictReason &a, const VerdictReason &b) {
  return a.verdict == b.verdict && a.reason == b.reason;
}

bool exported(const VerdictReason &p) {
  for (const auto &e : kVerdictReasons)
    if (same(e, p))
      return true;
  return false;
}

std::string name_of(const VerdictReason &p) {
  return agent::to_string(p.verdict) + "_" + agent::to_string(p.reason);
}

TEST(VerdictPairs, TheCasesMakeEveryExportedPairAndNoOther) {
  std::vector<Case> all = cases();
  for (const auto &c : all)
    EXPECT_TRUE(exported(c.pair)) << name_of(c.pair) << " (" << c.how
                                  << ") is made but /metrics does not export it";
  for (const auto &p : kVerdictReasons) {
    int n = 0;
    for (const auto &c : all)
      n += same(c.pair, p);
    EXPECT_EQ(n, 1) << name_of(p) << ": exported, made by " << n << " cases";
  }
}

class VerdictPair : public ::testing::TestWithParam<VerdictReason> {};

TEST_P(VerdictPair, ItsFrameMovesItsCounterAndNoUnexportedOne) {
  const VerdictReason p = GetParam();
  std::vector<Case> all = cases();
  const Case *c = nullptr;
  for (const auto &x : all)
    if (same(x.pair, p))
      c = &x;
  ASSERT_NE(c, nullptr) << "no case produces " << name_of(p)
                        << ": a pair the pipeline cannot make, drop it from kVerdictReasons";
  SCOPED_TRACE(c->how);
  agent::CounterTotals got = c->run();
  const bg_counter &mine = got[bg_counter_key(p.verdict, p.reason)];
  EXPECT_GT(mine.packets, 0u);
  EXPECT_GT(mine.bytes, 0u);
  for (uint32_t v = 0; v < BG_VERDICT_NR; v++)
    for (uint32_t r = 0; r < BG_REASON_NR; r++) {
      VerdictReason other{static_cast<bg_verdict>(v), static_cast<bg_reason>(r)};
      EXPECT_TRUE(exported(other) || got[bg_counter_key(v, r)].packets == 0)
          << name_of(other) << " moved, which /metrics does not export";
    }
}

INSTANTIATE_TEST_SUITE_P(Exported, VerdictPair, ::testing::ValuesIn(kVerdictReasons),
                         [](const auto &info) { return name_of(info.param); });

}  // namespace
}  // namespace bpfgate::test
