// The config's tc: section: parsing, every error with its line, units, and
// the compilation into the class table the datapath runs.
#include "features/tc/tc_config.hpp"

#include <netinet/in.h>

#include <gtest/gtest.h>

#include <cstring>

#include "features/tc/tc_qdisc.hpp"
#include "core/config.hpp"

namespace bpfgate::core {
namespace {

bool has(const std::string &h, const std::string &n) {
  return h.find(n) != std::string::npos;
}

Result<Config> parse(const std::string &tc) {
  return parse_config("interfaces: [{name: eth0}]\ntc:\n" + tc, "gw.yaml");
}

std::string errors(const std::string &tc) {
  auto c = parse(tc);
  if (c) {
    ADD_FAILURE() << "accepted:\n" << tc;
    return "";
  }
  return c.error().message();
}

Result<uint32_t> no_ifindex(const std::string &n) {
  return make_error(ENODEV, "no {}", n);
}

TEST(TcConfig, FullSectionParses) {
  auto c = parse(R"(  interfaces: [eth0, eth1]
  htb: {rate: 1gbit, default_priority: 5}
  stages: {mirror: off}
  classes:
    - name: api
      direction: egress
      match: {protocol: tcp, sport: 8000-8099, dst: 198.18.0.0/15, dscp: af41}
      rate: 50mbit
      burst: 128kb
      exceed: mark
      exceed_dscp: le
      priority: 0
      dscp: ef
      mirror: {interface: mon0, sample: 10}
    - name: bulk
      match: {protocol: udp, port: 5201}
      rate: 1.5mbit
    - name: rest
)");
  ASSERT_TRUE(c.ok()) << c.error().what();
  ASSERT_TRUE(c->tc);
  const TcConfig &t = *c->tc;
  ASSERT_EQ(t.interfaces.size(), 2u);
  EXPECT_EQ(t.interfaces[1].name, "eth1");
  ASSERT_TRUE(t.htb);
  EXPECT_EQ(t.htb->rate_bps, 1'000'000'000u);
  EXPECT_EQ(t.htb->default_priority, 5);
  EXPECT_FALSE(t.stages[BG_TC_STAGE_MIRROR]);
  EXPECT_TRUE(t.stages[BG_TC_STAGE_POLICE]);
  ASSERT_EQ(t.classes.size(), 3u);
  const TcClassConfig &api = t.classes[0];
  EXPECT_EQ(api.dirs, BG_TC_DIR_EGRESS);
  EXPECT_EQ(api.match.proto, IPPROTO_TCP);
  EXPECT_EQ(api.match.sport, (PortRange{8000, 8099}));
  EXPECT_EQ(api.match.dscp, 34);
  EXPECT_EQ(api.rate_bps, 50'000'000u);
  EXPECT_EQ(api.burst_bytes, 128u * 1024);
  EXPECT_EQ(api.exceed, BG_TC_EXCEED_MARK);
  EXPECT_EQ(api.exceed_dscp, 1);
  EXPECT_EQ(api.priority, 0);
  EXPECT_EQ(api.set_dscp, 46);
  ASSERT_TRUE(api.mirror);
  EXPECT_EQ(api.mirror->iface, "mon0");
  EXPECT_EQ(api.mirror->sample, 10u);
  EXPECT_EQ(t.classes[1].dirs, BG_TC_DIR_INGRESS | BG_TC_DIR_EGRESS);
  EXPECT_EQ(t.classes[1].rate_bps, 1'500'000u);
  EXPECT_EQ(t.classes[1].burst_bytes, default_burst(1'500'000)) << "no burst: the default";
  EXPECT_EQ(t.classes[2].rate_bps, 0u);
}

TEST(TcConfig, NoSectionNoTc) {
  auto c = parse_config("interfaces: [{name: eth0}]\n", "gw.yaml");
  ASSERT_TRUE(c.ok());
  EXPECT_FALSE(c->tc);
}

TEST(TcConfig, EveryErrorWithItsLine) {
  std::string e = errors(R"(  interfaces: [eth0]
  classes:
    - {name: a, priority: 1}
    - {name: b, direction: ingress, rate: 1mbit, exceed: mark}
    - {name: c, match: {port: 80}}
    - {name: a}
    - {name: d, rate: 10 mbps}
    - {name: e, rate: 1mbit, burst: 100}
    - {name: f, match: {dscp: af51}}
    - {name: g, mirror: {interface: eth0}}
    - {name: h, colour: red}
    - {name: 'bad name'}
    - {name: i, match: {src: 198.18.0.1/24}}
    - {name: j, match: {src: 198.18.0.0/24, dst: '2001:db8::/32'}}
)");
  EXPECT_TRUE(has(e, "gw.yaml:5: priority picks a queue of the HTB hierarchy")) << e;
  EXPECT_TRUE(has(e, "gw.yaml:5: priority applies on egress")) << e;
  EXPECT_TRUE(has(e, "gw.yaml:6: exceed: mark applies on egress")) << e;
  EXPECT_TRUE(has(e, "gw.yaml:7: ports match tcp or udp")) << e;
  EXPECT_TRUE(has(e, "gw.yaml:8: class a is already defined on line 5")) << e;
  EXPECT_TRUE(has(e, "gw.yaml:9: rate '10 mbps' is not a rate in bits per second")) << e;
  EXPECT_TRUE(has(e, "gw.yaml:10: burst 100 bytes is out of range")) << e;
  EXPECT_TRUE(has(e, "gw.yaml:11: match.dscp: DSCP 'af51' is unknown")) << e;
  EXPECT_TRUE(has(e, "gw.yaml:12: class g mirrors to eth0, which bpfgate's tc programs are on"))
      << e;
  EXPECT_TRUE(has(e, "gw.yaml:13: unknown key 'colour' in a class")) << e;
  EXPECT_TRUE(has(e, "gw.yaml:14: class name 'bad name' must be")) << e;
  EXPECT_TRUE(has(e, "gw.yaml:15: bad CIDR in src")) << e;
  EXPECT_TRUE(has(e, "gw.yaml:16: src and dst are of different address families")) << e;
  EXPECT_TRUE(has(e, "nothing was applied")) << e;
}

TEST(TcConfig, SectionLevelErrors) {
  EXPECT_TRUE(has(errors("  classes: []\n"), "gw.yaml:3: tc needs interfaces"));
  EXPECT_TRUE(has(errors("  interfaces: [eth0, eth0]\n"), "interface eth0 is listed twice"));
  EXPECT_TRUE(has(errors("  interfaces: [eth0]\n  htb: {default_priority: 9}\n"),
                  "tc.htb needs the rate the link carries"));
  EXPECT_TRUE(has(errors("  interfaces: [eth0]\n  htb: {rate: 1gbit, default_priority: 9}\n"),
                  "default_priority 9 is out of range: give 0 to 7"));
  EXPECT_TRUE(has(errors("  interfaces: [eth0]\n  stages: {police: maybe}\n"),
                  "police must be on or off, not 'maybe'"));
  EXPECT_TRUE(has(errors("  interfaces: [eth0]\n  stages: {shape: on}\n"),
                  "unknown key 'shape' in tc.stages"));
  EXPECT_TRUE(
      has(errors("  interfaces: [eth0]\n  classes: {a: 1}\n"), "tc.classes must be a list"));
  std::string many = "  interfaces: [eth0]\n  classes:\n";
  for (int i = 0; i <= BG_TC_CLASSES_MAX; i++)
    many += "    - {name: c" + std::to_string(i) + "}\n";
  EXPECT_TRUE(has(errors(many), "65 classes: at most 64"));
}

TEST(TcConfig, RatesSizesAndDscpNames) {
  EXPECT_EQ(*parse_rate_bps("10mbit"), 10'000'000u);
  EXPECT_EQ(*parse_rate_bps("10Mbit"), 10'000'000u);
  EXPECT_EQ(*parse_rate_bps("1.5gbit"), 1'500'000'000u);
  EXPECT_EQ(*parse_rate_bps("800kbit"), 800'000u);
  EXPECT_EQ(*parse_rate_bps("2000000"), 2'000'000u);
  EXPECT_FALSE(parse_rate_bps("10mbps").ok()) << "bytes per second are not bits";
  EXPECT_FALSE(parse_rate_bps("1kbit").ok()) << "below 8kbit";
  EXPECT_FALSE(parse_rate_bps("500gbit").ok());
  EXPECT_FALSE(parse_rate_bps("mbit").ok());
  EXPECT_EQ(*parse_size_bytes("1500"), 1500u);
  EXPECT_EQ(*parse_size_bytes("64kb"), 65536u);
  EXPECT_EQ(*parse_size_bytes("2m"), 2u << 20);
  EXPECT_FALSE(parse_size_bytes("64kbit").ok());
  EXPECT_EQ(*parse_dscp("ef"), 46);
  EXPECT_EQ(*parse_dscp("EF"), 46);
  EXPECT_EQ(*parse_dscp("cs6"), 48);
  EXPECT_EQ(*parse_dscp("af11"), 10);
  EXPECT_EQ(*parse_dscp("af43"), 38);
  EXPECT_EQ(*parse_dscp("le"), 1);
  EXPECT_EQ(*parse_dscp("63"), 63);
  EXPECT_FALSE(parse_dscp("64").ok());
  EXPECT_FALSE(parse_dscp("cs8").ok());
  EXPECT_EQ(format_rate_bps(12'340'000), "12.34mbit");
  EXPECT_EQ(*parse_stage("mirror"), BG_TC_STAGE_MIRROR);
  EXPECT_FALSE(parse_stage("shape"));
}

TEST(TcConfig, CompilesIntoTheClassTable) {
  auto c = parse(R"(  interfaces: [eth0]
  htb: {rate: 100mbit}
  classes:
    - {name: api, direction: egress, match: {protocol: tcp, port: 443, src: '2001:db8:1::/48'},
       priority: 2, rate: 8mbit, burst: 10000, dscp: cs4}
    - {name: mon, match: {dst: 198.18.4.0/22, dscp: 0}, mirror: {interface: mon0, sample: 3}}
)");
  ASSERT_TRUE(c.ok()) << c.error().what();
  auto img = compile_tc(*c->tc, [](const std::string &n) -> Result<uint32_t> {
    return n == "mon0" ? Result<uint32_t>(7u) : no_ifindex(n);
  });
  ASSERT_TRUE(img.ok()) << img.error().what();
  ASSERT_EQ(img->classes.size(), 2u);
  const bg_tc_class &a = img->classes[0];
  EXPECT_STREQ(a.name, "api");
  EXPECT_EQ(a.flags, static_cast<uint32_t>(BG_TC_CLASS_VALID | BG_TC_CLASS_SET_DSCP));
  EXPECT_EQ(a.match.flags, static_cast<uint32_t>(BG_TC_M_PROTO | BG_TC_M_PORT | BG_TC_M_SRC));
  EXPECT_EQ(a.match.dport_lo, 443);
  EXPECT_EQ(a.match.dport_hi, 443);
  uint8_t mask[16], want[16];
  std::memcpy(mask, a.match.src_mask, 16);
  std::memcpy(want, a.match.src, 16);
  for (int i = 0; i < 16; i++)
    EXPECT_EQ(mask[i], i < 6 ? 0xff : 0) << i;
  EXPECT_EQ(want[0], 0x20);
  EXPECT_EQ(want[1], 0x01);
  EXPECT_EQ(want[5], 0x01);
  EXPECT_EQ(want[6], 0);
  EXPECT_EQ(a.rate_bps, 8'000'000u);
  EXPECT_EQ(a.burst_ns, 10'000'000u) << "10000 bytes at 8 Mbit/s are 10 ms";
  EXPECT_EQ(a.skb_priority, 0x62670012u);
  EXPECT_EQ(a.set_dscp, 32);
  EXPECT_EQ(a.dirs, BG_TC_DIR_EGRESS);
  const bg_tc_class &m = img->classes[1];
  EXPECT_EQ(m.match.flags, static_cast<uint32_t>(BG_TC_M_DST | BG_TC_M_DSCP));
  std::memcpy(mask, m.match.dst_mask, 16);
  EXPECT_EQ(mask[11], 0xff) << "the v4-mapped prefix is part of an IPv4 match";
  EXPECT_EQ(mask[14], 0xfc) << "/22";
  EXPECT_EQ(mask[15], 0);
  EXPECT_EQ(m.mirror_ifindex, 7u);
  EXPECT_EQ(m.mirror_sample, 3u);
  EXPECT_EQ(m.skb_priority, 0u);
  EXPECT_EQ(m.rate_bps, 0u);
  // A mirror interface that does not exist is an error that names the class.
  auto bad = compile_tc(*c->tc, no_ifindex);
  ASSERT_FALSE(bad.ok());
  EXPECT_TRUE(has(bad.error().message(), "class mon: mirror")) << bad.error().message();
}

TEST(TcConfig, HtbHasAParentClassAndOneLeafPerPriority) {
  TcHtbConfig h{.rate_bps = 80'000'000, .default_priority = 4};
  EXPECT_EQ(agent::qdisc::htb_default_minor(h), 0x14u);
  auto cls = agent::qdisc::htb_classes(h);
  ASSERT_EQ(cls.size(), 1u + BG_TC_PRIORITIES);
  EXPECT_EQ(cls[0].parent, 0x62670000u);
  EXPECT_EQ(cls[0].classid, 0x62670001u);
  EXPECT_EQ(cls[0].rate_bps, 80'000'000u);
  EXPECT_EQ(cls[0].ceil_bps, 80'000'000u);
  for (uint32_t p = 0; p < BG_TC_PRIORITIES; p++) {
    const auto &c = cls[1 + p];
    EXPECT_EQ(c.parent, 0x62670001u);
    EXPECT_EQ(c.classid, 0x62670010u + p);
    EXPECT_EQ(c.rate_bps, 10'000'000u) << "an eighth of the link";
    EXPECT_EQ(c.ceil_bps, 80'000'000u) << "may borrow all of it";
    EXPECT_EQ(c.prio, p);
    EXPECT_EQ(c.quantum, 60000u);
  }
  // A slow link's leaves still get the smallest rate.
  TcHtbConfig slow{.rate_bps = 16'000, .default_priority = 0};
  EXPECT_EQ(agent::qdisc::htb_classes(slow)[1].rate_bps, kTcRateMinBps);
}

TEST(TcConfig, HtbIsCreatedKeptReCreatedOrRefusedByTheRootItFinds) {
  using agent::qdisc::HtbAction;
  using agent::qdisc::RootKind;
  TcHtbConfig h{.rate_bps = 80'000'000, .default_priority = 4};
  auto action = [&](RootKind kind, int64_t dflt) {
    return agent::qdisc::htb_action({.kind = kind, .description = "", .htb_default = dflt}, h);
  };
  EXPECT_EQ(action(RootKind::kDefault, -1), HtbAction::kCreate);
  EXPECT_EQ(action(RootKind::kOurs, 0x14), HtbAction::kUpdate) << "HTB has no qdisc change";
  EXPECT_EQ(action(RootKind::kOurs, 0x12), HtbAction::kRecreate);
  EXPECT_EQ(action(RootKind::kForeign, 0x14), HtbAction::kRefuse);
}

}  // namespace
}  // namespace bpfgate::core

namespace bpfgate::core {
namespace {

// The fastest rate without a burst: the default bucket is capped, so its
// depth in ns (burst * 8e9 / rate) does not overflow 64 bits.
TEST(TcConfig, TheDefaultBurstOfTheFastestRateFitsItsArithmetic) {
  EXPECT_EQ(default_burst(kTcRateMaxBps), kTcBurstMaxBytes);
  EXPECT_EQ(default_burst(kTcRateMinBps), 512u * 1024);
  auto c = parse(R"(  interfaces: [eth0]
  classes:
    - {name: fast, match: {protocol: udp}, rate: 400gbit}
)");
  ASSERT_TRUE(c.ok()) << c.error().what();
  auto img = compile_tc(*c->tc, no_ifindex);
  ASSERT_TRUE(img.ok()) << img.error().what();
  const bg_tc_class &k = img->classes[0];
  EXPECT_EQ(k.burst_bytes, kTcBurstMaxBytes);
  // 256 MiB at 400 gbit/s: 5.37 ms.
  EXPECT_NEAR(static_cast<double>(k.burst_ns), 5.368709e6, 1e3);
}

}  // namespace
}  // namespace bpfgate::core
