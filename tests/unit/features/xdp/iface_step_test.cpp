// What the agent does for an interface of its config, at a converge and at a
// link event, decided from interface indexes alone (features/xdp/xdp_plan.hpp).
#include <gtest/gtest.h>

#include "features/xdp/xdp_plan.hpp"

namespace bpfgate::agent {
namespace {

TEST(IfaceStep, AConvergeWaitsForAnAbsentInterfaceAndKeepsARunningFilter) {
  EXPECT_EQ(converge_step(0, 0), IfaceStep::kAbsent);
  EXPECT_EQ(converge_step(0, 7), IfaceStep::kAbsent);  // pinned, its device gone
  EXPECT_EQ(converge_step(7, 7), IfaceStep::kRunning);
}

TEST(IfaceStep, AConvergeBringsUpAFilterThatRunsElsewhereOrNowhere) {
  EXPECT_EQ(converge_step(7, 0), IfaceStep::kBringUp);  // none yet, or defunct
  EXPECT_EQ(converge_step(9, 7), IfaceStep::kBringUp);  // the interface was made again
}

TEST(IfaceStep, ALinkEventLeavesADeviceBeingDeletedAlone) {
  // The kernel detaches XDP before it unlists the name: same index, no filter.
  EXPECT_EQ(link_step(7, 0, 7), IfaceStep::kGoingAway);
  // A new device of the same name (a new index): attach.
  EXPECT_EQ(link_step(9, 0, 7), IfaceStep::kBringUp);
  EXPECT_EQ(link_step(9, 7, 7), IfaceStep::kBringUp);
  // Never seen attached (it was absent at start): attach.
  EXPECT_EQ(link_step(7, 0, 0), IfaceStep::kBringUp);
}

TEST(IfaceStep, ALinkEventSaysGoneAndRunningAsAConvergeDoes) {
  EXPECT_EQ(link_step(0, 7, 7), IfaceStep::kAbsent);
  EXPECT_EQ(link_step(0, 0, 0), IfaceStep::kAbsent);
  EXPECT_EQ(link_step(7, 7, 7), IfaceStep::kRunning);
  EXPECT_EQ(link_step(7, 7, 0), IfaceStep::kRunning);
}

TEST(IfaceStep, EachStepHasAName) {
  for (auto s :
       {IfaceStep::kRunning, IfaceStep::kAbsent, IfaceStep::kGoingAway, IfaceStep::kBringUp})
    EXPECT_NE(to_string(s), "?");
}

}  // namespace
}  // namespace bpfgate::agent
