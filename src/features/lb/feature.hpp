// The load balancer as the agent runs it (features/feature.hpp): the config's
// lb: section loads or adopts the balancer, each converge applies its services
// as one new generation, `bpfgate lb add|remove|drain|weight` (the control
// socket's `lb` requests) change a runtime overlay kept in the state dir and
// applied the same way, stop takes it away unless the datapath is kept.
#pragma once

#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "features/feature.hpp"
#include "features/lb/lb_datapath.hpp"
#include "features/lb/lb_plan.hpp"
#include "features/lb/health.hpp"
#include "features/lb/lb_status.hpp"
#include "features/lb/weights.hpp"

namespace bpfgate::agent {

class LbFeature final : public Feature {
 public:
  explicit LbFeature(const FeatureContext &ctx) : bpffs_(ctx.bpffs) {}
  const char *name() const override { return "lb"; }
  void check(const core::Config &c, bool absent_interfaces_ok,
             std::vector<std::string> &errors) const override;
  Status prepare(const core::Config &c) override;
  Status converge(const core::Config *running, const core::Config &next,
                  const std::string &by) override;
  void reloaded(bool ok) override;
  void sweep(const core::Config &running) override;
  void links_changed(const core::Config &running, const std::string &by) override;
  bool take_client(ControlVerb verb, bpf::UniqueFd &conn, const std::string &request) override;
  // The health checker's epoll fd and the dynamic weights' timer (feature_signals.cpp).
  std::vector<int> fds() const override;
  void on_readable(int fd) override;
  void stop(const core::Config &running, bool keep, const std::string &by) override;

  // For health checks and dynamic weights (features/lb/health.hpp,
  // weights.hpp), on the sweep: the services in force (nullptr: none) and
  // the runtime overlay, whose backends are lb::backends_of(service, overlay());
  // then what they say, applied as a new generation when it differs from the
  // last (an error leaves the running generation and the previous signals).
  const core::LbConfig *running_config() const { return running_ ? &running_->lb : nullptr; }
  const lb::Overlay &overlay() const { return overlay_; }
  const lb::Signals &signals() const { return signals_; }
  Status set_signals(lb::Signals s, const std::string &by);

 private:
  struct Running {
    core::LbConfig lb;
    std::string state_dir, hash;
  };
  Status apply(const std::string &by, const char *why);
  Status apply_running(const Running &r, const std::string &by, const char *why);
  void place(const std::string &by);
  void remove(const std::string &by);
  std::string serve(const std::string &request, const std::string &by);
  void save_state(const Running &r, std::vector<lb::PlannedService> &planned);

  // Health checks and dynamic weights (feature_signals.cpp).
  struct ServiceWeights {
    std::optional<features::lb::WeightController> controller;
    uint64_t last_ns = 0;
    std::map<std::string, features::lb::BackendCounters> last;  // by health key
  };
  Status prepare_signals();
  // runtime: a backend new to the checker waits for a passing check (an `lb
  // add`); otherwise (start, reload) it keeps traffic until its first result.
  void set_health_targets(bool runtime);
  void health_changed(const std::vector<features::lb::HealthChange> &changes);
  void refresh_signals(const char *why);
  std::map<uint32_t, bg_lb_backend_stats> read_stats() const;
  void update_weights();
  bool step_weights(const core::LbServiceConfig &svc, ServiceWeights &w,
                    const std::map<uint32_t, bg_lb_backend_stats> &stats, bool first);
  std::optional<uint32_t> backend_id(const std::string &service, const std::string &key) const;

  std::optional<features::lb::HealthChecker> health_;
  bpf::UniqueFd weight_timer_;
  std::map<std::string, ServiceWeights> weights_;  // by service
  std::map<std::string, uint32_t> effective_;      // by health key: the controllers' weights
  std::set<std::string> first_checked_;            // health keys that may keep traffic
  std::vector<lb::PlannedService> planned_;        // the last apply's (ids)

  std::string bpffs_;
  std::optional<lb::Balancer> balancer_;
  std::optional<Running> running_, previous_;
  lb::Overlay overlay_;
  lb::Signals signals_;
  bool converged_ = false;         // converge ran since the last reloaded()
  std::vector<std::string> told_;  // notes already logged (a filter without `next`)
};

}  // namespace bpfgate::agent
