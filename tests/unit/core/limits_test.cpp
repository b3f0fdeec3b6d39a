#include "core/limits.hpp"

#include <gtest/gtest.h>

namespace bpfgate::core {
namespace {

TEST(Limits, RejectsZeroAndAbsurdValues) {
  EXPECT_FALSE(validate({0, 10}));
  EXPECT_FALSE(validate({10, 0}));
  EXPECT_FALSE(validate({BG_RATE_MAX_PPS + 1, 10}));
  EXPECT_FALSE(validate({10, BG_BURST_MAX + 1}));
  EXPECT_TRUE(validate({1, 1}));
  auto st = validate({0, 10});
  EXPECT_NE(st.error().message().find("rate 0"), std::string::npos) << st.error().message();
}

TEST(Gcra, AdmitsBurstThenRate) {
  Gcra g({1000, 10});  // 1 ms per token, 10 tokens
  uint64_t tat = 0, now = 1'000'000'000;
  int admitted = 0;
  for (int i = 0; i < 100; i++)
    admitted += g.admit(tat, now);
  EXPECT_EQ(admitted, 10);
  now += 5'000'000;  // 5 ms: 5 tokens back
  admitted = 0;
  for (int i = 0; i < 100; i++)
    admitted += g.admit(tat, now);
  EXPECT_EQ(admitted, 5);
}

TEST(Gcra, LongRunRateMatchesConfiguredRate) {
  // With a bucket of one packet, arrivals on a 100 us grid only conform every
  // 400 us (2.5k pps): a burst of at least two absorbs that quantisation.
  Gcra g({3000, 2});
  uint64_t tat = 0, admitted = 0;
  // One packet every 100 us for 10 s, offered 10k pps against a 3k pps limit.
  for (uint64_t t = 0; t < 10'000'000'000ULL; t += 100'000)
    admitted += g.admit(tat, t);
  EXPECT_NEAR(static_cast<double>(admitted), 30000.0, 300.0);
}

// Offered 2x the rate, one packet every half emission, for 10 s, with time
// read from a clock that advances a tick at a time: what a source gets.
uint64_t admitted_at_tick(const Limits &l, uint64_t tick_ns) {
  Gcra g(l);
  uint64_t tat = 0, admitted = 0;
  const uint64_t step = 1'000'000'000ULL / l.rate_pps / 2;
  for (uint64_t t = 0; t < 10'000'000'000ULL; t += step)
    admitted += g.admit(tat, t - t % tick_ns);
  return admitted;
}

TEST(CoarseClock, AllowedOnlyWhereTheBucketSpansTwoTicks) {
  const uint64_t tick = 4'000'000;  // HZ=250, Debian's
  bg_limit l{};
  EXPECT_TRUE(coarse_clock_ok(l, tick));  // unlimited
  apply_limits({1000, 8}, l);             // 8 ms of tokens
  EXPECT_TRUE(coarse_clock_ok(l, tick));
  apply_limits({1000, 7}, l);  // 7 ms
  EXPECT_FALSE(coarse_clock_ok(l, tick));
  apply_limits({kDefaultRatePps, kDefaultRatePps}, l);
  EXPECT_TRUE(coarse_clock_ok(l, tick));
  EXPECT_FALSE(coarse_clock_ok(l, 0));  // no coarse clock
  apply_limits({BG_RATE_MAX_PPS, BG_BURST_MAX}, l);
  EXPECT_TRUE(coarse_clock_ok(l, 1'000'000));
}

TEST(CoarseClock, AnAllowedLimitKeepsItsRateAtTheTickAndARefusedOneWouldNot) {
  const uint64_t tick = 4'000'000;
  bg_limit l{};
  // 1000 pps, burst 8: allowed; a tick at a time it still gets its 10,000.
  apply_limits({1000, 8}, l);
  ASSERT_TRUE(coarse_clock_ok(l, tick));
  EXPECT_NEAR(static_cast<double>(admitted_at_tick({1000, 8}, tick)), 10000.0, 100.0);
  // 1000 pps, burst 2: refused; a tick at a time it would get half.
  apply_limits({1000, 2}, l);
  ASSERT_FALSE(coarse_clock_ok(l, tick));
  EXPECT_LT(admitted_at_tick({1000, 2}, tick), 8000u);
  EXPECT_NEAR(static_cast<double>(admitted_at_tick({1000, 2}, 1)), 10000.0, 100.0);
}

}  // namespace
}  // namespace bpfgate::core
