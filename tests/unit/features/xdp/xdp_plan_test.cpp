// plan_xdp_attach: what attaching the XDP filter does about what an interface
// already runs, directly or through libxdp's dispatcher, decided without a kernel.
#include "features/xdp/xdp_plan.hpp"

#include <gtest/gtest.h>

#include <cerrno>

namespace bpfgate::agent {
namespace {

XdpAttachRequest request(XdpAttach a, bool force = false) {
  XdpAttachRequest r;
  r.iface = "eth1";
  r.attach = a;
  r.force = force;
  r.kernel = "6.1.0-test";
  return r;
}

const XdpPresent kNothing{};
const XdpPresent kPlain{
    .prog_id = 7, .dispatcher = false, .dispatched = 0, .mode = bpf::XdpMode::kGeneric};
const XdpPresent kDispatcher{
    .prog_id = 9, .dispatcher = true, .dispatched = 2, .mode = bpf::XdpMode::kNative};

TEST(XdpPlan, ParsesTheTwoWays) {
  EXPECT_EQ(parse_xdp_attach("direct"), XdpAttach::kDirect);
  EXPECT_EQ(parse_xdp_attach("dispatcher"), XdpAttach::kDispatcher);
  EXPECT_FALSE(parse_xdp_attach("multi"));
  EXPECT_EQ(to_string(XdpAttach::kDispatcher), "dispatcher");
}

TEST(XdpPlan, DirectOnAnEmptyInterface) {
  auto p = plan_xdp_attach(request(XdpAttach::kDirect), kNothing);
  ASSERT_TRUE(p);
  EXPECT_FALSE(p->remove_foreign);
}

TEST(XdpPlan, DirectBesideAPlainProgramNeedsForce) {
  auto p = plan_xdp_attach(request(XdpAttach::kDirect), kPlain);
  ASSERT_FALSE(p);
  EXPECT_EQ(p.error().err(), EBUSY);
  EXPECT_NE(p.error().message().find("(id 7, generic mode) that bpfgate did not attach"),
            std::string::npos)
      << p.error().message();
  auto forced = plan_xdp_attach(request(XdpAttach::kDirect, true), kPlain);
  ASSERT_TRUE(forced);
  EXPECT_TRUE(forced->remove_foreign);
}

TEST(XdpPlan, DirectNeverReplacesADispatcherEvenWithForce) {
  for (bool force : {false, true}) {
    auto p = plan_xdp_attach(request(XdpAttach::kDirect, force), kDispatcher);
    ASSERT_FALSE(p);
    EXPECT_EQ(p.error().err(), EBUSY);
    EXPECT_NE(p.error().message().find("libxdp's XDP dispatcher (program id 9, 2 programs)"),
              std::string::npos)
        << p.error().message();
    EXPECT_NE(p.error().message().find("--attach dispatcher"), std::string::npos);
  }
}

TEST(XdpPlan, DispatcherJoinsADispatcherOrAnEmptyInterface) {
  for (const XdpPresent &present : {kNothing, kDispatcher}) {
    auto p = plan_xdp_attach(request(XdpAttach::kDispatcher), present);
    ASSERT_TRUE(p) << p.error().message();
    EXPECT_FALSE(p->remove_foreign);
  }
}

TEST(XdpPlan, DispatcherBesideAPlainProgramCannotCoexist) {
  auto p = plan_xdp_attach(request(XdpAttach::kDispatcher), kPlain);
  ASSERT_FALSE(p);
  EXPECT_EQ(p.error().err(), EBUSY);
  EXPECT_NE(p.error().message().find("not attached through libxdp's dispatcher"), std::string::npos)
      << p.error().message();
  auto forced = plan_xdp_attach(request(XdpAttach::kDispatcher, true), kPlain);
  ASSERT_TRUE(forced);
  EXPECT_TRUE(forced->remove_foreign);
}

TEST(XdpPlan, DispatcherRefusedWhereTheKernelRefusesFreplace) {
  auto r = request(XdpAttach::kDispatcher);
  r.freplace = Error(EPERM, "load an extension (freplace) program");
  for (const XdpPresent &present : {kNothing, kDispatcher}) {
    auto p = plan_xdp_attach(r, present);
    ASSERT_FALSE(p);
    EXPECT_EQ(p.error().err(), EOPNOTSUPP);
    const std::string &m = p.error().message();
    EXPECT_NE(m.find("this kernel (6.1.0-test) refuses them"), std::string::npos) << m;
    EXPECT_NE(m.find("load an extension (freplace) program"), std::string::npos) << m;
    EXPECT_NE(m.find("Attach directly"), std::string::npos) << m;
  }
}

TEST(XdpPlan, DispatcherCannotBeOffloaded) {
  auto r = request(XdpAttach::kDispatcher);
  r.mode = bpf::XdpMode::kOffload;
  auto p = plan_xdp_attach(r, kNothing);
  ASSERT_FALSE(p);
  EXPECT_EQ(p.error().err(), EINVAL);
}

// Frags (xdp.frags) only where the MTU needs them and the kernel has them.
TEST(WantFrags, AboveTheSingleBufferMtuWhereTheKernelHasThem) {
  EXPECT_FALSE(want_frags(1500, 3498, true, bpf::XdpMode::kNative));
  EXPECT_FALSE(want_frags(3498, 3498, true, bpf::XdpMode::kAuto));
  EXPECT_TRUE(want_frags(3499, 3498, true, bpf::XdpMode::kAuto));
  EXPECT_TRUE(want_frags(9000, 3498, true, bpf::XdpMode::kNative));
  EXPECT_TRUE(want_frags(9000, 3498, true, bpf::XdpMode::kGeneric));
  EXPECT_FALSE(want_frags(9000, 3498, false, bpf::XdpMode::kNative));
  EXPECT_FALSE(want_frags(9000, 3498, true, bpf::XdpMode::kOffload));
}

}  // namespace
}  // namespace bpfgate::agent
