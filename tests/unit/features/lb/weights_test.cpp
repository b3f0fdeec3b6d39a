// The balancer's latency-aware weights (features/lb/weights.hpp), over
// simulated intervals: new flows split by the effective weights, each
// answered at its backend's latency with noise, as the datapath's counters
// would report them.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "features/lb/weights.hpp"

namespace bpfgate::features::lb {
namespace {

WeightSpec defaults() {
  return WeightSpec{.enabled = true};
}

// Three backends of one service behind a controller, one interval per step().
struct Sim {
  explicit Sim(WeightSpec spec = defaults()) : c(spec) {}

  // Flows of one interval split by the weights in force; returns each
  // backend's share of them, then lets the controller update the weights.
  std::vector<double> step() {
    std::uniform_real_distribution<double> jitter(-noise, noise);
    double total = 0;
    for (auto w : weights)
      total += w;
    std::vector<WeightInput> in;
    std::vector<double> shares;
    for (size_t i = 0; i < keys.size(); i++) {
      double share = weights[i] / total;
      shares.push_back(share);
      auto flows = static_cast<uint64_t>(std::lround(flows_per_interval * share));
      BackendCounters d{.connects = flows, .connect_ns = flows * 100'000, .new_flows = flows};
      d.responses = flows;
      for (uint64_t f = 0; f < flows; f++)
        d.response_ns += static_cast<uint64_t>(latency_ms[i] * 1e6 * (1 + jitter(rng)));
      d.resets = static_cast<uint64_t>(std::lround(flows * reset_share[i]));
      in.push_back({.key = keys[i], .configured = 100, .up = up[i], .delta = d});
    }
    weights = c.update(in);
    return shares;
  }

  WeightController c;
  std::vector<std::string> keys{"web 198.18.2.1:80", "web 198.18.2.2:80", "web 198.18.2.3:80"};
  std::vector<uint32_t> weights{100, 100, 100};
  std::vector<double> latency_ms{1, 1, 1};
  std::vector<double> reset_share{0, 0, 0};
  std::vector<bool> up{true, true, true};
  uint64_t flows_per_interval = 300;
  double noise = 0.05;
  std::mt19937 rng{42};
};

TEST(LbWeights, AFiftyTimesSlowerBackendDropsToItsFloorWithinTheBoundPerStep) {
  Sim s;
  s.step();
  s.latency_ms[2] = 50;
  std::vector<uint32_t> seen;
  for (int i = 0; i < 10; i++) {
    uint32_t before = s.weights[2];
    s.step();
    EXPECT_LE(before - s.weights[2], 25u) << "interval " << i;  // max_step 25 % of 100
    EXPECT_GE(s.weights[2], 10u) << "interval " << i;           // floor 10 %
    EXPECT_EQ(s.weights[0], 100u);
    EXPECT_EQ(s.weights[1], 100u);
    seen.push_back(s.weights[2]);
  }
  EXPECT_EQ(seen, (std::vector<uint32_t>{75, 50, 25, 10, 10, 10, 10, 10, 10, 10}));
  auto changes = s.c.take_changes();
  ASSERT_EQ(changes.size(), 4u);
  EXPECT_EQ(changes[0].key, "web 198.18.2.3:80");
  EXPECT_EQ(changes[0].from, 100u);
  EXPECT_EQ(changes[0].to, 75u);
  EXPECT_EQ(changes[0].text().rfind("web 198.18.2.3:80 weight 100 -> 75: response 5", 0), 0u)
      << changes[0].text();
  EXPECT_NE(changes[0].reason.find("ms vs 1.0 ms median"), std::string::npos) << changes[0].reason;
}

// The target: one of three backends made slow loses >= 80 % of its
// share of new flows within 10 s and regains it after. With a 1 s interval
// and the defaults, the weights get there in <= 8 intervals.
TEST(LbWeights, ASlowBackendLosesFourFifthsOfItsShareWithinEightIntervalsAndRegainsIt) {
  Sim s;
  for (int i = 0; i < 3; i++)
    s.step();
  const double baseline = 1.0 / 3;
  s.latency_ms[2] = 50;
  int dropped_at = -1;
  for (int i = 1; i <= 12; i++) {
    double share = s.step()[2];
    std::printf("slow interval %2d: share %.3f (%.0f %% of baseline), weight after %u\n", i, share,
                100 * share / baseline, s.weights[2]);
    if (dropped_at < 0 && share <= 0.2 * baseline)
      dropped_at = i;
  }
  ASSERT_GT(dropped_at, 0) << "the slow backend kept more than 20 % of its share";
  EXPECT_LE(dropped_at, 8);
  s.latency_ms[2] = 1;
  int regained_at = -1;
  for (int i = 1; i <= 12; i++) {
    double share = s.step()[2];
    std::printf("recovered interval %2d: share %.3f (%.0f %% of baseline), weight after %u\n", i,
                share, 100 * share / baseline, s.weights[2]);
    if (regained_at < 0 && share >= 0.99 * baseline)
      regained_at = i;
  }
  ASSERT_GT(regained_at, 0) << "the backend did not regain its share";
  EXPECT_LE(regained_at, 8);
  EXPECT_EQ(s.weights, (std::vector<uint32_t>{100, 100, 100}));
}

TEST(LbWeights, HysteresisKeepsWeightsSteadyUnderFivePercentNoise) {
  Sim s;
  s.latency_ms = {1.0, 1.05, 0.95};  // and +-5 % per response
  for (int i = 0; i < 50; i++)
    s.step();
  EXPECT_EQ(s.weights, (std::vector<uint32_t>{100, 100, 100}));
  EXPECT_TRUE(s.c.take_changes().empty());
  // A backend held at an intermediate weight stays there under the same noise
  // (its latency twice the others' plus the tolerance: (1 + 1) / 4).
  s.latency_ms = {1, 1, 4};
  for (int i = 0; i < 50; i++)
    s.step();
  EXPECT_EQ(s.weights[2], 50u);
  size_t moves = s.c.take_changes().size();
  EXPECT_LE(moves, 3u) << "100 -> 75 -> 50, then steady";
}

TEST(LbWeights, NoSamplesNoChange) {
  Sim s;
  s.latency_ms[2] = 50;
  for (int i = 0; i < 3; i++)
    s.step();
  ASSERT_EQ(s.weights[2], 25u);
  s.c.take_changes();
  s.flows_per_interval = 0;  // idle service
  for (int i = 0; i < 20; i++)
    s.step();
  EXPECT_EQ(s.weights, (std::vector<uint32_t>{100, 100, 25}));
  EXPECT_TRUE(s.c.take_changes().empty());
  // Fewer than min_samples responses within the intervals samples are kept
  // for: held, whatever their latency.
  WeightController c(defaults());
  BackendCounters few{.responses = 4, .response_ns = 4 * 500'000'000ULL, .new_flows = 4};
  BackendCounters fast{.responses = 50, .response_ns = 50 * 1'000'000ULL, .new_flows = 50};
  for (int i = 0; i < 3; i++) {
    auto w = c.update({{"a", 100, true, fast}, {"b", 100, true, fast}, {"c", 100, true, few}});
    EXPECT_EQ(w[2], 100u) << "interval " << i;
    few = {};  // then nothing more
  }
}

TEST(LbWeights, FewSamplesAddUpOverIntervalsToEvidence) {
  WeightController c(defaults());
  BackendCounters three{.responses = 3, .response_ns = 3 * 50'000'000ULL, .new_flows = 3};
  BackendCounters fast{.responses = 50, .response_ns = 50 * 1'000'000ULL, .new_flows = 50};
  auto w = c.update({{"a", 100, true, fast}, {"b", 100, true, fast}, {"c", 100, true, three}});
  EXPECT_EQ(w[2], 100u);  // 3 < 5: held
  w = c.update({{"a", 100, true, fast}, {"b", 100, true, fast}, {"c", 100, true, three}});
  EXPECT_EQ(w[2], 75u);  // 6 over two intervals: evidence
}

// A backend at its floor sees a flow every other interval: fewer than
// min_samples whenever samples are kept. What it gathered in that time is
// its evidence, so it climbs back once fast (it was held at the floor for good
// when its pending samples were dropped short of min_samples).
TEST(LbWeights, ABackendWithAFlowEveryOtherIntervalStillGetsEvidenceAndRecovers) {
  auto spec = defaults();
  spec.floor_pct = 5;
  WeightController c(spec);
  BackendCounters fast{.responses = 50, .response_ns = 50 * 1'000'000ULL, .new_flows = 50};
  // Its flows: one every other interval at the floor, a fifth of its weight above.
  auto flows = [](uint32_t weight, int i, double ms) {
    uint64_t n = weight > 5 ? weight / 5 : static_cast<uint64_t>(i % 2);
    return BackendCounters{
        .responses = n, .response_ns = n * static_cast<uint64_t>(ms * 1e6), .new_flows = n};
  };
  std::vector<uint32_t> w{100, 100, 100};
  for (int i = 0; i < 40 && w[2] > 5; i++)
    w = c.update(
        {{"a", 100, true, fast}, {"b", 100, true, fast}, {"c", 100, true, flows(w[2], i, 50)}});
  ASSERT_EQ(w[2], 5u);
  int regained_at = -1;
  for (int i = 1; i <= 20 && regained_at < 0; i++) {
    w = c.update(
        {{"a", 100, true, fast}, {"b", 100, true, fast}, {"c", 100, true, flows(w[2], i, 1)}});
    if (w[2] == 100)
      regained_at = i;
  }
  // Five intervals to gather evidence, then up by 25 an interval.
  EXPECT_GT(regained_at, 0) << "held at " << w[2];
  EXPECT_LE(regained_at, 9);
}

TEST(LbWeights, TheFloorIsRespected) {
  for (uint32_t floor : {5u, 10u, 30u}) {
    auto spec = defaults();
    spec.floor_pct = floor;
    Sim s(spec);
    s.latency_ms[0] = 1000;
    for (int i = 0; i < 20; i++) {
      s.step();
      EXPECT_GE(s.weights[0], floor) << "floor " << floor;
    }
    EXPECT_EQ(s.weights[0], floor);
  }
}

TEST(LbWeights, ResetsArePenalised) {
  Sim s;
  s.reset_share[1] = 0.35;  // 35 % of its flows reset: score 1 - 2 * 0.35 = 0.3
  std::vector<uint32_t> seen;
  for (int i = 0; i < 6; i++) {
    s.step();
    seen.push_back(s.weights[1]);
  }
  EXPECT_EQ(seen, (std::vector<uint32_t>{75, 50, 30, 30, 30, 30}));
  EXPECT_EQ(s.weights[0], 100u);
  auto changes = s.c.take_changes();
  ASSERT_FALSE(changes.empty());
  EXPECT_NE(changes[0].reason.find("resets 35% of"), std::string::npos) << changes[0].reason;
  // Resetting every flow without ever answering: down to the floor on resets alone.
  WeightController c(defaults());
  BackendCounters fast{.responses = 50, .response_ns = 50 * 1'000'000ULL, .new_flows = 50};
  BackendCounters rst{.resets = 50, .new_flows = 50};
  std::vector<uint32_t> w;
  for (int i = 0; i < 6; i++)
    w = c.update({{"a", 100, true, fast}, {"b", 100, true, fast}, {"c", 100, true, rst}});
  EXPECT_EQ(w, (std::vector<uint32_t>{100, 100, 10}));
}

TEST(LbWeights, DownBackendsAreNotCounted) {
  Sim s;
  s.up[2] = false;
  s.latency_ms[2] = 50;
  s.latency_ms[1] = 2.5;  // would be the median with the slow one counted
  for (int i = 0; i < 6; i++)
    s.step();
  EXPECT_EQ(s.weights[2], 100u);  // held: the feature takes it out of the ring
  EXPECT_EQ(s.weights[1], 80u);   // (1 ms median of the two up ones + 1 ms) / 2.5 ms
}

// Fast backends whose means differ by a fraction of a millisecond (what a
// host's scheduling adds now and then) keep their weights: the tolerance.
// Without it the controller is purely relative and 0.3 ms against 0.2 costs
// a third of the weight.
TEST(LbWeights, SubMillisecondDifferencesAreWithinTheTolerance) {
  Sim s;
  s.latency_ms = {0.2, 0.2, 0.3};
  s.noise = 0.5;  // +-50 % per response
  for (int i = 0; i < 30; i++) {
    if (i % 7 == 3)
      s.latency_ms[i % 3] = 0.9;  // an interval with a scheduling hiccup in the mean
    s.step();
    s.latency_ms = {0.2, 0.2, 0.3};
  }
  EXPECT_EQ(s.weights, (std::vector<uint32_t>{100, 100, 100}));
  EXPECT_TRUE(s.c.take_changes().empty());
  s.latency_ms[2] = 50;  // one far slower still goes to its floor
  for (int i = 0; i < 6; i++)
    s.step();
  EXPECT_EQ(s.weights[2], 10u);

  auto relative = defaults();
  relative.tolerance_ns = 0;
  Sim r(relative);
  r.latency_ms = {0.2, 0.2, 0.3};
  for (int i = 0; i < 6; i++)
    r.step();
  EXPECT_EQ(r.weights[2], 75u);  // toward 0.2 / 0.3, the last 8 % within the hysteresis
}

TEST(LbWeights, ScaledWithTheConfiguredWeightAndOffWhenDisabled) {
  auto spec = defaults();
  WeightController c(spec);
  BackendCounters fast{.responses = 50, .response_ns = 50 * 1'000'000ULL, .new_flows = 50};
  BackendCounters slow{.responses = 50, .response_ns = 50 * 50'000'000ULL, .new_flows = 50};
  auto w = c.update({{"a", 200, true, fast}, {"b", 7, true, fast}, {"c", 40, true, slow}});
  EXPECT_EQ(w, (std::vector<uint32_t>{200, 7, 30}));
  spec.enabled = false;
  c.set_spec(spec);
  w = c.update({{"a", 200, true, fast}, {"b", 7, true, fast}, {"c", 40, true, slow}});
  EXPECT_EQ(w, (std::vector<uint32_t>{200, 7, 40}));
  auto changes = c.take_changes();
  ASSERT_EQ(changes.size(), 2u);
  EXPECT_EQ(changes[1].reason, "dynamic weights off");
}

TEST(LbWeights, ConnectLatencyWhenNoBackendHasResponses) {
  WeightController c(defaults());
  BackendCounters fast{.connects = 50, .connect_ns = 50 * 200'000ULL, .new_flows = 50};
  BackendCounters slow{.connects = 50, .connect_ns = 50 * 20'000'000ULL, .new_flows = 50};
  auto w = c.update({{"a", 100, true, fast}, {"b", 100, true, fast}, {"c", 100, true, slow}});
  EXPECT_EQ(w[2], 75u);
  auto changes = c.take_changes();
  ASSERT_EQ(changes.size(), 1u);
  EXPECT_EQ(changes[0].reason, "connect 20.0 ms vs 0.2 ms median");
}

TEST(LbWeights, CountersDeltaCountsAResetCounterFromZero) {
  BackendCounters before{.connects = 10, .responses = 5, .new_flows = 100};
  BackendCounters now{.connects = 15, .responses = 2, .new_flows = 130};
  auto d = counters_delta(now, before);
  EXPECT_EQ(d.connects, 5u);
  EXPECT_EQ(d.responses, 2u);
  EXPECT_EQ(d.new_flows, 30u);
}

}  // namespace
}  // namespace bpfgate::features::lb
