// The tc datapath as the agent runs it (features/feature.hpp): attached,
// adopted and applied per interface of the config's tc: section, attached
// again when its interface is back, detached at stop unless kept.
#pragma once

#include "features/feature.hpp"

namespace bpfgate::agent {

class TcFeature final : public Feature {
 public:
  explicit TcFeature(const FeatureContext &ctx) : bpffs_(ctx.bpffs) {}
  const char *name() const override { return "tc"; }
  void check(const core::Config &c, bool absent_interfaces_ok,
             std::vector<std::string> &errors) const override;
  Status converge(const core::Config *running, const core::Config &next,
                  const std::string &by) override;
  void links_changed(const core::Config &running, const std::string &by) override;
  void stop(const core::Config &running, bool keep, const std::string &by) override;

 private:
  std::string bpffs_;
};

}  // namespace bpfgate::agent
