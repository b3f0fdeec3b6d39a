#include "core/config.hpp"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include <fmt/format.h>

#include "core/duration.hpp"
#include "core/policy.hpp"

namespace bpfgate::core {
namespace {

bool has(const std::string &h, const std::string &n) {
  return h.find(n) != std::string::npos;
}

TEST(Config, FullConfigParses) {
  auto c = parse_config(R"(
interfaces:
  - name: eth0
    mode: native
    max_sources: 100000
  - name: eth1
limits:
  rate: 2000
  burst: 4000
  prefix: {ipv4: 24, ipv6: 64, rate: 20000}
unparsed: drop
allow: [198.18.0.0/24, "2001:db8:1::/48"]
deny: [198.18.66.0/24, 198.18.66.7]
rules:
  - match: tcp/443
    rate: 500
  - match: udp/53
    action: drop
  - match: tcp/8000-8099
    action: pass
  - match: icmp
    action: limit
    rate: 10
    burst: 20
auto_block: {after: 5s, ttl: 10m}
sweep: {interval: 500ms, source_idle: 2m}
agent: {control_socket: /tmp/x.sock, keep_datapath: true}
)",
                        "gw.yaml");
  ASSERT_TRUE(c.ok()) << c.error().what();
  ASSERT_EQ(c->interfaces.size(), 2u);
  EXPECT_EQ(c->interfaces[0].mode, "native");
  EXPECT_EQ(c->interfaces[0].max_sources, 100000u);
  EXPECT_EQ(c->interfaces[1].mode, "auto");
  EXPECT_EQ(c->limits, (Limits{2000, 4000}));
  ASSERT_TRUE(c->prefix_limit);
  EXPECT_EQ(c->prefix_limit->limits, (Limits{20000, 20000}));
  EXPECT_EQ(c->unparsed, BG_VERDICT_DROP);
  EXPECT_EQ(c->allow.size(), 2u);
  EXPECT_EQ(c->deny.size(), 2u);
  ASSERT_EQ(c->rules.size(), 4u);
  EXPECT_EQ(c->rules[0].action, BG_ACTION_LIMIT);
  EXPECT_EQ(c->rules[0].limits, (Limits{500, 500}));
  EXPECT_EQ(c->rules[2].port_lo, 8000);
  EXPECT_EQ(c->rules[2].port_hi, 8099);
  EXPECT_FALSE(c->rules[3].has_ports);
  ASSERT_TRUE(c->auto_block);
  EXPECT_EQ(c->auto_block->ttl_ns, 600'000'000'000ULL);
  EXPECT_EQ(c->sweep_interval_ns, 500'000'000ULL);
  EXPECT_TRUE(c->keep_datapath);

  PolicyImage p = compile(*c);
  EXPECT_EQ(p.acl.size(), 4u);
  EXPECT_EQ(p.rules.size(), 5u);
  EXPECT_EQ(p.ports.size(), 1u + 1u + 100u);  // tcp/443, udp/53 and tcp/8000-8099
  EXPECT_EQ(p.protos[1], 4u);                 // icmp is rule 4
  EXPECT_EQ(p.settings.prefix_v4, 24);
  EXPECT_EQ(p.settings.block_after_ns, 5'000'000'000ULL);
  EXPECT_EQ(p.settings.unparsed_verdict, BG_VERDICT_DROP);
}

TEST(Config, EveryErrorIsReportedWithFileAndLine) {
  auto c = parse_config(R"(interfaces:
  - name: eth0
    colour: blue
limits:
  rate: 0
allow: [198.18.0.1/24, 10.0.0.0/33, banana]
rules:
  - match: tcp/80-90
    action: drop
  - match: tcp/85
    action: pass
  - match: tcp/70-60
  - match: udp/53
    action: maybe
auto_block: {after: 5 parsecs, ttl: 1m}
)",
                        "bad.yaml");
  ASSERT_FALSE(c.ok());
  const std::string e = c.error().what();
  EXPECT_TRUE(has(e, "nothing was applied")) << e;
  EXPECT_TRUE(has(e, "bad.yaml:3: unknown key 'colour' in an interface")) << e;
  EXPECT_TRUE(has(e, "bad.yaml:5: rate 0 is out of range: give 1 to 100000000")) << e;
  EXPECT_TRUE(has(e,
                  "bad.yaml:6: bad CIDR in allow: '198.18.0.1/24' has host bits set past /24; "
                  "did you mean 198.18.0.0/24?"))
      << e;
  EXPECT_TRUE(has(e, "'10.0.0.0/33' has a bad prefix length: give 0 to 32")) << e;
  EXPECT_TRUE(has(e, "'banana' is not an IPv4 or IPv6 address or prefix")) << e;
  EXPECT_TRUE(has(e, "bad.yaml:10: rule tcp/85 overlaps rule tcp/80-90 on line 8")) << e;
  EXPECT_TRUE(has(e, "bad.yaml:12: match 'tcp/70-60': range is backwards")) << e;
  EXPECT_TRUE(has(e, "bad.yaml:14: action 'maybe' is unknown: use pass, drop or limit")) << e;
  EXPECT_TRUE(has(e, "bad.yaml:15: auto_block.after: '5 parsecs'")) << e;
  EXPECT_TRUE(has(e, "9 errors in bad.yaml")) << e;
}

TEST(Config, NewSourcesOnByDefaultOffOrSetAndBadValues) {
  auto def = parse_config("interfaces: [{name: a}]\n", "n.yaml");
  ASSERT_TRUE(def.ok()) << def.error().what();
  EXPECT_EQ(def->new_sources, (Limits{kDefaultNewSourcesPps, kDefaultNewSourcesPps}));
  auto p = compile(*def);
  EXPECT_EQ(p.settings.new_source_limit.rate_pps, kDefaultNewSourcesPps);
  auto set = parse_config(
      "interfaces: [{name: a}]\nlimits: {rate: 5, new_sources: {rate: 300, "
      "burst: 900}}\n",
      "n.yaml");
  ASSERT_TRUE(set.ok()) << set.error().what();
  EXPECT_EQ(set->new_sources, (Limits{300, 900}));
  auto off =
      parse_config("interfaces: [{name: a}]\nlimits: {rate: 5, new_sources: off}\n", "n.yaml");
  ASSERT_TRUE(off.ok()) << off.error().what();
  EXPECT_EQ(compile(*off).settings.new_source_limit.rate_pps, 0u);
  auto bad =
      parse_config("interfaces: [{name: a}]\nlimits:\n  rate: 5\n  new_sources: lots\n", "n.yaml");
  ASSERT_FALSE(bad.ok());
  EXPECT_TRUE(has(bad.error().what(), "n.yaml:4: limits.new_sources is off or {rate: N, burst: N}"))
      << bad.error().what();
  auto zero = parse_config(
      "interfaces: [{name: a}]\nlimits:\n  rate: 5\n  new_sources: {rate: 0}\n", "n.yaml");
  ASSERT_FALSE(zero.ok());
  EXPECT_TRUE(has(zero.error().what(), "n.yaml:4:")) << zero.error().what();
}

// agent.seccomp: the agent's own filter, on unless the config says off.
TEST(Config, SeccompIsOnByDefaultAndSwitchesOff) {
  auto def = parse_config("interfaces: [{name: a}]\n", "s.yaml");
  ASSERT_TRUE(def.ok()) << def.error().what();
  EXPECT_TRUE(def->seccomp);
  for (const char *v : {"off", "false", "no"}) {
    auto off = parse_config(fmt::format("interfaces: [{{name: a}}]\nagent: {{seccomp: {}}}\n", v),
                            "s.yaml");
    ASSERT_TRUE(off.ok()) << off.error().what();
    EXPECT_FALSE(off->seccomp) << v;
  }
  auto on = parse_config("interfaces: [{name: a}]\nagent: {seccomp: on}\n", "s.yaml");
  ASSERT_TRUE(on.ok()) << on.error().what();
  EXPECT_TRUE(on->seccomp);
  auto bad = parse_config("interfaces: [{name: a}]\nagent:\n  seccomp: later\n", "s.yaml");
  ASSERT_FALSE(bad.ok());
  EXPECT_TRUE(has(bad.error().what(), "s.yaml:3: agent.seccomp must be on or off, not 'later'"))
      << bad.error().what();
}

// dry_run at the root and on a rule, bypass on an interface: on/off, off by
// default (bypass: absent, left to the CLI), errors at FILE:LINE.
TEST(Config, DryRunAndBypassSwitches) {
  auto def =
      parse_config("interfaces: [{name: a}]\nrules: [{match: udp/53, action: drop}]\n", "d.yaml");
  ASSERT_TRUE(def.ok()) << def.error().what();
  EXPECT_FALSE(def->dry_run);
  EXPECT_FALSE(def->rules[0].dry_run);
  EXPECT_FALSE(def->interfaces[0].bypass.has_value());
  EXPECT_FALSE(compile(*def).dry_run);
  auto on = parse_config(
      "interfaces: [{name: a, bypass: on}, {name: b, bypass: off}]\ndry_run: on\n"
      "rules:\n  - {match: udp/53, action: drop, dry_run: on}\n  - {match: tcp/80, rate: 5}\n",
      "d.yaml");
  ASSERT_TRUE(on.ok()) << on.error().what();
  EXPECT_TRUE(on->dry_run);
  EXPECT_EQ(on->interfaces[0].bypass, std::optional<bool>(true));
  EXPECT_EQ(on->interfaces[1].bypass, std::optional<bool>(false));
  auto p = compile(*on);
  EXPECT_TRUE(p.dry_run);
  EXPECT_EQ(p.rules[1].flags & BG_RULE_DRY_RUN, static_cast<__u32>(BG_RULE_DRY_RUN));
  EXPECT_EQ(p.rules[2].flags & BG_RULE_DRY_RUN, 0u);
  auto bad = parse_config(
      "interfaces:\n  - name: a\n    bypass: maybe\ndry_run: perhaps\nrules:\n"
      "  - match: udp/53\n    action: drop\n    dry_run: 2\n  - match: udp/54\n"
      "    action: pass\n    dry_run: on\n",
      "d.yaml");
  ASSERT_FALSE(bad.ok());
  const std::string e = bad.error().what();
  EXPECT_TRUE(has(e, "d.yaml:3: bypass must be on or off, not 'maybe'")) << e;
  EXPECT_TRUE(has(e, "d.yaml:4: dry_run must be on or off, not 'perhaps'")) << e;
  EXPECT_TRUE(has(e, "d.yaml:8: a rule's dry_run must be on or off, not '2'")) << e;
  EXPECT_TRUE(has(e, "d.yaml:11: dry_run on a rule with action pass")) << e;
}

// agent.state_dir: where the manual blocks are kept; off keeps none.
TEST(Config, StateDirIsAnAbsolutePathOrOff) {
  auto def = parse_config("interfaces: [{name: a}]\n", "s.yaml");
  ASSERT_TRUE(def.ok()) << def.error().what();
  EXPECT_EQ(def->state_dir, "/var/lib/bpfgate");
  auto dir = parse_config("interfaces: [{name: a}]\nagent: {state_dir: /srv/gw}\n", "s.yaml");
  ASSERT_TRUE(dir.ok()) << dir.error().what();
  EXPECT_EQ(dir->state_dir, "/srv/gw");
  auto off = parse_config("interfaces: [{name: a}]\nagent: {state_dir: off}\n", "s.yaml");
  ASSERT_TRUE(off.ok()) << off.error().what();
  EXPECT_EQ(off->state_dir, "");
  auto bad = parse_config("interfaces: [{name: a}]\nagent:\n  state_dir: var/lib\n", "s.yaml");
  ASSERT_FALSE(bad.ok());
  EXPECT_TRUE(has(bad.error().what(),
                  "s.yaml:3: agent.state_dir 'var/lib' must be an absolute path, or off"))
      << bad.error().what();
}

TEST(Config, UnprovenSourcesShareARate) {
  auto def = parse_config("interfaces: [{name: a}]\n", "u.yaml");
  ASSERT_TRUE(def.ok()) << def.error().what();
  EXPECT_EQ(compile(*def).settings.unproven_limit.rate_pps, kDefaultUnprovenPps) << "on by default";
  auto set = parse_config(
      "interfaces: [{name: a}]\nlimits: {rate: 9, unproven: {rate: 5000, burst: 50}}\n", "u.yaml");
  ASSERT_TRUE(set.ok()) << set.error().what();
  EXPECT_EQ(compile(*set).settings.unproven_limit.rate_pps, 5000u);
  EXPECT_EQ(compile(*set).settings.unproven_limit.burst, 50u);
  auto off = parse_config("interfaces: [{name: a}]\nlimits: {rate: 9, unproven: off}\n", "u.yaml");
  ASSERT_TRUE(off.ok()) << off.error().what();
  EXPECT_EQ(compile(*off).settings.unproven_limit.rate_pps, 0u);
  auto bad =
      parse_config("interfaces: [{name: a}]\nlimits:\n  rate: 9\n  unproven: lots\n", "u.yaml");
  ASSERT_FALSE(bad.ok());
  EXPECT_TRUE(has(bad.error().what(),
                  "u.yaml:4: limits.unproven is off or {rate: N, burst: N}, not 'lots'"))
      << bad.error().what();
  auto key = parse_config(
      "interfaces: [{name: a}]\nlimits:\n  rate: 9\n  unproven: {rate: 5, brust: 5}\n", "u.yaml");
  ASSERT_FALSE(key.ok());
  EXPECT_TRUE(has(key.error().what(), "u.yaml:4:")) << key.error().what();
}

TEST(Config, ProofsAndAutoBlockGuards) {
  auto def = parse_config("interfaces: [{name: a}]\nauto_block: {after: 1s, ttl: 1m}\n", "p.yaml");
  ASSERT_TRUE(def.ok()) << def.error().what();
  auto p = compile(*def);
  EXPECT_TRUE(p.prove) << "proofs are on by default";
  EXPECT_EQ(p.settings.block_limit.rate_pps, kDefaultAutoBlockPps);
  EXPECT_TRUE(p.noblock.empty());
  auto set = parse_config(
      "interfaces: [{name: a}]\nlimits: {rate: 5, prove: off}\n"
      "auto_block: {after: 1s, ttl: 1m, max_rate: 7, never: [198.18.0.0/24, \"2001:db8::/32\"]}\n",
      "p.yaml");
  ASSERT_TRUE(set.ok()) << set.error().what();
  p = compile(*set);
  EXPECT_FALSE(p.prove);
  EXPECT_EQ(p.settings.block_limit.rate_pps, 7u);
  EXPECT_EQ(p.settings.block_limit.burst, 7u);
  ASSERT_EQ(p.noblock.size(), 2u);
  EXPECT_EQ(p.noblock[0].prefixlen, 96u + 24u);
  auto bad =
      parse_config("interfaces: [{name: a}]\nlimits:\n  rate: 5\n  prove: maybe\n", "p.yaml");
  ASSERT_FALSE(bad.ok());
  EXPECT_TRUE(has(bad.error().what(), "p.yaml:4: limits.prove is syncookies or off, not 'maybe'"))
      << bad.error().what();
  auto never = parse_config(
      "interfaces: [{name: a}]\nauto_block:\n  after: 1s\n  ttl: 1m\n  never: [198.18.0.0/33]\n",
      "p.yaml");
  ASSERT_FALSE(never.ok());
  EXPECT_TRUE(has(never.error().what(), "p.yaml:5:")) << never.error().what();
  auto rate = parse_config(
      "interfaces: [{name: a}]\nauto_block:\n  after: 1s\n  ttl: 1m\n  max_rate: 0\n", "p.yaml");
  ASSERT_FALSE(rate.ok());
  EXPECT_TRUE(has(rate.error().what(), "p.yaml:5:")) << rate.error().what();
}

TEST(Config, AccelSection) {
  auto c = parse_config(
      "interfaces: [{name: a}]\naccel:\n  cgroup: /gw\n  ports: [8080, 9000-9010]\n"
      "  addresses: [127.0.0.0/8, '::1']\n  max_sockets: 4096\n",
      "a.yaml");
  ASSERT_TRUE(c.ok()) << c.error().what();
  ASSERT_TRUE(c->accel);
  EXPECT_EQ(c->accel->cgroup, "/gw");
  EXPECT_EQ(c->accel->ports, "8080,9000-9010");
  EXPECT_EQ(c->accel->ports_line, 4);
  EXPECT_EQ(c->accel->addresses.size(), 2u);
  EXPECT_EQ(c->accel->max_sockets, 4096u);
  auto empty = parse_config("interfaces: [{name: a}]\naccel:\n  ports: ''\n", "a.yaml");
  ASSERT_FALSE(empty.ok());
  EXPECT_TRUE(has(empty.error().what(), "a.yaml:3: accel.ports is empty")) << empty.error().what();
  auto bad = parse_config("interfaces: [{name: a}]\naccel: {addresses: [300.1.1.1]}\n", "a.yaml");
  ASSERT_FALSE(bad.ok());
  EXPECT_TRUE(has(bad.error().what(), "a.yaml:2: '300.1.1.1' is not an address or prefix"))
      << bad.error().what();
}

TEST(Config, StructuralMistakes) {
  auto not_yaml = parse_config("interfaces: [\n  - name: x\n", "a.yaml");
  ASSERT_FALSE(not_yaml.ok());
  EXPECT_TRUE(has(not_yaml.error().what(), "a.yaml:")) << not_yaml.error().what();
  EXPECT_TRUE(has(not_yaml.error().what(), "not valid YAML")) << not_yaml.error().what();
  auto empty = parse_config("", "e.yaml");
  ASSERT_FALSE(empty.ok());
  EXPECT_TRUE(has(empty.error().what(), "e.yaml:1: the config is empty"));
  auto no_if = parse_config("limits: {rate: 5}\n", "n.yaml");
  ASSERT_FALSE(no_if.ok());
  EXPECT_TRUE(has(no_if.error().what(), "names no interfaces"));
  // `bpfgate tc attach IFACE --config FILE` reads a file that holds only tc:.
  auto tc_only =
      parse_config("tc:\n  interfaces: [eth0]\n  classes: [{name: a, match: {protocol: udp}}]\n",
                   "t.yaml", ConfigFor::tc);
  ASSERT_TRUE(tc_only.ok()) << tc_only.error().what();
  ASSERT_TRUE(tc_only->tc.has_value());
  EXPECT_TRUE(tc_only->interfaces.empty());
  EXPECT_FALSE(parse_config("tc:\n  interfaces: [eth0]\n", "t.yaml").ok());
  auto unknown_top = parse_config("interfaces: [{name: a}]\nfirewall: on\n", "u.yaml");
  ASSERT_FALSE(unknown_top.ok());
  EXPECT_TRUE(has(unknown_top.error().what(), "u.yaml:2: unknown key 'firewall' in the config"));
  auto both = parse_config(
      "interfaces: [{name: a}]\nallow: [198.18.0.0/16]\ndeny: [198.18.0.0/16]\n", "b.yaml");
  ASSERT_FALSE(both.ok());
  EXPECT_TRUE(has(both.error().what(), "198.18.0.0/16 is in both allow and deny"));
  auto dup = parse_config("interfaces: [{name: a}, {name: a}]\n", "d.yaml");
  ASSERT_FALSE(dup.ok());
  EXPECT_TRUE(has(dup.error().what(), "interface a is listed twice"));
}

TEST(Config, PrefixFilesReportTheirOwnLines) {
  auto dir = std::filesystem::temp_directory_path() / ("bgcfg" + std::to_string(getpid()));
  std::filesystem::create_directories(dir);
  {
    std::ofstream(dir / "deny.txt")
        << "# threat feed\n198.18.1.0/24\n\n198.18.2.0/24  # ok\nnonsense\n";
    std::ofstream(dir / "gw.yaml") << "interfaces: [{name: a}]\ndeny_file: deny.txt\n";
  }
  auto c = load_config((dir / "gw.yaml").string());
  ASSERT_FALSE(c.ok());
  EXPECT_TRUE(has(c.error().what(), (dir / "deny.txt").string() + ":5: bad CIDR"))
      << c.error().what();
  { std::ofstream(dir / "deny.txt") << "198.18.1.0/24\n198.18.2.0/24\n198.18.1.0/24\n"; }
  c = load_config((dir / "gw.yaml").string());
  ASSERT_TRUE(c.ok()) << c.error().what();
  EXPECT_EQ(c->deny.size(), 2u);  // duplicates folded
  auto missing = load_config((dir / "nope.yaml").string());
  EXPECT_FALSE(missing.ok());
  std::filesystem::remove_all(dir);
}

// The lines of a prefix file without the file (core::parse_prefix_lines, which
// the loader runs on it and tests/fuzz/prefix_file_fuzz.cpp fuzzes).
TEST(Config, PrefixLinesKeepTheGoodOnesAndNumberTheBad) {
  auto r =
      parse_prefix_lines("# feed\r\n\t198.18.1.0/24 \r\n\n300.1.1.1\n2001:db8::/32#x\n1.2.3.4/");
  ASSERT_EQ(r.prefixes.size(), 2u);
  EXPECT_EQ(format_prefix(r.prefixes[0]), "198.18.1.0/24");
  EXPECT_EQ(format_prefix(r.prefixes[1]), "2001:db8::/32");
  ASSERT_EQ(r.problems.size(), 2u);
  EXPECT_EQ(r.problems[0].first, 4);
  EXPECT_TRUE(has(r.problems[0].second, "'300.1.1.1' is not an IPv4 or IPv6 address"));
  EXPECT_EQ(r.problems[1].first, 6);  // the last line, without its newline
  EXPECT_TRUE(parse_prefix_lines("").prefixes.empty());
}

TEST(Config, TheShippedExampleIsValid) {
  auto c = load_config(std::string(BPFGATE_SOURCE_DIR) + "/deploy/bpfgate.yaml");
  ASSERT_TRUE(c.ok()) << c.error().what();
  EXPECT_FALSE(c->rules.empty());
}

TEST(Config, MatchSyntax) {
  RuleConfig r;
  ASSERT_TRUE(parse_match("udp/53", r).ok());
  EXPECT_EQ(r.proto, 17);
  EXPECT_EQ(r.port_lo, 53);
  EXPECT_EQ(r.port_hi, 53);
  ASSERT_TRUE(parse_match("47", r).ok());
  EXPECT_EQ(r.proto, 47);
  EXPECT_FALSE(r.has_ports);
  ASSERT_TRUE(parse_match("tcp/*", r).ok());
  EXPECT_FALSE(r.has_ports);
  EXPECT_FALSE(parse_match("icmp/8", r).ok());
  EXPECT_FALSE(parse_match("tcp/65536", r).ok());
  EXPECT_FALSE(parse_match("quic/443", r).ok());
  EXPECT_FALSE(parse_match("tcp/", r).ok());
}

TEST(Duration, ParsesAndFormats) {
  EXPECT_EQ(parse_duration_ns("250ms").value(), 250'000'000ULL);
  EXPECT_EQ(parse_duration_ns("30").value(), 30'000'000'000ULL);
  EXPECT_EQ(parse_duration_ns("2h").value(), 7'200'000'000'000ULL);
  EXPECT_FALSE(parse_duration_ns("5 s").ok());
  EXPECT_FALSE(parse_duration_ns("s").ok());
  EXPECT_FALSE(parse_duration_ns("5w").ok());
  EXPECT_EQ(format_duration_ns(90'000'000'000ULL), "1m30s");
  EXPECT_EQ(format_duration_ns(250'000'000ULL), "250ms");
}

TEST(Cidr, ParsesBothFamilies) {
  auto v4 = parse_prefix("198.18.0.0/15");
  ASSERT_TRUE(v4.ok());
  EXPECT_EQ(v4->key.prefixlen, 96u + 15);
  EXPECT_EQ(format_prefix(*v4), "198.18.0.0/15");
  auto host = parse_prefix("198.18.0.7");
  ASSERT_TRUE(host.ok());
  EXPECT_EQ(host->key.prefixlen, 128u);
  auto v6 = parse_prefix("2001:db8::/32");
  ASSERT_TRUE(v6.ok());
  EXPECT_EQ(v6->key.prefixlen, 32u);
  EXPECT_EQ(format_prefix(*v6), "2001:db8::/32");
  EXPECT_FALSE(parse_prefix("2001:db8::1/32").ok());
  EXPECT_FALSE(parse_prefix("198.18.0.0/").ok());
}

}  // namespace
}  // namespace bpfgate::core
