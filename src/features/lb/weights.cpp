#include "features/lb/weights.hpp"

#include <algorithm>
#include <cmath>
#include <set>
#include <utility>

#include <fmt/format.h>

namespace bpfgate::features::lb {
namespace {

constexpr double kResetPenalty = 2;  // each 1 % of flows reset costs 2 % of the weight
constexpr double kEps = 1e-9;

uint64_t delta(uint64_t now, uint64_t before) {
  return now >= before ? now - before : now;
}

uint32_t weight_of(uint32_t configured, double factor) {
  if (configured == 0)
    return 0;
  return std::max<uint32_t>(1, static_cast<uint32_t>(std::lround(configured * factor)));
}

const char *kind_name(bool response) {
  return response ? "response" : "connect";
}

}  // namespace

BackendCounters counters_delta(const BackendCounters &now, const BackendCounters &before) {
  return {.connects = delta(now.connects, before.connects),
          .connect_ns = delta(now.connect_ns, before.connect_ns),
          .responses = delta(now.responses, before.responses),
          .response_ns = delta(now.response_ns, before.response_ns),
          .resets = delta(now.resets, before.resets),
          .new_flows = delta(now.new_flows, before.new_flows)};
}

std::string WeightChange::text() const {
  return fmt::format("{} weight {} -> {}: {}", key, from, to, reason);
}

// Adds the interval's samples to what is pending and takes, of each kind of
// evidence, what has at least min_samples.
void WeightController::gather(Backend &b, const WeightInput &in) const {
  b.up = in.up;
  b.fresh_response = b.fresh_connect = b.fresh_resets = false;
  b.response_age++, b.connect_age++;
  BackendCounters &p = b.pending;
  if (!in.up || b.pending_intervals >= kMaxPendingIntervals) {
    p = {};
    b.pending_intervals = 0;
  }
  if (!in.up)
    return;
  const BackendCounters &d = in.delta;
  p.connects += d.connects, p.connect_ns += d.connect_ns;
  p.responses += d.responses, p.response_ns += d.response_ns;
  p.resets += d.resets, p.new_flows += d.new_flows;
  b.pending_intervals++;
  // A backend with few flows (one at its floor) has until the last interval
  // samples are kept to gather min_samples; then what it has is its evidence,
  // so it is never left without any (it would hold its weight, at the floor,
  // for as long as its traffic stays thin).
  uint64_t m =
      b.pending_intervals >= kMaxPendingIntervals ? 1 : std::max<uint32_t>(spec_.min_samples, 1);
  if (p.responses >= m) {
    b.response_ns = static_cast<double>(p.response_ns) / static_cast<double>(p.responses);
    b.fresh_response = true, b.response_age = 0;
    p.responses = p.response_ns = 0;
  }
  if (p.connects >= m) {
    b.connect_ns = static_cast<double>(p.connect_ns) / static_cast<double>(p.connects);
    b.fresh_connect = true, b.connect_age = 0;
    p.connects = p.connect_ns = 0;
  }
  if (p.new_flows >= m || p.resets >= m) {
    b.flows = std::max(p.new_flows, p.resets);
    b.reset_share = static_cast<double>(p.resets) / static_cast<double>(b.flows);
    b.fresh_resets = true;
    p.resets = p.new_flows = 0;
  }
  if (p.responses == 0 && p.connects == 0 && p.new_flows == 0 && p.resets == 0)
    b.pending_intervals = 0;
}

// Response latency when any up backend of the service has recent responses
// (request/response traffic), else connect latency.
WeightController::Kind WeightController::kind() const {
  for (const auto &[key, b] : backends_)
    if (b.up && b.response_ns && b.response_age <= kMaxLatencyAge)
      return Kind::Response;
  return Kind::Connect;
}

// The lower median of the up backends' recent latencies of `kind`.
std::optional<double> WeightController::reference(Kind kind) const {
  std::vector<double> v;
  for (const auto &[key, b] : backends_) {
    const auto &lat = kind == Kind::Response ? b.response_ns : b.connect_ns;
    uint32_t age = kind == Kind::Response ? b.response_age : b.connect_age;
    if (b.up && lat && age <= kMaxLatencyAge)
      v.push_back(*lat);
  }
  if (v.empty())
    return std::nullopt;
  std::sort(v.begin(), v.end());
  return v[(v.size() - 1) / 2];
}

// The backend's target factor before the floor (nullopt: no evidence, hold).
std::optional<double> WeightController::score(const Backend &b, Kind kind,
                                              std::optional<double> ref, std::string &why) const {
  bool response = kind == Kind::Response;
  bool fresh = response ? b.fresh_response : b.fresh_connect;
  std::optional<double> lat = response ? b.response_ns : b.connect_ns;
  double h = spec_.hysteresis_pct / 100.0;
  double s = 1;
  if (fresh && lat && ref && *lat > 0) {
    s = std::min(1.0, (*ref + static_cast<double>(spec_.tolerance_ns)) / *lat);
    why = fmt::format("{} {:.1f} ms vs {:.1f} ms median", kind_name(response), *lat / 1e6,
                      *ref / 1e6);
  }
  double reset_score = 1;
  if (b.fresh_resets && b.reset_share > 0) {
    reset_score = std::max(0.0, 1 - kResetPenalty * b.reset_share);
    why += fmt::format("{}resets {:.0f}% of {} flows", why.empty() ? "" : ", ", 100 * b.reset_share,
                       b.flows);
  }
  s *= reset_score;
  if (s >= 1 / (1 + h) - kEps)
    s = 1;
  if (!fresh) {  // resets alone only ever lower a weight
    if (!b.fresh_resets || s >= 1)
      return std::nullopt;
    s = std::min(s, b.factor);
  }
  return s;
}

// One bounded step of `factor` toward `target`.
double WeightController::move(double factor, double target) const {
  double step = spec_.max_step_pct / 100.0;
  double h = spec_.hysteresis_pct / 100.0;
  double floor = std::min(1.0, spec_.floor_pct / 100.0);
  double d = target - factor;
  if (std::fabs(d) < kEps)
    return factor;
  bool edge = target >= 1 - kEps || target <= floor + kEps;
  if (!edge && std::fabs(d) < h)
    return factor;  // a small move toward an intermediate target: noise
  return factor + std::clamp(d, -step, step);
}

uint32_t WeightController::step_one(Backend &b, const WeightInput &in, Kind kind,
                                    std::optional<double> ref) {
  double floor = std::min(1.0, spec_.floor_pct / 100.0);
  double before = b.factor;
  std::string why;
  if (!spec_.enabled) {
    b.factor = 1;
    why = "dynamic weights off";
  } else if (in.up) {
    if (auto s = score(b, kind, ref, why))
      b.factor = move(b.factor, std::clamp(*s, floor, 1.0));
    b.factor = std::clamp(b.factor, floor, 1.0);
  }
  uint32_t from = weight_of(in.configured, before), to = weight_of(in.configured, b.factor);
  if (from != to)
    changes_.push_back({in.key, from, to, why.empty() ? "floor changed" : why});
  return to;
}

std::vector<uint32_t> WeightController::update(const std::vector<WeightInput> &backends) {
  std::set<std::string> keys;
  for (const auto &in : backends)
    keys.insert(in.key);
  std::erase_if(backends_, [&](const auto &kv) { return keys.count(kv.first) == 0; });
  for (const auto &in : backends)
    gather(backends_[in.key], in);
  Kind k = kind();
  std::optional<double> ref = reference(k);
  std::vector<uint32_t> out;
  out.reserve(backends.size());
  for (const auto &in : backends)
    out.push_back(step_one(backends_[in.key], in, k, ref));
  return out;
}

std::vector<WeightChange> WeightController::take_changes() {
  return std::exchange(changes_, {});
}

double WeightController::factor(const std::string &key) const {
  auto b = backends_.find(key);
  return b == backends_.end() ? 1.0 : b->second.factor;
}

std::optional<double> WeightController::latency_ns(const std::string &key) const {
  auto b = backends_.find(key);
  if (b == backends_.end())
    return std::nullopt;
  return b->second.response_ns ? b->second.response_ns : b->second.connect_ns;
}

}  // namespace bpfgate::features::lb
