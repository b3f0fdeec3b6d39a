// Socket acceleration as the agent runs it (features/feature.hpp): enabled
// as the config's accel: section asks (or adopted, running), disabled when
// the section goes, watched on the sweep timer (accel::Housekeeper).
#pragma once

#include <memory>

#include "features/accel/accel.hpp"
#include "features/feature.hpp"

namespace bpfgate::agent {

// What a converge does about socket acceleration, from what the config asks
// (wanted), whether this agent enabled or adopted it (managed), whether it
// runs (enabled) and on the cgroup and ports the config names (same).
enum class AccelStep {
  kNothing,  // neither asked nor ours
  kDisable,  // ours, no longer asked
  kEnable,   // asked, not running
  kAdopt,    // asked, running as asked, not yet ours
  kKeep,     // asked, running as asked, ours
  kDiffers,  // asked, running otherwise: said, not changed (disable and reload to change it)
};
AccelStep accel_step(bool wanted, bool managed, bool enabled, bool same);

class AccelFeature final : public Feature {
 public:
  explicit AccelFeature(const FeatureContext &ctx) : bpffs_(ctx.bpffs) {}
  const char *name() const override { return "accel"; }
  void check(const core::Config &c, bool absent_interfaces_ok,
             std::vector<std::string> &errors) const override;
  Status converge(const core::Config *running, const core::Config &next,
                  const std::string &by) override;
  void sweep(const core::Config &running) override;
  void stop(const core::Config &running, bool keep, const std::string &by) override;

 private:
  Status enable(const core::Config &c, const std::vector<uint16_t> &ports, const std::string &by);
  void disable(const std::string &by);

  std::string bpffs_;
  bool managed_ = false;  // enabled or adopted by this agent
  bool housekeeper_warned_ = false;
  std::unique_ptr<accel::Housekeeper> housekeeper_;
};

}  // namespace bpfgate::agent
