// The config's fleet: section: defaults, every key, and each error with its line.
#include "features/fleet/fleet_config.hpp"

#include <gtest/gtest.h>

#include "core/config.hpp"

namespace bpfgate::core {
namespace {

Result<Config> parse(const std::string &fleet) {
  return parse_config("interfaces: [{name: eth0}]\nfleet:\n" + fleet, "gw.yaml");
}

std::string errors(const std::string &fleet) {
  auto c = parse(fleet);
  if (c) {
    ADD_FAILURE() << "accepted:\n" << fleet;
    return "";
  }
  return c.error().what();
}

bool has(const std::string &h, const std::string &n) {
  return h.find(n) != std::string::npos;
}

TEST(FleetConfig, WithoutTheSectionThereIsNoFleet) {
  auto c = parse_config("interfaces: [{name: eth0}]\n", "gw.yaml");
  ASSERT_TRUE(c) << c.error().what();
  EXPECT_FALSE(c->fleet);
}

TEST(FleetConfig, DefaultsAndEveryKey) {
  auto c = parse("  endpoints: [http://10.0.0.1:2379]\n");
  ASSERT_TRUE(c) << c.error().what();
  ASSERT_TRUE(c->fleet);
  EXPECT_EQ(c->fleet->prefix, "/bpfgate/blocks/");
  EXPECT_TRUE(valid_node_name(c->fleet->node)) << c->fleet->node;  // the host's name
  EXPECT_EQ(c->fleet->max_publish_rate, 50u);
  EXPECT_TRUE(c->fleet->share_auto && c->fleet->share_manual);
  EXPECT_FALSE(c->fleet->share_deny);  // deny lists: only when asked
  EXPECT_EQ(c->fleet->aggregate_threshold, 8u);

  c = parse(
      "  endpoints: [http://10.0.0.1:2379, https://etcd-2:2379]\n  prefix: /gw/b/\n  node: gw-1\n"
      "  tls: {ca: /etc/ca.pem, cert: /etc/c.pem, key: /etc/k.pem}\n"
      "  auth: {user: gw, password_file: /etc/pw}\n"
      "  share: {auto_blocks: off, manual_blocks: on, deny_lists: on}\n  max_publish_rate: 20/s\n"
      "  aggregate: {ipv4_prefix: 16, ipv6_prefix: 48, threshold: 4}\n"
      "  never_block: [10.0.0.0/8, 2001:db8::/32]\n");
  ASSERT_TRUE(c) << c.error().what();
  const auto &f = *c->fleet;
  EXPECT_EQ(f.endpoints.size(), 2u);
  EXPECT_EQ(f.prefix, "/gw/b/");
  EXPECT_EQ(f.node, "gw-1");
  EXPECT_EQ(f.tls->key, "/etc/k.pem");
  EXPECT_EQ(f.auth->user, "gw");
  EXPECT_FALSE(f.share_auto);
  EXPECT_TRUE(f.share_deny);
  EXPECT_EQ(f.max_publish_rate, 20u);
  EXPECT_EQ(f.ipv4_prefix, 16u);
  EXPECT_EQ(f.ipv6_prefix, 48u);
  EXPECT_EQ(f.aggregate_threshold, 4u);
  EXPECT_EQ(f.never_block.size(), 2u);
}

TEST(FleetConfig, EachErrorNamesItsLine) {
  EXPECT_TRUE(has(errors("  prefix: /x/\n"), "gw.yaml:3: fleet.endpoints: missing"));
  EXPECT_TRUE(has(errors("  endpoints: [10.0.0.1:2379]\n"), "gw.yaml:3: fleet.endpoints: "));
  EXPECT_TRUE(has(errors("  endpoints: [http://e:1]\n  prefix: blocks\n"),
                  "gw.yaml:4: fleet.prefix 'blocks': begin and end it with '/'"));
  EXPECT_TRUE(has(errors("  endpoints: [http://e:1]\n  node: 'a b'\n"), "gw.yaml:4: fleet.node"));
  EXPECT_TRUE(has(errors("  endpoints: [http://e:1]\n  max_publish_rate: fast\n"),
                  "gw.yaml:4: fleet.max_publish_rate 'fast'"));
  EXPECT_TRUE(has(errors("  endpoints: [http://e:1]\n  tls: {cert: /c.pem}\n"),
                  "fleet.tls: give cert and key together"));
  EXPECT_TRUE(
      has(errors("  endpoints: [http://e:1]\n  never_block: [10.0.0.300]\n"), "gw.yaml:4:"));
  EXPECT_TRUE(has(errors("  endpoints: [http://e:1]\n  aggregate: {threshold: 1}\n"),
                  "fleet.aggregate.threshold"));
  EXPECT_TRUE(has(errors("  endpoints: [http://e:1]\n  colour: blue\n"), "colour"));
  EXPECT_TRUE(has(errors("  endpoints: [http://e:1]\n  share:\n    deny_lists: maybe\n"),
                  "gw.yaml:5: fleet.share.deny_lists"));
  EXPECT_TRUE(has(errors("  endpoints: [http://e:1]\n  share: {deny_list: on}\n"), "gw.yaml:4:"));
}

}  // namespace
}  // namespace bpfgate::core
