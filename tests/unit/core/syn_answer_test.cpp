// The SYN answer's host-side decisions (limits.syn_proxy): the window scale
// its SYN-ACK offers, which must be the one Linux then uses on the connection
// the cookie makes, and when the answer is off or answers without options.
#include <gtest/gtest.h>

#include "core/config.hpp"
#include "core/policy.hpp"

namespace bpfgate::core {
namespace {

TEST(SynProxy, WindowScaleFollowsTheHostsReceiveSpace) {
  EXPECT_EQ(syn_wscale(6291456), 7);  // Linux's default tcp_rmem max
  EXPECT_EQ(syn_wscale(212992), 2);   // net.core.rmem_max's default alone
  EXPECT_EQ(syn_wscale(65535), 0);
  EXPECT_EQ(syn_wscale(1L << 40), 14);
  EXPECT_EQ(syn_wscale(-1), 7);
  EXPECT_FALSE(syn_answer_note(true, 2, 2));
  EXPECT_TRUE(syn_answer_note(true, 1, 2));
  EXPECT_TRUE(syn_answer_note(true, 2, 1));
  EXPECT_FALSE(syn_answer_note(false, 1, 1));
}

TEST(SynProxy, TheConfigTurnsItOnOrOff) {
  auto def = parse_config("interfaces: [{name: a}]\n", "p.yaml");
  ASSERT_TRUE(def.ok()) << def.error().what();
  EXPECT_FALSE(compile(*def).syn_proxy) << "off by default";
  auto on = parse_config("interfaces: [{name: a}]\nlimits: {rate: 5, syn_proxy: on}\n", "p.yaml");
  ASSERT_TRUE(on.ok()) << on.error().what();
  EXPECT_TRUE(compile(*on).syn_proxy);
  auto bad =
      parse_config("interfaces: [{name: a}]\nlimits:\n  rate: 5\n  syn_proxy: maybe\n", "p.yaml");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(
      std::string(bad.error().what()).find("p.yaml:4: limits.syn_proxy is on or off, not 'maybe'"),
      std::string::npos)
      << bad.error().what();
}

}  // namespace
}  // namespace bpfgate::core
