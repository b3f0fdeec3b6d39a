// Sweeping idle per-source entries: in the kernel (SourceSweeper, a
// bpf_for_each_map_elem walk run with BPF_PROG_RUN) and from user space
// (sweep_idle_from_user_space, where the kernel refuses the former). Either
// way only the entries last seen before the cutoff go, from the sources map
// and from the known map alike.
#include <gtest/gtest.h>

#include <cstring>

#include "features/xdp/blocklist.hpp"
#include "features/xdp/source_sweep.hpp"
#include "core/policy.hpp"
#include "support/filter_harness.hpp"

namespace bpfgate::test {
namespace {

constexpr uint64_t kCutoff = 1'000'000'000'000ULL;  // any fixed time: the entries are made up

// 2001:db8::<i>, rule 0.
bg_src_key key(uint32_t i) {
  bg_src_key k{};
  k.addr[0] = 0x20, k.addr[1] = 0x01, k.addr[2] = 0x0d, k.addr[3] = 0xb8;
  std::memcpy(k.addr + 12, &i, 4);
  k.kind = BG_SRC_ADDR;
  return k;
}

bg_src_state seen_at(uint64_t ns) {
  bg_src_state s{};
  s.first_seen_ns = s.last_seen_ns = s.tat_ns = ns;
  return s;
}

// n entries in each map: even i idle (last seen before the cutoff), odd i
// last seen at the cutoff or after. Returns how many are idle.
uint64_t seed(agent::Datapath &dp, uint32_t n) {
  uint64_t idle = 0;
  for (uint32_t i = 0; i < 2 * n; i++) {
    const bool is_idle = i % 2 == 0;
    const uint64_t at = is_idle ? kCutoff - 1 - i : kCutoff + (i % 4 == 1 ? 0 : i);
    auto &m = i < n ? dp.source_map() : dp.known_map();
    EXPECT_TRUE(m.update(key(i), seen_at(at), BPF_NOEXIST).ok()) << i;
    idle += is_idle;
  }
  return idle;
}

// Only the entries that were not idle are left, in the map they were in.
void expect_only_recent_left(agent::Datapath &dp, uint32_t n) {
  for (int known = 0; known < 2; known++) {
    auto &m = known ? dp.known_map() : dp.source_map();
    auto all = m.dump();
    ASSERT_TRUE(all.ok());
    EXPECT_EQ(all->size(), n / 2) << (known ? "known" : "sources");
    for (const auto &[k, v] : *all)
      EXPECT_GE(v.last_seen_ns, kCutoff) << "an idle entry is left";
  }
}

class SourceSweep : public testing::Test {
 protected:
  static constexpr uint32_t kPerMap = 20000;
  FilterHarness h_ =
      FilterHarness::load_or_abort(core::default_policy({10, 10}, BG_VERDICT_PASS), 32768);
};

TEST_F(SourceSweep, InTheKernelOnlyEntriesIdleBeforeTheCutoffGoFromBothMaps) {
  agent::SourceSweeper *k = h_.datapath().source_sweeper();
  if (!k)
    GTEST_SKIP() << "SKIPPED: this kernel refused the in-kernel sweeper (the agent's log says why)";
  const uint64_t idle = seed(h_.datapath(), kPerMap);
  auto pass = k->run(kCutoff);
  ASSERT_TRUE(pass.ok()) << pass.error().what();
  EXPECT_EQ(pass->sources_seen, kPerMap);
  EXPECT_EQ(pass->known_seen, kPerMap);
  EXPECT_EQ(pass->sources_removed + pass->known_removed, idle);
  EXPECT_EQ(pass->known_removed, idle / 2);
  expect_only_recent_left(h_.datapath(), kPerMap);
  auto again = k->run(kCutoff);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->sources_seen + again->known_seen, 2u * kPerMap - idle);
  EXPECT_EQ(again->sources_removed + again->known_removed, 0u);
}

TEST_F(SourceSweep, FromUserSpaceOnlyEntriesIdleBeforeTheCutoffGoFromBothMaps) {
  const uint64_t idle = seed(h_.datapath(), kPerMap);
  agent::SweepReport r;
  ASSERT_TRUE(agent::sweep_idle_from_user_space(h_.datapath(), kCutoff, r).ok());
  EXPECT_EQ(r.sources_seen, kPerMap);
  EXPECT_EQ(r.known_seen, kPerMap);
  EXPECT_EQ(r.sources_removed + r.known_removed, idle);
  EXPECT_EQ(r.known_removed, idle / 2);
  expect_only_recent_left(h_.datapath(), kPerMap);
}

}  // namespace
}  // namespace bpfgate::test
