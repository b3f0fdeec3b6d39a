// Observability as the agent runs it (features/feature.hpp): the Observer
// (observer.hpp) started at the first converge, applied at each one after
// the filters, told when a filter comes back or was swept, and serving the
// control socket's `events` clients.
#pragma once

#include <memory>

#include "features/feature.hpp"
#include "features/observe/observer.hpp"
#include "features/xdp/feature.hpp"

namespace bpfgate::agent {

class ObserveFeature final : public Feature, private FilterListener {
 public:
  ObserveFeature(const FeatureContext &ctx, XdpFeature &xdp);
  const char *name() const override { return "observe"; }
  Status prepare(const core::Config &c) override;
  Status converge(const core::Config *running, const core::Config &next,
                  const std::string &by) override;
  void reloaded(bool ok) override;
  std::vector<int> fds() const override;
  void on_readable(int fd) override;
  bool take_client(ControlVerb verb, bpf::UniqueFd &conn, const std::string &request) override;
  void stop(const core::Config &running, bool keep, const std::string &by) override;

 private:
  void filter_back(const std::string &iface, bool new_maps) override;
  void swept(const std::string &iface, const Datapath &dp, const SweepReport &r) override;

  std::string bpffs_;
  XdpFeature &xdp_;
  std::unique_ptr<Observer> observer_;
};

}  // namespace bpfgate::agent
