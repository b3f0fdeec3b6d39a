// What a converge does about socket acceleration, decided without a kernel
// (features/accel/feature.hpp).
#include <gtest/gtest.h>

#include "features/accel/feature.hpp"

namespace bpfgate::agent {
namespace {

TEST(AccelStep, NotAskedIsDisabledOnlyWhenThisAgentManagesIt) {
  EXPECT_EQ(accel_step(false, false, false, false), AccelStep::kNothing);
  // Enabled by hand (`bpfgate accel enable`): not the agent's to disable.
  EXPECT_EQ(accel_step(false, false, true, true), AccelStep::kNothing);
  EXPECT_EQ(accel_step(false, true, true, true), AccelStep::kDisable);
}

TEST(AccelStep, AskedAndNotRunningIsEnabled) {
  EXPECT_EQ(accel_step(true, false, false, false), AccelStep::kEnable);
  // Ours, but gone meanwhile (disabled by hand): enabled again.
  EXPECT_EQ(accel_step(true, true, false, false), AccelStep::kEnable);
}

TEST(AccelStep, RunningAsAskedIsAdoptedOnceThenKept) {
  EXPECT_EQ(accel_step(true, false, true, true), AccelStep::kAdopt);
  EXPECT_EQ(accel_step(true, true, true, true), AccelStep::kKeep);
}

TEST(AccelStep, RunningOtherwiseIsSaidNeverChanged) {
  EXPECT_EQ(accel_step(true, false, true, false), AccelStep::kDiffers);
  EXPECT_EQ(accel_step(true, true, true, false), AccelStep::kDiffers);
}

}  // namespace
}  // namespace bpfgate::agent
