// The config's observability sections: metrics, events, services,
// tcp_probes; every mistake reported with its line, like the rest.
#include <gtest/gtest.h>

#include "core/config.hpp"

namespace bpfgate::core {
namespace {

bool has(const std::string &h, const std::string &n) {
  return h.find(n) != std::string::npos;
}

TEST(ConfigObserve, DefaultsAndFullSections) {
  auto d = parse_config("interfaces: [{name: eth0}]\n", "gw.yaml");
  ASSERT_TRUE(d.ok());
  EXPECT_TRUE(d->metrics.enabled);
  EXPECT_EQ(d->metrics.address, "127.0.0.1") << "metrics listen on loopback unless told";
  EXPECT_EQ(d->metrics.port, 9477);
  EXPECT_EQ(d->events.buffer, "auto");
  EXPECT_EQ(d->events.drop_sample_interval_ns, 100'000'000u);
  EXPECT_TRUE(d->services.empty());
  EXPECT_EQ(d->tcp_probes, "auto");

  auto c = parse_config(R"(interfaces: [{name: eth0}]
metrics: {listen: "[::1]:9100"}
events: {buffer: perf, drop_samples: 4}
tcp_probes: tracepoint
services:
  - {name: web, port: 80}
  - {name: pg, port: 5432, protocol: tcp}
)",
                        "gw.yaml");
  ASSERT_TRUE(c.ok()) << c.error().what();
  EXPECT_EQ(c->metrics.address, "::1");
  EXPECT_EQ(c->metrics.port, 9100);
  EXPECT_EQ(c->events.buffer, "perf");
  EXPECT_EQ(c->events.drop_sample_interval_ns, 250'000'000u);
  EXPECT_EQ(c->tcp_probes, "tracepoint");
  ASSERT_EQ(c->services.size(), 2u);
  EXPECT_EQ(c->services[0].name, "web");
  EXPECT_TRUE(c->services[0].http);
  EXPECT_EQ(c->services[1].port, 5432);
  EXPECT_FALSE(c->services[1].http);
  EXPECT_EQ(c->services[1].line, 7);

  auto off = parse_config("interfaces: [{name: eth0}]\nmetrics: {listen: off}\n", "gw.yaml");
  ASSERT_TRUE(off.ok());
  EXPECT_FALSE(off->metrics.enabled);
}

TEST(ConfigObserve, EveryMistakeWithItsLine) {
  auto c = parse_config(R"(interfaces: [{name: eth0}]
metrics: {listen: "localhost:9100"}
events: {buffer: kafka, drop_samples: 5000}
tcp_probes: kprobe
services:
  - {name: web, port: 80}
  - {name: web, port: 80, protocol: grpc}
  - {name: "bad name", port: 0}
  - {port: 81}
)",
                        "gw.yaml");
  ASSERT_FALSE(c.ok());
  const std::string &m = c.error().message();
  EXPECT_TRUE(has(m, "gw.yaml:2: metrics.listen 'localhost:9100' is not ADDRESS:PORT")) << m;
  EXPECT_TRUE(has(m, "gw.yaml:3: events.buffer 'kafka' is unknown")) << m;
  EXPECT_TRUE(has(m, "gw.yaml:3: events.drop_samples (per second per CPU) 5000 is out of range"))
      << m;
  EXPECT_TRUE(has(m, "gw.yaml:4: tcp_probes 'kprobe' is unknown")) << m;
  EXPECT_TRUE(has(m, "gw.yaml:7: service web is already defined on line 6")) << m;
  EXPECT_TRUE(has(m, "gw.yaml:7: port 80 already belongs to the service on line 6")) << m;
  EXPECT_TRUE(has(m, "gw.yaml:7: protocol 'grpc' is unknown")) << m;
  EXPECT_TRUE(has(m, "gw.yaml:8: service name 'bad name' must be")) << m;
  EXPECT_TRUE(has(m, "gw.yaml:8: port 0 is out of range")) << m;
  EXPECT_TRUE(has(m, "gw.yaml:9: a service needs a name and a port")) << m;
  EXPECT_TRUE(has(m, "nothing was applied")) << m;
}

}  // namespace
}  // namespace bpfgate::core
