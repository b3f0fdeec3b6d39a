// The fleet's entries (features/fleet/fleet_entry.hpp): keys and values,
// what a received value must be to be applied, the never-block guard,
// aggregation into prefixes, the publish rate's bucket.
#include "features/fleet/fleet_entry.hpp"

#include <gtest/gtest.h>

#include "features/fleet/etcd_client.hpp"
#include "features/fleet/fleet_config.hpp"

namespace bpfgate::fleet {
namespace {

const std::string kP = "/bpfgate/blocks/";
constexpr double kNow = 1765000000;

core::Prefix pfx(const std::string &s) {
  return *core::parse_prefix(s);
}

FleetEntry entry(const std::string &cidr, int64_t expires = 0) {
  return FleetEntry{pfx(cidr), "gw-1", "auto", kNow - 1, expires};
}

TEST(FleetEntry, KeyAndValueRoundTrip) {
  EXPECT_EQ(key_of(kP, "gw-1", pfx("198.51.100.7")), kP + "gw-1/198.51.100.7_32");
  EXPECT_EQ(key_of(kP, "gw-1", pfx("2001:db8::/64")), kP + "gw-1/2001:db8::_64");
  EXPECT_EQ(node_prefix(kP, "gw-1"), kP + "gw-1/");
  auto k = parse_key(kP, kP + "gw.2/2001:db8::_64");
  ASSERT_TRUE(k) << k.error().what();
  EXPECT_EQ(k->node, "gw.2");
  EXPECT_TRUE(k->prefix == pfx("2001:db8::/64"));
  auto e = entry("198.51.100.0/24", static_cast<int64_t>(kNow) + 60);
  auto d = decode_entry(kP, key_of(kP, "gw-1", e.prefix), encode_value(e), kNow);
  ASSERT_TRUE(d) << d.error().what();
  EXPECT_TRUE(d->prefix == e.prefix);
  EXPECT_EQ(d->node, "gw-1");
  EXPECT_EQ(d->reason, "auto");
  EXPECT_EQ(d->expires, e.expires);
}

TEST(FleetEntry, AHostileOrMalformedValueIsRefused) {
  auto value = [](const std::string &cidr, const std::string &node, const std::string &reason,
                  const std::string &at, const std::string &expires) {
    return "{\"cidr\":\"" + cidr + "\",\"node\":\"" + node + "\",\"reason\":\"" + reason +
           "\",\"at\":" + at + ",\"expires\":" + expires + "}";
  };
  std::string k = kP + "n/198.51.100.7_32";
  std::string at = std::to_string(kNow - 5);
  EXPECT_TRUE(decode_entry(kP, k, value("198.51.100.7/32", "n", "manual", at, "0"), kNow));
  const std::pair<std::string, std::string> bad[] = {
      {k, "not json"},
      {k, value("0.0.0.0/0", "n", "manual", at, "0")},  // not the key's
      {k, value("198.51.100.7/32", "a b", "manual", at, "0")},
      // Another node's name in this node's key: a node writes as itself only.
      {k, value("198.51.100.7/32", "m", "manual", at, "0")},
      {kP + "a b/198.51.100.7_32", value("198.51.100.7/32", "a b", "manual", at, "0")},
      // The old layout (no node), and a key deeper than NODE/CIDR.
      {kP + "198.51.100.7_32", value("198.51.100.7/32", "n", "manual", at, "0")},
      {kP + "n/x/198.51.100.7_32", value("198.51.100.7/32", "n", "manual", at, "0")},
      {k, value("198.51.100.7/32", std::string(64, 'n'), "manual", at, "0")},
      {k, value("198.51.100.7/32", "n", "because", at, "0")},
      {k, value("198.51.100.7/32", "n", "manual", std::to_string(kNow + 3600), "0")},
      {k, value("198.51.100.7/32", "n", "manual", at, "-5")},
      {k, value("198.51.100.7/32", "n", "manual", at, std::to_string(kNow + 400 * 86400))},
      {k, value("198.51.100.7/32", "n", "manual", at, "1.5")},
      {k, "{\"cidr\":\"198.51.100.7/32\"}"},
      {kP + "n/198.51.100.7", value("198.51.100.7/32", "n", "manual", at, "0")},
      {"/other/n/198.51.100.7_32", value("198.51.100.7/32", "n", "manual", at, "0")},
      {k, std::string(2000, ' ')},
      {kP + "n/300.1.1.1_32", value("300.1.1.1/32", "n", "manual", at, "0")},
  };
  for (const auto &[key, v] : bad)
    EXPECT_FALSE(decode_entry(kP, key, v, kNow)) << key << " " << v;
}

TEST(FleetEntry, ADenyEntryIsAReasonOfItsOwn) {
  auto e = entry("198.51.100.0/24");
  e.reason = "deny";
  auto d = decode_entry(kP, key_of(kP, "gw-1", e.prefix), encode_value(e), kNow);
  ASSERT_TRUE(d) << d.error().what();
  EXPECT_EQ(d->reason, "deny");
  EXPECT_EQ(d->expires, 0);
}

TEST(FleetEntry, TheFleetsNeverBlockKeysAreApartFromEveryNodes) {
  EXPECT_EQ(never_key(kP, pfx("10.0.0.0/8")), kP + "@never/10.0.0.0_8");
  EXPECT_EQ(never_key(kP, pfx("2001:db8::/32")), kP + "@never/2001:db8::_32");
  EXPECT_TRUE(is_never_key(kP, kP + "@never/10.0.0.0_8"));
  EXPECT_FALSE(is_never_key(kP, kP + "gw-1/10.0.0.0_8"));
  // '@' is no node name: no node's key is one, and a never key is no node's.
  EXPECT_FALSE(core::valid_node_name("@never"));
  EXPECT_FALSE(parse_key(kP, kP + "@never/10.0.0.0_8"));
  NeverEntry n{pfx("10.0.0.0/8"), "operator", kNow - 1};
  auto d = decode_never(kP, never_key(kP, n.prefix), encode_never(n), kNow);
  ASSERT_TRUE(d) << d.error().what();
  EXPECT_TRUE(d->prefix == n.prefix);
  EXPECT_EQ(d->by, "operator");
  EXPECT_NEAR(d->at, kNow - 1, 0.01);

  std::string k = kP + "@never/10.0.0.0_8";
  std::string at = std::to_string(kNow - 5);
  auto value = [&](const std::string &cidr, const std::string &by, const std::string &t) {
    return "{\"cidr\":\"" + cidr + "\",\"by\":\"" + by + "\",\"at\":" + t + "}";
  };
  EXPECT_TRUE(decode_never(kP, k, value("10.0.0.0/8", "op", at), kNow));
  const std::pair<std::string, std::string> bad[] = {
      {k, "not json"},
      {k, value("0.0.0.0/0", "op", at)},  // not the key's
      {k, value("10.0.0.0/8", "a b", at)},
      {k, value("10.0.0.0/8", "", at)},
      {k, value("10.0.0.0/8", "op", std::to_string(kNow + 3600))},
      {k, value("10.0.0.0/8", "op", "0")},
      {k, "{\"cidr\":\"10.0.0.0/8\",\"by\":\"op\"}"},
      {kP + "@never/10.0.0.0", value("10.0.0.0/8", "op", at)},
      {kP + "@never/x/10.0.0.0_8", value("10.0.0.0/8", "op", at)},
      {kP + "@never/300.0.0.0_8", value("300.0.0.0/8", "op", at)},
      {kP + "gw-1/10.0.0.0_8", value("10.0.0.0/8", "op", at)},
      {k, std::string(2000, ' ')},
  };
  for (const auto &[key, v] : bad)
    EXPECT_FALSE(decode_never(kP, key, v, kNow)) << key << " " << v;
}

TEST(FleetEntry, NeverBlockIsTouchedByWhatHoldsItOrIsInIt) {
  std::vector<core::Prefix> never{pfx("198.51.100.10"), pfx("10.0.0.0/8")};
  EXPECT_TRUE(touches_never_block(pfx("198.51.100.0/24"), never));
  EXPECT_TRUE(touches_never_block(pfx("10.1.2.3"), never));
  EXPECT_TRUE(touches_never_block(pfx("0.0.0.0/0"), never));
  EXPECT_FALSE(touches_never_block(pfx("198.51.100.11"), never));
  EXPECT_FALSE(touches_never_block(pfx("2001:db8::1"), never));
}

TEST(FleetEntry, AddressesOfOnePrefixAggregateAtTheThreshold) {
  Aggregation a{24, 64, 3};
  std::vector<FleetEntry> local{entry("203.0.113.1", 100), entry("203.0.113.2", 200),
                                entry("198.51.100.1"), entry("198.51.100.2")};
  auto out = aggregate(local, a, {});
  ASSERT_EQ(out.size(), 4u);  // 2 < 3 in each /24: all single
  local.push_back(entry("203.0.113.3", 150));
  out = aggregate(local, a, {});
  ASSERT_EQ(out.size(), 3u);
  auto agg = std::find_if(out.begin(), out.end(), [](auto &e) { return e.reason == "aggregate"; });
  ASSERT_NE(agg, out.end());
  EXPECT_EQ(core::format_prefix(agg->prefix), "203.0.113.0/24");
  EXPECT_EQ(agg->expires, 200);           // its longest member
  local.push_back(entry("203.0.113.4"));  // one without expiry: the prefix has none
  out = aggregate(local, a, {});
  agg = std::find_if(out.begin(), out.end(), [](auto &e) { return e.reason == "aggregate"; });
  ASSERT_NE(agg, out.end());
  EXPECT_EQ(agg->expires, 0);
}

TEST(FleetEntry, AggregationNeverCoversANeverBlockAddress) {
  Aggregation a{24, 64, 2};
  std::vector<FleetEntry> local{entry("203.0.113.1"), entry("203.0.113.2"), entry("203.0.113.3")};
  auto out = aggregate(local, a, {pfx("203.0.113.200")});
  ASSERT_EQ(out.size(), 3u);
  for (const auto &e : out)
    EXPECT_EQ(e.prefix.key.prefixlen, 128u) << core::format_prefix(e.prefix);
}

TEST(FleetEntry, TheBucketLetsTheRateThrough) {
  TokenBucket b(10);
  uint64_t t = 1'000'000'000;
  int passed = 0;
  for (int i = 0; i < 100; i++)
    passed += b.take(t);
  EXPECT_EQ(passed, 10);  // the burst
  passed = 0;
  for (int i = 0; i < 100; i++)  // one second more, in 10 ms steps
    passed += b.take(t += 10'000'000);
  EXPECT_EQ(passed, 10);
}

TEST(FleetEntry, Base64AndPrefixEnd) {
  for (std::string s :
       std::vector<std::string>{"", "a", "ab", "abc", "abcd", std::string("\0\xff\x10", 3)}) {
    std::string back;
    ASSERT_TRUE(base64_decode(base64_encode(s), back)) << s;
    EXPECT_EQ(back, s);
  }
  EXPECT_EQ(base64_encode("/t/a"), "L3QvYQ==");
  std::string junk;
  EXPECT_FALSE(base64_decode("L3Q*YQ==", junk));
  EXPECT_EQ(prefix_end("/a/"), "/a0");
}

}  // namespace
}  // namespace bpfgate::fleet
