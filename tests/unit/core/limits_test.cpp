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

}  // namespace
}  // namespace bpfgate::core
