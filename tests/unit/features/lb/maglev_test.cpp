// The Maglev table (features/lb/maglev.hpp): filled, shares as weighted, about
// 1/N of the entries moved when one of N backends goes or comes, deterministic.
#include "features/lb/maglev.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <string>
#include <vector>

#include <fmt/format.h>

namespace bpfgate::agent::lb {
namespace {

std::vector<MaglevBackend> backends(uint32_t n, uint32_t weight = 100) {
  std::vector<MaglevBackend> out;
  for (uint32_t i = 0; i < n; i++)
    out.push_back({fmt::format("198.18.2.{}:8080", i + 1), i + 1, weight});
  return out;
}

std::map<uint32_t, double> shares(const std::vector<uint32_t> &t) {
  std::map<uint32_t, double> out;
  for (uint32_t id : t)
    out[id] += 1.0 / static_cast<double>(t.size());
  return out;
}

double moved(const std::vector<uint32_t> &a, const std::vector<uint32_t> &b) {
  size_t n = 0;
  for (size_t i = 0; i < a.size(); i++)
    n += a[i] != b[i];
  return static_cast<double>(n) / static_cast<double>(a.size());
}

TEST(Maglev, EveryEntryIsFilled) {
  for (uint32_t m : {7u, 4099u, 65537u})
    for (uint32_t n : {1u, 3u, 10u}) {
      auto t = maglev_table(backends(n), m);
      ASSERT_EQ(t.size(), m);
      for (uint32_t id : t)
        ASSERT_TRUE(id >= 1 && id <= n) << "m=" << m << " n=" << n;
    }
}

TEST(Maglev, SharesFollowTheWeights) {
  std::vector<MaglevBackend> b = {{"198.18.2.1:80", 1, 100},
                                  {"198.18.2.2:80", 2, 50},
                                  {"198.18.2.3:80", 3, 25},
                                  {"198.18.2.4:80", 4, 300},
                                  {"198.18.2.5:80", 5, 7}};
  double total = 0;
  for (const auto &x : b)
    total += x.weight;
  for (uint32_t m : {4099u, 65537u}) {
    auto s = shares(maglev_table(b, m));
    double worst = 0;
    for (const auto &x : b) {
      double want = x.weight / total;
      worst = std::max(worst, std::abs(s[x.id] - want) / want);
      EXPECT_NEAR(s[x.id], want, want * 0.02) << "m=" << m << " backend " << x.key;
    }
    std::printf("maglev m=%u: worst share error %.3f %% of the weight's share\n", m, worst * 100);
  }
}

TEST(Maglev, EqualWeightsGiveEqualShares) {
  auto s = shares(maglev_table(backends(10), 65537));
  for (uint32_t id = 1; id <= 10; id++)
    EXPECT_NEAR(s[id], 0.1, 0.1 * 0.01);
}

TEST(Maglev, RemovingOneOfNMovesAboutOneNth) {
  for (uint32_t n : {3u, 5u, 10u, 20u}) {
    auto all = backends(n);
    auto before = maglev_table(all, 65537);
    all.erase(all.begin() + n / 2);
    auto after = maglev_table(all, 65537);
    double f = moved(before, after), ideal = 1.0 / n;
    std::printf("maglev remove 1 of %u: moved %.4f, 1/N %.4f (x%.3f)\n", n, f, ideal, f / ideal);
    EXPECT_GE(f, ideal * 0.98);  // at least the removed backend's entries
    EXPECT_LE(f, ideal * 1.6);   // and not much more (the paper: small extra disruption)
  }
}

TEST(Maglev, AddingOneToNMovesAboutOneNthPlusOne) {
  for (uint32_t n : {3u, 5u, 10u, 20u}) {
    auto all = backends(n + 1);
    auto with = maglev_table(all, 65537);
    all.pop_back();
    auto without = maglev_table(all, 65537);
    double f = moved(without, with), ideal = 1.0 / (n + 1);
    std::printf("maglev add 1 to %u: moved %.4f, 1/(N+1) %.4f (x%.3f)\n", n, f, ideal, f / ideal);
    EXPECT_GE(f, ideal * 0.98);
    EXPECT_LE(f, ideal * 1.6);
  }
}

TEST(Maglev, WeightZeroTakesNothing) {
  auto b = backends(4);
  b[2].weight = 0;
  for (uint32_t id : maglev_table(b, 4099))
    EXPECT_NE(id, 3u);
  for (auto &x : b)
    x.weight = 0;
  for (uint32_t id : maglev_table(b, 4099))
    EXPECT_EQ(id, 0u) << "no backend with a weight: no entry";
  EXPECT_EQ(maglev_table({}, 7), std::vector<uint32_t>(7, 0));
}

TEST(Maglev, DeterministicWhateverTheOrderOrIds) {
  auto b = backends(7);
  auto t1 = maglev_table(b, 4099);
  std::reverse(b.begin(), b.end());
  EXPECT_EQ(maglev_table(b, 4099), t1) << "the order given does not matter";
  // A backend's place depends on its key, not on its id.
  for (auto &x : b)
    x.id += 100;
  auto t2 = maglev_table(b, 4099);
  for (size_t i = 0; i < t1.size(); i++)
    ASSERT_EQ(t2[i], t1[i] + 100);
}

TEST(Maglev, Primes) {
  EXPECT_TRUE(is_prime(4099));
  EXPECT_TRUE(is_prime(65537));
  EXPECT_FALSE(is_prime(4096));
  EXPECT_FALSE(is_prime(1));
  EXPECT_NE(maglev_h1("a"), maglev_h2("a"));
}

}  // namespace
}  // namespace bpfgate::agent::lb
