// The bound on the agent's `event:` log lines (core/line_limit.hpp), with time
// given by the test.
#include <gtest/gtest.h>

#include "core/line_limit.hpp"

namespace bpfgate::core {
namespace {

constexpr uint64_t kSecond = 1'000'000'000ULL;

TEST(LineLimiter, BurstThenRateAndTheRestCounted) {
  LineLimiter l({.rate_pps = 20, .burst = 200});
  uint64_t t = 1000 * kSecond;
  int written = 0;
  for (int i = 0; i < 1000; i++)  // 1000 at once: the burst goes through
    written += l.admit(t);
  EXPECT_EQ(written, 200);
  EXPECT_EQ(l.left_out_total(), 800u);
  EXPECT_EQ(l.take_left_out(), 800u);
  EXPECT_EQ(l.take_left_out(), 0u) << "taken: the count starts again";
  // 10 s of a line every millisecond: 20 a second get through.
  for (int i = 0; i < 10000; i++)
    written += l.admit(t + static_cast<uint64_t>(i + 1) * kSecond / 1000);
  EXPECT_EQ(written, 200 + 200);
  EXPECT_EQ(l.take_left_out(), 9800u);
  EXPECT_EQ(l.left_out_total(), 800u + 9800u);
}

TEST(LineLimiter, IdleRefillsTheBurst) {
  LineLimiter l({.rate_pps = 20, .burst = 200});
  uint64_t t = 5 * kSecond;
  for (int i = 0; i < 300; i++)
    l.admit(t);
  EXPECT_EQ(l.take_left_out(), 100u);
  t += 10 * kSecond;  // 200 tokens again
  int written = 0;
  for (int i = 0; i < 300; i++)
    written += l.admit(t);
  EXPECT_EQ(written, 200);
  EXPECT_EQ(l.take_left_out(), 100u);
}

TEST(LineLimiter, UnderTheRateNothingIsLeftOut) {
  LineLimiter l({.rate_pps = 20, .burst = 1});
  for (uint64_t i = 0; i < 100; i++)
    EXPECT_TRUE(l.admit(kSecond + i * kSecond / 20)) << i;
  EXPECT_EQ(l.left_out_total(), 0u);
}

}  // namespace
}  // namespace bpfgate::core
