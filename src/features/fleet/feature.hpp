// The fleet as the agent runs it (features/feature.hpp): started, restarted
// or stopped as the config's fleet: section comes, changes or goes; its etcd
// threads' reports read when their eventfd is readable; this node's blocks
// scanned on its own timer when they changed (fleet_publish.cpp); `bpfgate fleet status`
// answered on the control socket.
#pragma once

#include <memory>

#include "bpf/fd.hpp"
#include "features/feature.hpp"
#include "features/fleet/fleet.hpp"
#include "features/xdp/feature.hpp"

namespace bpfgate::agent {

class FleetFeature final : public Feature {
 public:
  // Its eventfd and timer are made here, watched by the loop from its start
  // whether the fleet is on or not (a reload may turn it on).
  FleetFeature(const FeatureContext &ctx, XdpFeature &xdp);
  const char *name() const override { return "fleet"; }
  void check(const core::Config &c, bool absent_interfaces_ok,
             std::vector<std::string> &errors) const override;
  Status converge(const core::Config *running, const core::Config &next,
                  const std::string &by) override;
  void sweep(const core::Config &running) override;
  std::vector<int> fds() const override;
  void on_readable(int fd) override;
  bool take_client(ControlVerb verb, bpf::UniqueFd &conn, const std::string &request) override;
  void stop(const core::Config &running, bool keep, const std::string &by) override;

 private:
  void scan_when_due();
  // The least time between two scans while the blocklists change.
  uint64_t busy_gap_ns() const;
  void arm(bool on);  // the scan timer

  std::string bpffs_;
  XdpFeature &xdp_;
  std::unique_ptr<fleet::Fleet> fleet_;
  bpf::UniqueFd reports_, timer_;
  uint64_t last_scan_ns_ = 0, scan_cost_ns_ = 0;
  size_t last_scan_changes_ = 0;
};

}  // namespace bpfgate::agent
