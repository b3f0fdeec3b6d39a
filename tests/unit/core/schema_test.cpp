// The schema idiom every config section is read in (core/schema.hpp), the
// shared value parsers (core/values.hpp), and the values the config now parses
// once where the agent used to parse them late.
#include "core/schema.hpp"

#include <netinet/in.h>
#include <yaml-cpp/yaml.h>

#include <gtest/gtest.h>

#include "core/config.hpp"

namespace bpfgate::core {
namespace {

bool has(const std::string &h, const std::string &n) {
  return h.find(n) != std::string::npos;
}

TEST(Schema, SectionChecksKeysAndReadsTypedValues) {
  Diag d("s.yaml");
  auto n = YAML::Load("a: 5\nb: on\nc: 2s\nd: mark\nbogus: 1\n");
  Section s(d, n, "sec", {"a", "b", "c", "d"});
  ASSERT_TRUE(s);
  EXPECT_FALSE(s.all_known());
  uint32_t a = 0;
  bool b = false;
  uint64_t c = 0;
  std::string word;
  EXPECT_TRUE(s.number("a", a, 1, 9));
  EXPECT_TRUE(s.on_off("b", b));
  EXPECT_TRUE(s.duration_ns("c", c));
  EXPECT_TRUE(s.choice("d", word, {"drop", "mark"}));
  EXPECT_FALSE(s.number("absent", a, 1, 9)) << "a key not given leaves the value";
  EXPECT_EQ(a, 5u);
  EXPECT_TRUE(b);
  EXPECT_EQ(c, 2'000'000'000u);
  EXPECT_EQ(word, "mark");
  ASSERT_EQ(d.count(), 1u);
  EXPECT_TRUE(has(d.error().message(), "s.yaml:5: unknown key 'bogus' in sec (known: a, b, c, d)"))
      << d.error().message();
}

TEST(Schema, EveryBadValueNamesItsLineAndSetsNothing) {
  Diag d("s.yaml");
  auto n = YAML::Load("a: 50\nb: maybe\nc: 5x\nd: [1]\ne: sideways\n");
  Section s(d, n, "sec", {"a", "b", "c", "d", "e"});
  uint32_t a = 7;
  bool b = false;
  uint64_t c = 0;
  std::string e;
  EXPECT_FALSE(s.number("a", a, 1, 9));
  EXPECT_FALSE(s.on_off("b", b, "sec.b"));
  EXPECT_FALSE(s.duration_ns("c", c));
  EXPECT_FALSE(s.text("d", e));
  EXPECT_FALSE(s.choice("e", e, {"ingress", "egress", "both"}));
  EXPECT_EQ(a, 7u);
  const std::string m = d.error().message();
  EXPECT_TRUE(has(m, "5 errors in s.yaml; nothing was applied:")) << m;
  EXPECT_TRUE(has(m, "s.yaml:1: a 50 is out of range: give 1 to 9")) << m;
  EXPECT_TRUE(has(m, "s.yaml:2: sec.b must be on or off, not 'maybe'")) << m;
  EXPECT_TRUE(has(m, "s.yaml:3: c: '5x' has an unknown unit")) << m;
  EXPECT_TRUE(has(m, "s.yaml:4: d must be a single value")) << m;
  EXPECT_TRUE(has(m, "s.yaml:5: e 'sideways' is unknown: use ingress, egress or both")) << m;
}

TEST(Schema, ANodeThatIsNoMappingIsReported) {
  Diag d("s.yaml");
  auto n = YAML::Load("[1, 2]");
  Section s(d, n, "sec", {"a"});
  EXPECT_FALSE(s);
  EXPECT_FALSE(s.has("a"));
  EXPECT_TRUE(has(d.error().message(), "s.yaml:1: sec must be a mapping of keys to values"));
}

TEST(Values, PortsAndProtocolsAreParsedOnce) {
  EXPECT_EQ(parse_port_range("80"), (PortRange{80, 80}));
  EXPECT_EQ(parse_port_range("8000-8099"), (PortRange{8000, 8099}));
  EXPECT_EQ(parse_port_range("9-3"), (PortRange{9, 3})) << "the caller words a backwards range";
  for (const char *bad : {"", "-", "65536", "1-2-3", "8o", "-5", "5-"})
    EXPECT_FALSE(parse_port_range(bad)) << bad;
  EXPECT_EQ(*parse_port_list("443,80-81,80"), (std::vector<uint16_t>{80, 81, 443}));
  EXPECT_EQ(parse_protocol("tcp"), IPPROTO_TCP);
  EXPECT_EQ(parse_protocol("47"), 47);
  EXPECT_FALSE(parse_protocol("256"));
  EXPECT_FALSE(parse_protocol("quic"));
}

TEST(Config, ValuesTheAgentUsedToParseAreParsedWithTheConfig) {
  auto c = parse_config(
      "interfaces: [{name: a, mode: drv}]\nevents: {buffer: perfbuf}\n"
      "accel: {ports: '9000-9002,443'}\n",
      "v.yaml");
  ASSERT_TRUE(c.ok()) << c.error().what();
  EXPECT_EQ(c->interfaces[0].xdp_mode, bpf::XdpMode::kNative);
  EXPECT_EQ(c->interfaces[0].mode, "native") << "an alias is kept by its name";
  EXPECT_EQ(c->events.buffer_choice, EventBufferChoice::kPerf);
  EXPECT_EQ(c->events.buffer, "perf");
  EXPECT_EQ(c->accel->port_list, (std::vector<uint16_t>{443, 9000, 9001, 9002}));
  auto bad = parse_config("interfaces: [{name: a}]\naccel:\n  ports: 80,70000\n", "v.yaml");
  ASSERT_FALSE(bad.ok());
  EXPECT_TRUE(has(bad.error().message(),
                  "v.yaml:3: accel.ports: '70000' in port list '80,70000' is not a port"))
      << bad.error().message();
  auto mode = parse_config("interfaces: [{name: a, mode: fast}]\n", "v.yaml");
  ASSERT_FALSE(mode.ok());
  EXPECT_TRUE(has(mode.error().message(),
                  "v.yaml:1: mode 'fast' is unknown: use auto, native, generic or offload"));
}

}  // namespace
}  // namespace bpfgate::core
