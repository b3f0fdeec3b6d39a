// The tc datapath (bpf/tc/tc.bpf.c) run on crafted frames with
// bpf_prog_test_run_opts on its __sk_buff programs: classification (protocol,
// ports, CIDR, DSCP, direction, first match), policing (burst, rate, drop or
// mark), DSCP rewrite with checksums checked, the stage chain (tail calls)
// switched at run time, the class switch, mirroring with sampling.
#include <bpf/bpf.h>
#include <linux/pkt_cls.h>
#include <net/if.h>

#include <gtest/gtest.h>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "features/tc/tc.hpp"
#include "core/config.hpp"
#include "core/packet.hpp"
#include "support/one_cpu.hpp"
#include "support/system.hpp"

namespace bpfgate::test {
namespace {

using core::PacketBuilder;
constexpr uint32_t kPass = static_cast<uint32_t>(TC_ACT_UNSPEC);  // pass, later filters run
constexpr uint32_t kDrop = TC_ACT_SHOT;
constexpr size_t kL3 = 14;  // untagged Ethernet

struct SkbResult {
  uint32_t retval = 0;
  uint32_t priority = 0;  // skb->priority after the run
  std::vector<uint8_t> frame;
};

// Runs a tc program once on `frame`, with room for the frame it leaves and
// the __sk_buff it leaves (skb->priority).
SkbResult run_skb(int prog_fd, const std::vector<uint8_t> &frame, uint32_t ifindex = 0) {
  SkbResult r;
  r.frame.resize(frame.size() + 256);
  __sk_buff ctx_in{}, ctx_out{};
  ctx_in.ifindex = ifindex;
  LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = frame.data(), .data_out = r.frame.data(),
              .data_size_in = static_cast<uint32_t>(frame.size()),
              .data_size_out = static_cast<uint32_t>(r.frame.size()), .ctx_in = &ctx_in,
              .ctx_out = &ctx_out, .ctx_size_in = sizeof(ctx_in), .ctx_size_out = sizeof(ctx_out),
              .repeat = 1);
  int err = bpf_prog_test_run_opts(prog_fd, &opts);
  EXPECT_EQ(err, 0) << "bpf_prog_test_run_opts: " << strerror(errno);
  r.retval = opts.retval;
  r.priority = ctx_out.priority;
  r.frame.resize(opts.data_size_out);
  return r;
}

core::TcImage image(const std::string &tc_yaml) {
  auto c = core::parse_config("interfaces: [{name: eth0}]\ntc:\n" + tc_yaml, "test.yaml");
  if (!c) {
    ADD_FAILURE() << c.error().what();
    return {};
  }
  auto img = core::compile_tc(*c->tc, [](const std::string &n) -> Result<uint32_t> {
    uint32_t i = if_nametoindex(n.c_str());
    if (!i)
      return make_error(ENODEV, "no interface {}", n);
    return i;
  });
  if (!img) {
    ADD_FAILURE() << img.error().what();
    return {};
  }
  return *img;
}

agent::TcDatapath load(const std::string &tc_yaml) {
  auto dp = agent::TcDatapath::load();
  if (!dp) {
    ADD_FAILURE() << dp.error().what();
    std::abort();
  }
  auto st = dp->apply(image(tc_yaml));
  EXPECT_TRUE(st.ok()) << st.error().what();
  return std::move(*dp);
}

std::vector<agent::TcClassStats> stats(const agent::TcDatapath &dp) {
  auto s = dp.class_stats();
  EXPECT_TRUE(s.ok()) << s.error().what();
  return s ? *s : std::vector<agent::TcClassStats>{};
}

const agent::TcClassStats &named(const std::vector<agent::TcClassStats> &all,
                                 const std::string &name) {
  for (const auto &s : all)
    if (!s.unclassified && s.name == name)
      return s;
  static agent::TcClassStats none;
  ADD_FAILURE() << "no class " << name;
  return none;
}

// The class a frame lands in ("" for none), told by which counter moved.
std::string class_of(agent::TcDatapath &dp, const std::vector<uint8_t> &frame, bool egress) {
  auto before = stats(dp);
  run_skb(dp.prog_fd(egress), frame);
  auto after = stats(dp);
  for (size_t i = 0; i < after.size() && i < before.size(); i++)
    if (after[i].packets != before[i].packets)
      return after[i].unclassified ? "" : after[i].name;
  return "?";
}

std::vector<uint8_t> udp4(const std::string &src, const std::string &dst, uint16_t sport,
                          uint16_t dport, size_t size = 0) {
  PacketBuilder b;
  b.ipv4(src, dst).udp(sport, dport);
  if (size)
    b.frame_size(size);
  return b.build();
}

// Sets an IPv4 frame's TOS byte and its header checksum.
std::vector<uint8_t> with_tos(std::vector<uint8_t> f, uint8_t tos) {
  f[kL3 + 1] = tos;
  f[kL3 + 10] = f[kL3 + 11] = 0;
  uint16_t c = core::inet_checksum(f.data() + kL3, 20);
  f[kL3 + 10] = c >> 8;
  f[kL3 + 11] = c & 0xff;
  return f;
}

// Sets an IPv6 frame's traffic class (no header checksum in IPv6).
std::vector<uint8_t> with_tclass(std::vector<uint8_t> f, uint8_t tclass) {
  f[kL3] = static_cast<uint8_t>(0x60 | (tclass >> 4));
  f[kL3 + 1] = static_cast<uint8_t>((tclass << 4) | (f[kL3 + 1] & 0x0f));
  return f;
}

uint8_t tclass_of(const std::vector<uint8_t> &f) {
  return static_cast<uint8_t>(((f[kL3] & 0x0f) << 4) | (f[kL3 + 1] >> 4));
}

uint32_t sum16(const uint8_t *d, size_t len, uint32_t sum = 0) {
  for (size_t i = 0; i + 1 < len; i += 2)
    sum += static_cast<uint32_t>((d[i] << 8) | d[i + 1]);
  if (len & 1)
    sum += static_cast<uint32_t>(d[len - 1] << 8);
  return sum;
}

// True if the UDP checksum of an untagged IPv4 or IPv6 frame verifies.
bool udp_checksum_ok(const std::vector<uint8_t> &f) {
  bool v6 = (f[kL3] >> 4) == 6;
  size_t l4 = kL3 + (v6 ? 40 : (f[kL3] & 0x0f) * 4u);
  size_t len = f.size() - l4;
  uint32_t pseudo = v6 ? sum16(f.data() + kL3 + 8, 32) : sum16(f.data() + kL3 + 12, 8);
  pseudo += 17 + static_cast<uint32_t>(len);
  return core::inet_checksum(f.data() + l4, len, pseudo) == 0;
}

// The one seam for time: the policer depends only on (tat - now), so moving
// a class's tat back by `ns` is exactly `ns` passing for that class.
void advance_time(agent::TcDatapath &dp, uint32_t position, uint64_t ns) {
  auto b = dp.buckets().lookup(position);
  ASSERT_TRUE(b.ok() && b->has_value());
  bg_tc_bucket v = **b;
  v.tat_ns = v.tat_ns > ns ? v.tat_ns - ns : 0;
  ASSERT_TRUE(dp.buckets().update(position, v).ok());
}

int passes(agent::TcDatapath &dp, const std::vector<uint8_t> &f, int n, bool egress = false) {
  int p = 0;
  for (int i = 0; i < n; i++)
    p += run_skb(dp.prog_fd(egress), f).retval == kPass;
  return p;
}

TEST(TcClassify, ByProtocolPortsCidrAndDscp) {
  auto dp = load(
      "  interfaces: [eth0]\n"
      "  classes:\n"
      "    - {name: dns, match: {protocol: udp, dport: 53}}\n"
      "    - {name: web, match: {protocol: tcp, port: 8000-8099}}\n"
      "    - {name: ssh-out, match: {protocol: tcp, sport: 22}}\n"
      "    - {name: lab6, match: {src: '2001:db8:7::/48'}}\n"
      "    - {name: lab4, match: {dst: 198.18.7.0/24}}\n"
      "    - {name: voice, match: {dscp: ef}}\n"
      "    - {name: icmp, match: {protocol: icmp}}\n");
  const std::string a = "198.18.0.2", b = "198.18.0.1";
  EXPECT_EQ(class_of(dp, udp4(a, b, 40000, 53), false), "dns");
  EXPECT_EQ(class_of(dp, udp4(a, b, 53, 40000), false), "") << "dport is the destination only";
  EXPECT_EQ(class_of(dp, PacketBuilder().ipv4(a, b).tcp(40000, 8080).build(), false), "web");
  EXPECT_EQ(class_of(dp, PacketBuilder().ipv4(a, b).tcp(8099, 40000).build(), false), "web")
      << "port is either side";
  EXPECT_EQ(class_of(dp, PacketBuilder().ipv4(a, b).tcp(40000, 8100).build(), false), "");
  EXPECT_EQ(class_of(dp, PacketBuilder().ipv4(a, b).tcp(22, 40000).build(), false), "ssh-out");
  EXPECT_EQ(
      class_of(dp, PacketBuilder().ipv6("2001:db8:7::9", "2001:db8::1").udp(1, 2).build(), false),
      "lab6");
  EXPECT_EQ(
      class_of(dp, PacketBuilder().ipv6("2001:db8:8::9", "2001:db8::1").udp(1, 2).build(), false),
      "");
  EXPECT_EQ(class_of(dp, udp4(a, "198.18.7.200", 1, 2), false), "lab4");
  EXPECT_EQ(class_of(dp, udp4(a, "198.18.8.1", 1, 2), false), "");
  EXPECT_EQ(class_of(dp, with_tos(udp4(a, b, 1, 2), (46 << 2) | 1), false), "voice");
  EXPECT_EQ(
      class_of(dp,
               with_tclass(PacketBuilder().ipv6("2001:db8::2", "2001:db8::1").udp(1, 2).build(),
                           46 << 2),
               false),
      "voice");
  EXPECT_EQ(class_of(dp, with_tos(udp4(a, b, 1, 2), 34 << 2), false), "");
  EXPECT_EQ(class_of(dp, PacketBuilder().ipv4(a, b).icmp(8, 0).build(), false), "icmp");
  // An IPv4 prefix never matches IPv6 (v4-mapped addresses), nor the reverse.
  EXPECT_EQ(class_of(dp, PacketBuilder().ipv6("2001:db8::2", "::ffff:198.18.7.1").udp(1, 2).build(),
                     false),
            "lab4")
      << "a v4-mapped IPv6 destination is that IPv4 address";
  EXPECT_EQ(
      class_of(dp, PacketBuilder().ipv6("2001:db8::2", "2001:db8:7::1").udp(1, 2).build(), false),
      "");
}

TEST(TcClassify, FirstMatchWinsDirectionCountsVlanAndFragments) {
  auto dp = load(
      "  interfaces: [eth0]\n"
      "  classes:\n"
      "    - {name: in-only, direction: ingress, match: {protocol: udp, dport: 9}}\n"
      "    - {name: narrow, match: {protocol: udp, dport: 9, src: 198.18.0.0/24}}\n"
      "    - {name: wide, match: {protocol: udp}}\n");
  auto f = udp4("198.18.0.2", "198.18.0.1", 1, 9);
  EXPECT_EQ(class_of(dp, f, false), "in-only");
  EXPECT_EQ(class_of(dp, f, true), "narrow") << "an ingress class does not match on egress";
  EXPECT_EQ(class_of(dp, udp4("198.18.1.2", "198.18.0.1", 1, 9), true), "wide");
  auto tagged = PacketBuilder().vlan(100).vlan(200, 0x88a8).ipv4("198.18.0.2", "198.18.0.1");
  EXPECT_EQ(class_of(dp, tagged.udp(1, 9).build(), true), "narrow") << "through two VLAN tags";
  // A later fragment has no ports: it cannot match a port, only what is left.
  auto frag = PacketBuilder().ipv4("198.18.0.2", "198.18.0.1").fragment(1480, false).udp(1, 9);
  EXPECT_EQ(class_of(dp, frag.build(), true), "wide");
}

TEST(TcClassify, NonIpAndBrokenFramesPassUnclassified) {
  auto dp = load("  interfaces: [eth0]\n  classes:\n    - {name: all}\n");
  std::vector<uint8_t> arp(60, 0);
  arp[12] = 0x08, arp[13] = 0x06;
  auto r = run_skb(dp.prog_fd(false), arp);
  EXPECT_EQ(r.retval, kPass) << "TC_ACT_UNSPEC: pass, and let later filters run";
  auto bad = udp4("198.18.0.2", "198.18.0.1", 1, 2);
  bad[kL3 + 2] = 0, bad[kL3 + 3] = 10;  // total length shorter than the header: no trusted source
  EXPECT_EQ(run_skb(dp.prog_fd(true), bad).retval, kPass);
  EXPECT_EQ(class_of(dp, udp4("198.18.0.2", "198.18.0.1", 1, 2), false), "all")
      << "an empty match is a catch-all";
  auto s = stats(dp);
  EXPECT_EQ(s.back().packets, 2u) << "the two frames without a class";
  EXPECT_EQ(named(s, "all").packets, 1u);
}

TEST(TcClassify, PriorityGoesToSkbPriorityAsAnHtbClassid) {
  auto dp = load(
      "  interfaces: [eth0]\n  htb: {rate: 1gbit}\n  classes:\n"
      "    - {name: api, direction: egress, match: {protocol: tcp, sport: 443}, priority: 0}\n"
      "    - {name: bulk, direction: egress, match: {protocol: tcp}, priority: 7}\n");
  auto api = PacketBuilder().ipv4("198.18.0.1", "198.18.0.2").tcp(443, 40000).build();
  auto bulk = PacketBuilder().ipv4("198.18.0.1", "198.18.0.2").tcp(5201, 40000).build();
  auto other = udp4("198.18.0.1", "198.18.0.2", 1, 2);
  EXPECT_EQ(run_skb(dp.prog_fd(true), api).priority, 0x62670010u);
  EXPECT_EQ(run_skb(dp.prog_fd(true), bulk).priority, 0x62670017u);
  EXPECT_EQ(run_skb(dp.prog_fd(true), other).priority, 0u) << "no class: untouched";
  EXPECT_EQ(core::htb_classid(3), 0x62670013u);
}

TEST(TcPolice, TheBurstPassesThenTheRateAndOverTheLimitIsDropped) {
  // 8 kbit/s: a 1000-byte frame costs 1 s, a 10000-byte burst is 10 s, so the
  // time the test itself takes hardly counts.
  auto dp = load(
      "  interfaces: [eth0]\n  classes:\n"
      "    - {name: capped, match: {protocol: udp}, rate: 8kbit, burst: 10000}\n");
  auto f = udp4("198.18.0.2", "198.18.0.1", 1, 2, 1000);
  // A frame conforms while the bucket is not empty, then pays: the burst and
  // one frame of debt pass.
  int first = passes(dp, f, 30);
  EXPECT_GE(first, 11);
  EXPECT_LE(first, 12) << "30 frames in well under a second: the burst and at most one more";
  advance_time(dp, 0, 5'000'000'000ULL);
  int later = passes(dp, f, 10);
  EXPECT_GE(later, 5);
  EXPECT_LE(later, 6);
  auto s = named(stats(dp), "capped");
  EXPECT_EQ(s.packets, 40u);
  EXPECT_EQ(s.drops, 40u - static_cast<uint64_t>(first + later));
  EXPECT_EQ(s.bytes, 40u * 1000u) << "bytes count every frame of the class";
  // Another class's traffic is not limited by this one.
  EXPECT_EQ(passes(dp, PacketBuilder().ipv4("198.18.0.2", "198.18.0.1").tcp(1, 2).build(), 50), 50);
}

TEST(TcPolice, AFrameLargerThanTheBurstPassesOnlyFromAFullBucket) {
  // A GSO packet can be larger than the burst: it must not be dropped forever.
  // 3000 bytes cost 3 s at 8 kbit/s; the bucket holds 1.514 s.
  auto dp = load(
      "  interfaces: [eth0]\n  classes:\n"
      "    - {name: small, match: {protocol: udp}, rate: 8kbit, burst: 1514}\n");
  auto big = udp4("198.18.0.2", "198.18.0.1", 1, 2, 3000);
  EXPECT_EQ(passes(dp, big, 5), 1) << "one from the full bucket, then 3 s of debt";
  advance_time(dp, 0, 1'000'000'000ULL);
  EXPECT_EQ(passes(dp, big, 1), 0) << "2 s of debt: more than the bucket holds";
  advance_time(dp, 0, 1'000'000'000ULL);
  EXPECT_EQ(passes(dp, big, 2), 1) << "1 s of debt: the bucket has credit again";
}

TEST(TcPolice, OverTheRateOnEgressIsMarkedNotDropped) {
  auto dp = load(
      "  interfaces: [eth0]\n  classes:\n"
      "    - {name: marked, direction: egress, match: {protocol: udp}, rate: 8kbit, burst: 2000,\n"
      "       exceed: mark, exceed_dscp: cs1}\n");
  auto f = with_tos(udp4("198.18.0.1", "198.18.0.2", 1, 2, 1000), (10 << 2) | 2);  // AF11, ECT(0)
  int marked = 0;
  for (int i = 0; i < 10; i++) {
    auto r = run_skb(dp.prog_fd(true), f);
    EXPECT_EQ(r.retval, kPass);
    uint8_t tos = r.frame[kL3 + 1];
    EXPECT_EQ(tos & 3, 2) << "ECN bits stay";
    if ((tos >> 2) == 8)
      marked++;
    else
      EXPECT_EQ(tos >> 2, 10) << "a conforming frame keeps its DSCP";
    EXPECT_EQ(core::inet_checksum(r.frame.data() + kL3, 20), 0) << "IPv4 header checksum";
    EXPECT_TRUE(udp_checksum_ok(r.frame));
  }
  EXPECT_GE(marked, 6) << "2000 bytes of burst and one frame of debt conform";
  EXPECT_LE(marked, 7);
  auto s = named(stats(dp), "marked");
  EXPECT_EQ(s.marked, static_cast<uint64_t>(marked));
  EXPECT_EQ(s.drops, 0u);
}

TEST(TcDscp, RewriteOnIpv4KeepsEcnAndEveryChecksumRight) {
  auto dp = load(
      "  interfaces: [eth0]\n  classes:\n"
      "    - {name: udp-ef, match: {protocol: udp}, dscp: ef}\n"
      "    - {name: tcp-af41, match: {protocol: tcp}, dscp: af41}\n");
  for (uint8_t ecn : {0, 1, 2, 3}) {
    auto f = with_tos(udp4("198.18.0.2", "198.18.0.1", 4000, 5000, 200), ecn);
    auto r = run_skb(dp.prog_fd(false), f);
    ASSERT_EQ(r.frame.size(), f.size());
    EXPECT_EQ(r.frame[kL3 + 1], (46 << 2) | ecn);
    EXPECT_EQ(core::inet_checksum(r.frame.data() + kL3, 20), 0) << "IPv4 header checksum";
    EXPECT_TRUE(udp_checksum_ok(r.frame)) << "the UDP checksum does not cover the TOS";
    for (size_t i = 0; i < f.size(); i++) {
      if (i != kL3 + 1 && i != kL3 + 10 && i != kL3 + 11) {
        ASSERT_EQ(r.frame[i], f[i]) << "byte " << i << " changed";
      }
    }
  }
  auto t = PacketBuilder().ipv4("198.18.0.2", "198.18.0.1").ipv4_options({1, 1, 1, 1});
  auto r = run_skb(dp.prog_fd(true), t.tcp(1, 2).build());
  EXPECT_EQ(r.frame[kL3 + 1] >> 2, 34) << "with IPv4 options, on egress";
  EXPECT_EQ(core::inet_checksum(r.frame.data() + kL3, 24), 0);
  // Already right: nothing to write.
  auto same = with_tos(udp4("198.18.0.2", "198.18.0.1", 1, 2), 46 << 2);
  EXPECT_EQ(run_skb(dp.prog_fd(false), same).frame, same);
}

TEST(TcDscp, RewriteOnIpv6KeepsEcnAndTheFlowLabel) {
  auto dp = load(
      "  interfaces: [eth0]\n  classes:\n    - {name: v6, match: {dst: '2001:db8::/32'}, dscp: "
      "cs5}\n");
  auto f = PacketBuilder().ipv6("2001:db8::2", "2001:db8::1").udp(4000, 5000).payload(100).build();
  f = with_tclass(f, (18 << 2) | 3);
  f[kL3 + 1] |= 0x0a;  // flow label bits beside the traffic class
  f[kL3 + 2] = 0xbc, f[kL3 + 3] = 0xde;
  auto r = run_skb(dp.prog_fd(true), f);
  EXPECT_EQ(tclass_of(r.frame), (40 << 2) | 3);
  EXPECT_EQ(r.frame[kL3] >> 4, 6) << "version";
  EXPECT_EQ(r.frame[kL3 + 1] & 0x0f, 0x0a) << "flow label";
  EXPECT_EQ(r.frame[kL3 + 2], 0xbc);
  EXPECT_EQ(r.frame[kL3 + 3], 0xde);
  EXPECT_TRUE(udp_checksum_ok(r.frame)) << "the traffic class is not in the pseudo-header";
}

TEST(TcStages, EachStageTurnsOffAndOnWithoutReloadingTheOthers) {
  auto dp = load(
      "  interfaces: [eth0]\n  classes:\n"
      "    - {name: capped, match: {protocol: udp}, rate: 8kbit, burst: 2000, dscp: ef}\n");
  auto f = udp4("198.18.0.2", "198.18.0.1", 1, 2, 1000);
  bpf_prog_info before{};
  uint32_t len = sizeof(before);
  ASSERT_EQ(bpf_obj_get_info_by_fd(dp.prog_fd(false), &before, &len), 0);
  EXPECT_LE(passes(dp, f, 10), 3);

  ASSERT_TRUE(dp.set_stage(BG_TC_STAGE_POLICE, false).ok());
  EXPECT_EQ(passes(dp, f, 10), 10) << "police off: nothing is dropped";
  EXPECT_EQ(run_skb(dp.prog_fd(false), f).frame[kL3 + 1] >> 2, 46) << "classify still marks";
  ASSERT_TRUE(dp.set_stage(BG_TC_STAGE_POLICE, true).ok());
  EXPECT_EQ(passes(dp, f, 10), 0) << "police back: the bucket is still empty";

  uint64_t counted = named(stats(dp), "capped").packets;
  ASSERT_TRUE(dp.set_stage(BG_TC_STAGE_COUNT, false).ok());
  passes(dp, f, 5);
  EXPECT_EQ(named(stats(dp), "capped").packets, counted) << "count off: counters stand still";
  ASSERT_TRUE(dp.set_stage(BG_TC_STAGE_COUNT, true).ok());

  for (uint32_t off : {BG_TC_STAGE_CLASSIFY, BG_TC_STAGE_PARSE}) {
    ASSERT_TRUE(dp.set_stage(off, false).ok());
    auto r = run_skb(dp.prog_fd(false), f);
    EXPECT_EQ(r.retval, kPass) << core::stage_name(off) << " off: no class, nothing dropped";
    EXPECT_EQ(r.frame[kL3 + 1], 0) << core::stage_name(off) << " off: no DSCP rewrite";
    ASSERT_TRUE(dp.set_stage(off, true).ok());
  }
  auto st = dp.stages();
  ASSERT_TRUE(st.ok());
  for (bool on : *st)
    EXPECT_TRUE(on);
  bpf_prog_info after{};
  len = sizeof(after);
  ASSERT_EQ(bpf_obj_get_info_by_fd(dp.prog_fd(false), &after, &len), 0);
  EXPECT_EQ(after.id, before.id) << "the entry program was never replaced";
}

TEST(TcApply, SwitchesGenerationsAndRestartsTheCountersOfRenamedClasses) {
  auto dp = load(
      "  interfaces: [eth0]\n  classes:\n"
      "    - {name: a, match: {protocol: udp}}\n    - {name: b, match: {protocol: tcp}}\n");
  auto u = udp4("198.18.0.2", "198.18.0.1", 1, 2);
  auto t = PacketBuilder().ipv4("198.18.0.2", "198.18.0.1").tcp(1, 2).build();
  passes(dp, u, 3);
  passes(dp, t, 4);
  auto cfg = dp.config();
  ASSERT_TRUE(cfg.ok());
  uint32_t gen = cfg->generation, active = cfg->active;

  // Same first class, a new second one, a third appended.
  ASSERT_TRUE(dp.apply(image("  interfaces: [eth0]\n  classes:\n"
                             "    - {name: a, match: {protocol: udp}}\n"
                             "    - {name: c, match: {protocol: tcp}}\n"
                             "    - {name: d, match: {protocol: icmp}}\n"))
                  .ok());
  cfg = dp.config();
  EXPECT_EQ(cfg->generation, gen + 1);
  EXPECT_NE(cfg->active, active);
  auto s = stats(dp);
  ASSERT_EQ(s.size(), 4u);
  EXPECT_EQ(named(s, "a").packets, 3u) << "a kept its counters";
  EXPECT_EQ(named(s, "c").packets, 0u) << "c is not b";
  EXPECT_EQ(class_of(dp, t, false), "c");
  EXPECT_EQ(
      class_of(dp, PacketBuilder().ipv4("198.18.0.2", "198.18.0.1").icmp(8, 0).build(), false),
      "d");
  // Fewer classes: the old third one no longer matches.
  ASSERT_TRUE(dp.apply(image("  interfaces: [eth0]\n  classes:\n"
                             "    - {name: a, match: {protocol: udp}}\n"))
                  .ok());
  EXPECT_EQ(class_of(dp, t, false), "");
  auto classes = dp.active_classes();
  ASSERT_TRUE(classes.ok());
  EXPECT_EQ(classes->size(), 1u);
}

TEST(TcMirror, OneInNIsClonedToTheMirrorInterface) {
  // The sampling counts per CPU: every frame from one (the 6.1 guest moved
  // this thread between its CPUs once, and 11 of 40 were copied).
  OneCpu pin;
  // A namespace of our own, with a veth pair: the program runs there
  // (BPF_PROG_TEST_RUN uses the caller's namespace) and mirrors to one end;
  // the other end counts what arrives.
  Netns ns(unique_prefix() + "tcm");
  run_ok(fmt::format("ip link add bgtcmir0 netns {} type veth peer name bgtcmir1 netns {}",
                     ns.name(), ns.name()));
  for (const char *dev : {"bgtcmir0", "bgtcmir1"}) {
    run_ok(ns.exec() + fmt::format("sysctl -qw net.ipv6.conf.{}.disable_ipv6=1", dev));
    run_ok(ns.exec() + fmt::format("ip link set {} up", dev));
  }
  auto rx = [&] {
    auto r = run_ok(ns.exec() + "ip -s -j link show dev bgtcmir1");
    auto j = nlohmann::json::parse(r.out, nullptr, false);
    if (j.is_array() && !j.empty())
      return j[0]["stats64"]["rx"]["packets"].get<uint64_t>();
    return uint64_t{0};
  };
  ns.within([&] {
    auto dp = load(
        "  interfaces: [eth0]\n  classes:\n"
        "    - {name: copied, direction: egress, match: {protocol: udp, dport: 9},\n"
        "       mirror: {interface: bgtcmir0, sample: 4}}\n"
        "    - {name: dropped, match: {protocol: udp, dport: 10}, rate: 8kbit, burst: 1514,\n"
        "       mirror: {interface: bgtcmir0}}\n");
    uint64_t before = rx();
    auto f = udp4("198.18.0.1", "198.18.0.2", 1, 9, 200);
    for (int i = 0; i < 40; i++)
      EXPECT_EQ(run_skb(dp.prog_fd(true), f).retval, kPass);
    EXPECT_EQ(passes(dp, udp4("198.18.0.1", "198.18.0.2", 1, 10, 1000), 5), 2);
    EXPECT_EQ(passes(dp, udp4("198.18.0.1", "198.18.0.2", 1, 11), 5, true), 5);
    auto s = stats(dp);
    EXPECT_EQ(named(s, "copied").mirrored, 10u) << "1 in 4 of 40 (one CPU runs them)";
    EXPECT_EQ(named(s, "dropped").mirrored, 2u) << "a dropped packet is not mirrored";
    uint64_t got = 0;
    for (int i = 0; i < 50 && (got = rx() - before) < 12; i++)
      usleep(20'000);
    EXPECT_EQ(got, 12u) << "the copies arrive on the mirror's peer";
  });
}

}  // namespace
}  // namespace bpfgate::test
