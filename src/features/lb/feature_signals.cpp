// The load balancer's agent side, continued: health checks and dynamic
// weights, turned into the Signals each apply plans with. The checks run in
// the agent's loop (features/lb/health.hpp: one epoll fd); the weights follow
// the datapath's per-backend counters on a timer of their own
// (features/lb/weights.hpp). Every change is logged and audited, and applied
// as a new generation only when the ring would differ.
#include <arpa/inet.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include <ctime>

#include "bpf/map.hpp"
#include "features/lb/feature.hpp"
#include "util/audit.hpp"
#include "util/log.hpp"

namespace bpfgate::agent {

namespace flb = features::lb;

namespace {

constexpr uint64_t kWeightTickNs = 250'000'000;  // how often due intervals are looked for

uint64_t now_ns() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1'000'000'000ULL + static_cast<uint64_t>(ts.tv_nsec);
}

flb::HealthSpec health_spec(const core::LbHealthConfig &h) {
  flb::HealthSpec s;
  s.check = h.check == core::LbCheck::http  ? flb::HealthCheck::Http
            : h.check == core::LbCheck::tcp ? flb::HealthCheck::Tcp
                                            : flb::HealthCheck::None;
  s.path = h.path;
  s.expect = std::to_string(h.expect);
  s.interval_ns = h.interval_ns;
  s.timeout_ns = h.timeout_ns;
  s.rise = h.rise;
  s.fall = h.fall;
  return s;
}

flb::WeightSpec weight_spec(const core::LbDynamicWeights &w) {
  flb::WeightSpec s;
  s.enabled = w.enabled;
  s.interval_ns = w.interval_ns;
  s.floor_pct = w.floor_pct;
  s.max_step_pct = w.max_step_pct;
  s.hysteresis_pct = w.hysteresis_pct;
  s.tolerance_ns = w.tolerance_ns;
  return s;
}

// The address of an endpoint as text, without its port.
std::string address_text(const core::LbEndpoint &e) {
  char buf[INET6_ADDRSTRLEN] = {};
  if (e.v6)
    inet_ntop(AF_INET6, e.addr.data(), buf, sizeof(buf));
  else
    inet_ntop(AF_INET, e.addr.data() + 12, buf, sizeof(buf));
  return buf;
}

// The health checker's key of a backend: "SERVICE ADDR:PORT".
std::string health_key(const std::string &service, const std::string &backend) {
  return service + " " + backend;
}

flb::BackendCounters counters_of(const bg_lb_backend_stats &s) {
  return {s.connects, s.connect_ns, s.responses, s.response_ns, s.resets, s.new_flows};
}

}  // namespace

Status LbFeature::prepare_signals() {
  auto h = flb::HealthChecker::create();
  if (!h)
    return h.error().context("load balancer health checks");
  health_.emplace(std::move(*h));
  weight_timer_ = bpf::UniqueFd(timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC));
  if (weight_timer_.get() < 0)
    return Error(errno, "load balancer: timerfd for dynamic weights");
  itimerspec t{};
  t.it_value.tv_nsec = static_cast<long>(kWeightTickNs);
  t.it_interval = t.it_value;
  if (timerfd_settime(weight_timer_.get(), 0, &t, nullptr) != 0)
    return Error(errno, "load balancer: arm the dynamic weights' timer");
  return {};
}

std::vector<int> LbFeature::fds() const {
  std::vector<int> fds;
  if (health_)
    fds.push_back(health_->fd());
  if (weight_timer_.get() >= 0)
    fds.push_back(weight_timer_.get());
  return fds;
}

void LbFeature::on_readable(int fd) {
  if (health_ && fd == health_->fd()) {
    health_->on_readable(fd);
    health_changed(health_->take_changes());
  } else if (fd == weight_timer_.get()) {
    uint64_t ticks;
    (void)!read(fd, &ticks, sizeof(ticks));
    update_weights();
  }
}

// The checked backends of every service, to the checker (after each apply).
void LbFeature::set_health_targets(bool runtime) {
  if (!health_)
    return;
  std::vector<flb::HealthTarget> targets;
  if (running_)
    for (const auto &svc : running_->lb.services) {
      if (svc.health.check == core::LbCheck::none)
        continue;
      for (const auto &b : lb::backends_of(svc, overlay_)) {
        auto key = health_key(svc.name, b.key());
        targets.push_back(
            {key, address_text(b.at), b.at.port, std::nullopt, health_spec(svc.health)});
        // Backends there when the agent started or reloaded keep traffic until
        // their first result; one added at run time waits for a passing check.
        if (!runtime)
          first_checked_.insert(key);
      }
    }
  if (auto st = health_->set_backends(targets); !st)
    log::warn("load balancer: health checks: {}", st.error().what());
  refresh_signals("health checks");
}

void LbFeature::health_changed(const std::vector<flb::HealthChange> &changes) {
  for (const auto &c : changes) {
    first_checked_.insert(c.key);
    bool down = c.to == flb::HealthState::Down;
    auto log_line =
        fmt::format("load balancer: {} is {} ({})", c.key, flb::health_state_name(c.to), c.reason);
    if (down)
      log::warn("{}", log_line);
    else
      log::info("{}", log_line);
    audit::Entry("lb_health", audit::by_agent())
        .set("backend", c.key)
        .set("from", flb::health_state_name(c.from))
        .set("to", flb::health_state_name(c.to))
        .set("reason", c.reason)
        .write();
  }
  if (!changes.empty())
    refresh_signals("health checks");
}

// Signals from the checker's states and the controllers' weights; applied when they differ.
void LbFeature::refresh_signals(const char *why) {
  if (!running_ || !balancer_)
    return;
  lb::Signals s;
  for (const auto &svc : running_->lb.services)
    for (const auto &b : lb::backends_of(svc, overlay_)) {
      auto key = health_key(svc.name, b.key());
      if (svc.health.check != core::LbCheck::none && health_) {
        auto st = health_->state(key);
        bool down = st == flb::HealthState::Down ||
                    (st == flb::HealthState::Unknown && !first_checked_.count(key));
        if (down)
          s.down[{svc.name, b.key()}] = true;
      }
      if (!svc.dynamic_weights.enabled)
        continue;
      if (auto w = effective_.find(key); w != effective_.end() && w->second != b.weight)
        s.weights[{svc.name, b.key()}] = w->second;
    }
  if (auto st = set_signals(std::move(s), audit::by_agent()); !st)
    log::warn("load balancer: {}: the running generation stays: {}", why, st.error().what());
}

// The per-backend counters, summed over CPUs, by backend id (empty on error).
std::map<uint32_t, bg_lb_backend_stats> LbFeature::read_stats() const {
  std::map<uint32_t, bg_lb_backend_stats> out;
  auto m = bpf::PerCpuMap<__u32, bg_lb_backend_stats>::open_pinned(balancer_->dir() + "/" +
                                                                   BG_PIN_LB_STATS);
  if (!m)
    return out;
  for (const auto &svc : planned_)
    for (const auto &b : svc.backends) {
      auto per_cpu = m->lookup(b.id);
      if (!per_cpu)
        continue;
      bg_lb_backend_stats sum{};
      for (const auto &c : *per_cpu) {
        sum.connects += c.connects, sum.connect_ns += c.connect_ns;
        sum.responses += c.responses, sum.response_ns += c.response_ns;
        sum.resets += c.resets, sum.new_flows += c.new_flows;
      }
      out[b.id] = sum;
    }
  return out;
}

void LbFeature::update_weights() {
  if (!running_ || !balancer_)
    return;
  uint64_t now = now_ns();
  std::map<uint32_t, bg_lb_backend_stats> stats;
  bool changed = false;
  for (const auto &svc : running_->lb.services) {
    if (!svc.dynamic_weights.enabled) {
      changed |= weights_.erase(svc.name) > 0;
      continue;
    }
    auto &w = weights_[svc.name];
    bool first = !w.controller;
    if (!first && now - w.last_ns < svc.dynamic_weights.interval_ns)
      continue;
    if (first)
      w.controller.emplace(weight_spec(svc.dynamic_weights));
    w.controller->set_spec(weight_spec(svc.dynamic_weights));
    w.last_ns = now;
    if (stats.empty())
      stats = read_stats();
    changed |= step_weights(svc, w, stats, first);
  }
  if (changed)
    refresh_signals("dynamic weights");
}

// One interval of one service; `first` only records where the counters stand.
bool LbFeature::step_weights(const core::LbServiceConfig &svc, ServiceWeights &w,
                             const std::map<uint32_t, bg_lb_backend_stats> &stats, bool first) {
  std::vector<flb::WeightInput> in;
  for (const auto &b : lb::backends_of(svc, overlay_)) {
    auto key = health_key(svc.name, b.key());
    flb::BackendCounters now{};
    if (auto id = backend_id(svc.name, b.key()); id && stats.count(*id))
      now = counters_of(stats.at(*id));
    auto &before = w.last[key];
    bool up = !signals_.down.count({svc.name, b.key()}) && !b.draining;
    in.push_back({key, b.weight, up, flb::counters_delta(now, before)});
    before = now;
  }
  if (first)
    return false;
  auto out = w.controller->update(in);
  bool changed = false;
  for (size_t i = 0; i < in.size() && i < out.size(); i++) {
    auto &slot = effective_[in[i].key];
    if (slot != out[i])
      changed = true;
    slot = out[i];
  }
  for (const auto &c : w.controller->take_changes()) {
    log::info("load balancer: {}", c.text());
    audit::Entry("lb_weight", audit::by_agent())
        .set("backend", c.key)
        .set("from", c.from)
        .set("to", c.to)
        .set("reason", c.reason)
        .write();
  }
  return changed;
}

std::optional<uint32_t> LbFeature::backend_id(const std::string &service,
                                              const std::string &key) const {
  for (const auto &s : planned_)
    if (s.name == service)
      for (const auto &b : s.backends)
        if (b.key() == key)
          return b.id;
  return std::nullopt;
}

}  // namespace bpfgate::agent
