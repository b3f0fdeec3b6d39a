// Latency-aware weights for one service's backends (issue 15): pure logic
// over the datapath's per-backend counters (bg_lb_backend_stats), no kernel.
// The agent calls update() once per interval with each backend's counters
// since the last call and gets the effective weights to build the ring with.
//
// Each backend has a factor in [floor, 1]; its effective weight is
// configured * factor. Per interval:
// - evidence: the mean response latency (first request payload -> first
//   response payload) of a backend with at least min_samples responses, or,
//   in a service where no backend has responses (not request/response
//   traffic), the mean connect latency (SYN -> SYN-ACK); and the share of
//   its flows the backend reset. Samples below min_samples are kept and
//   added to the next interval's (up to kMaxPendingIntervals, when whatever
//   samples it has count), so a backend at its floor, which sees few flows,
//   still gathers evidence to recover; until then its weight holds.
// - score: (reference + tolerance) / latency, the reference being the lower
//   median of the service's up backends' latest latencies (a slow backend
//   does not move it; with two backends it is the faster one), times
//   1 - 2 * reset share. The tolerance (1 ms by default) is what a host's
//   scheduling adds to a mean now and then: backends that answer in 0.2 and
//   0.3 ms are equally fast (one CI run moved weights 100 -> 50 on that
//   difference alone), one 50 ms slow is not.
//   A score within hysteresis of 1 (latency at most hysteresis_pct above
//   the reference) is 1: noise does not move weights.
// - move: the factor goes toward clamp(score, floor, 1) by at most
//   max_step_pct of the configured weight per interval; a move toward a
//   target between floor and 1 smaller than hysteresis_pct is not made
//   (steady weights under noise). Recovery goes back up at the same rate.
// Down backends are not counted (no evidence, not in the reference) and
// keep their factor; the agent takes them out of the ring.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace bpfgate::features::lb {

// The service's `dynamic_weights:` (core::LbDynamicWeights), and how many
// samples make evidence. Defaults: a slow backend among three loses >= 80 %
// of its share of new flows in 4 intervals (tests/unit/features/lb/weights_test.cpp).
struct WeightSpec {
  bool enabled = false;
  uint64_t interval_ns = 1'000'000'000;
  uint32_t floor_pct = 10;
  uint32_t max_step_pct = 25;
  uint32_t hysteresis_pct = 10;
  uint64_t tolerance_ns = 1'000'000;
  uint32_t min_samples = 5;
};

// A backend's counters (sums over CPUs of bg_lb_backend_stats), or their
// change over one interval.
struct BackendCounters {
  uint64_t connects = 0, connect_ns = 0;
  uint64_t responses = 0, response_ns = 0;
  uint64_t resets = 0, new_flows = 0;
};

// now - before, field by field; a field that went back (the backend's id was
// reused, the maps made again) counts from zero: now's value.
BackendCounters counters_delta(const BackendCounters &now, const BackendCounters &before);

struct WeightInput {
  std::string key;          // names it in changes: "web 198.18.2.3:80"
  uint32_t configured = 0;  // the config's weight
  bool up = true;           // health: a down backend is not counted
  BackendCounters delta;    // since the last update
};

struct WeightChange {
  std::string key;
  uint32_t from = 0, to = 0;
  std::string reason;  // "response 52.1 ms vs 1.2 ms median"
  // "web 198.18.2.3:80 weight 100 -> 75: response 52.1 ms vs 1.2 ms median"
  std::string text() const;
};

class WeightController {
 public:
  static constexpr uint32_t kMaxPendingIntervals = 5;  // samples kept that long at most
  static constexpr uint32_t kMaxLatencyAge = 10;       // intervals a latency counts as recent

  explicit WeightController(WeightSpec spec = {}) : spec_(spec) {}

  const WeightSpec &spec() const { return spec_; }
  // A new spec; factors are kept (clamped to a new floor). Disabled: every
  // factor goes back to 1 at the next update.
  void set_spec(const WeightSpec &spec) { spec_ = spec; }

  // One interval: the effective weights, in the order of `backends`.
  // Backends not in `backends` are forgotten.
  std::vector<uint32_t> update(const std::vector<WeightInput> &backends);

  // The weight changes of the updates since the last call.
  std::vector<WeightChange> take_changes();

  // What `lb list` and /metrics show: the factor (1 = configured weight) and
  // the latest mean latency measured (response, else connect), in ns.
  double factor(const std::string &key) const;
  std::optional<double> latency_ns(const std::string &key) const;

 private:
  struct Backend {
    double factor = 1;
    bool up = true;
    BackendCounters pending;  // samples not yet enough to count
    uint32_t pending_intervals = 0;
    std::optional<double> response_ns, connect_ns;  // latest means
    uint32_t response_age = 0, connect_age = 0;     // updates since measured
    bool fresh_response = false, fresh_connect = false, fresh_resets = false;
    double reset_share = 0;  // of its new flows, when fresh_resets
    uint64_t flows = 0;
  };
  enum class Kind { Response, Connect };

  void gather(Backend &b, const WeightInput &in) const;
  Kind kind() const;
  std::optional<double> reference(Kind kind) const;
  std::optional<double> score(const Backend &b, Kind kind, std::optional<double> ref,
                              std::string &why) const;
  double move(double factor, double target) const;
  uint32_t step_one(Backend &b, const WeightInput &in, Kind kind, std::optional<double> ref);

  WeightSpec spec_;
  std::map<std::string, Backend> backends_;
  std::vector<WeightChange> changes_;
};

}  // namespace bpfgate::features::lb
