// The config's lb: section: parsing, defaults, and every refusal with its line.
#include "features/lb/lb_config.hpp"

#include <netinet/in.h>

#include <gtest/gtest.h>

#include <fmt/format.h>

#include "core/config.hpp"

namespace bpfgate::core {
namespace {

bool has(const std::string &h, const std::string &n) {
  return h.find(n) != std::string::npos;
}

Result<Config> parse(const std::string &lb) {
  return parse_config("interfaces: [{name: eth0}]\nlb:\n" + lb, "gw.yaml");
}

std::string errors(const std::string &lb) {
  auto c = parse(lb);
  if (c) {
    ADD_FAILURE() << "accepted:\n" << lb;
    return "";
  }
  return c.error().message();
}

const char *kFull = R"(  table_size: 4099
  connections: 262144
  idle_timeout: 5m
  interfaces: [b0]
  services:
    - name: web
      vip: 198.18.1.1:80/tcp
      backends:
        - {address: 198.18.2.2:8080, weight: 100}
        - {address: 198.18.2.3, weight: 0}
        - 198.18.2.4:9090
      health: {check: http, path: /healthz, expect: 200, interval: 1s, timeout: 500ms, rise: 2, fall: 3}
      dynamic_weights: {enabled: on, interval: 2s, floor: 10%, max_step: 25%, hysteresis: 5,
                        tolerance: 2ms}
    - name: dns6
      vip: "[2001:db8::1]:53/udp"
      backends: [{address: "[2001:db8::2]:5353"}]
)";

TEST(LbConfig, FullSectionParses) {
  auto c = parse(kFull);
  ASSERT_TRUE(c) << c.error().message();
  ASSERT_TRUE(c->lb);
  const auto &lb = *c->lb;
  EXPECT_EQ(lb.table_size, 4099u);
  EXPECT_EQ(lb.connections, 262144u);
  EXPECT_EQ(lb.idle_timeout_ns, 300'000'000'000ULL);
  EXPECT_EQ(lb.interfaces, std::vector<std::string>{"b0"});
  ASSERT_EQ(lb.services.size(), 2u);
  const auto &web = lb.services[0];
  EXPECT_EQ(web.name, "web");
  EXPECT_EQ(format_lb_endpoint(web.vip), "198.18.1.1:80");
  EXPECT_EQ(web.proto, IPPROTO_TCP);
  EXPECT_EQ(web.line, 8);
  ASSERT_EQ(web.backends.size(), 3u);
  EXPECT_EQ(web.backends[0].key(), "198.18.2.2:8080");
  EXPECT_EQ(web.backends[0].weight, 100u);
  EXPECT_EQ(web.backends[1].key(), "198.18.2.3:80") << "no port: the VIP's";
  EXPECT_EQ(web.backends[1].weight, 0u);
  EXPECT_EQ(web.backends[2].key(), "198.18.2.4:9090");
  EXPECT_EQ(web.backends[2].weight, 100u) << "the default";
  EXPECT_EQ(web.backends[2].line, 13);
  EXPECT_EQ(web.health.check, LbCheck::http);
  EXPECT_EQ(web.health.path, "/healthz");
  EXPECT_EQ(web.health.expect, 200u);
  EXPECT_EQ(web.health.interval_ns, 1'000'000'000ULL);
  EXPECT_EQ(web.health.timeout_ns, 500'000'000ULL);
  EXPECT_EQ(web.health.rise, 2u);
  EXPECT_EQ(web.health.fall, 3u);
  EXPECT_TRUE(web.dynamic_weights.enabled);
  EXPECT_EQ(web.dynamic_weights.interval_ns, 2'000'000'000ULL);
  EXPECT_EQ(web.dynamic_weights.floor_pct, 10u);
  EXPECT_EQ(web.dynamic_weights.max_step_pct, 25u);
  EXPECT_EQ(web.dynamic_weights.hysteresis_pct, 5u);
  EXPECT_EQ(web.dynamic_weights.tolerance_ns, 2'000'000u);
  const auto &dns = lb.services[1];
  EXPECT_TRUE(dns.vip.v6);
  EXPECT_EQ(dns.proto, IPPROTO_UDP);
  EXPECT_EQ(dns.backends[0].key(), "[2001:db8::2]:5353");
  EXPECT_EQ(dns.health.check, LbCheck::none);
  EXPECT_FALSE(dns.dynamic_weights.enabled);
}

TEST(LbConfig, DefaultsAndAbsence) {
  auto none = parse_config("interfaces: [{name: eth0}]\n", "gw.yaml");
  ASSERT_TRUE(none);
  EXPECT_FALSE(none->lb);
  auto c = parse("  services: []\n");
  ASSERT_TRUE(c) << c.error().message();
  EXPECT_EQ(c->lb->table_size, 4099u);
  EXPECT_EQ(c->lb->connections, 262144u);
  EXPECT_EQ(c->lb->idle_timeout_ns, 300'000'000'000ULL);
}

TEST(LbConfig, RefusesNonPrimeAndTooLargeTables) {
  EXPECT_TRUE(has(errors("  table_size: 4096\n"), "gw.yaml:3: lb.table_size 4096 is not prime"));
  EXPECT_TRUE(has(errors("  table_size: 65539\n"), "gw.yaml:3: lb.table_size"));
  EXPECT_TRUE(has(errors("  connections: 10\n"), "gw.yaml:3: lb.connections"));
}

TEST(LbConfig, RefusesAFamilyMismatch) {
  auto e = errors(R"(  services:
    - name: web
      vip: 198.18.1.1:80/tcp
      backends: [{address: "[2001:db8::2]:80"}]
)");
  EXPECT_TRUE(
      has(e, "gw.yaml:6: web.backends: [2001:db8::2]:80 is IPv6, the VIP 198.18.1.1:80 IPv4"))
      << e;
}

TEST(LbConfig, RefusesDuplicates) {
  auto e = errors(R"(  services:
    - name: web
      vip: 198.18.1.1:80/tcp
      backends: [198.18.2.2:80, 198.18.2.2]
    - name: web2
      vip: 198.18.1.1:80/tcp
    - name: web
      vip: 198.18.1.2:80/tcp
)");
  EXPECT_TRUE(has(e, "gw.yaml:6: web: backend 198.18.2.2:80 is listed twice")) << e;
  EXPECT_TRUE(has(e, "gw.yaml:8: lb: VIP 198.18.1.1:80/tcp is used twice")) << e;
  EXPECT_TRUE(has(e, "gw.yaml:9: lb: service 'web' is defined twice")) << e;
  // The same address on another protocol is another VIP.
  EXPECT_TRUE(
      parse("  services:\n    - {name: a, vip: 198.18.1.1:53/tcp}\n"
            "    - {name: b, vip: 198.18.1.1:53/udp}\n"));
}

TEST(LbConfig, RefusesTooManyServices) {
  std::string lb = "  services:\n";
  for (int i = 0; i <= 64; i++)
    lb += fmt::format("    - {{name: s{}, vip: 198.18.1.{}:80/tcp}}\n", i, i + 1);
  EXPECT_TRUE(has(errors(lb), "gw.yaml:4: lb: 65 services, at most 64"));
}

TEST(LbConfig, RefusesBadWeightsAddressesAndUnknownKeys) {
  auto svc = [](const std::string &rest) {
    return "  services:\n    - name: web\n      vip: 198.18.1.1:80/tcp\n" + rest;
  };
  EXPECT_TRUE(has(errors(svc("      backends: [{address: 198.18.2.2, weight: 65536}]\n")),
                  "gw.yaml:6: web.backends.weight"));
  EXPECT_TRUE(has(errors(svc("      backends: [{address: 198.18.2.2, weight: -1}]\n")),
                  "gw.yaml:6: web.backends.weight"));
  EXPECT_TRUE(has(errors(svc("      backends: [{address: 198.18.2.300}]\n")),
                  "gw.yaml:6: web.backends: '198.18.2.300' is not an address"));
  EXPECT_TRUE(has(errors(svc("      backends: [{address: 198.18.2.3:0}]\n")),
                  "gw.yaml:6: web.backends: '198.18.2.3:0': the port must be 1-65535"));
  EXPECT_TRUE(has(errors(svc("      backends: [{address: 198.18.2.2, wieght: 1}]\n")),
                  "gw.yaml:6: unknown key 'wieght'"));
  EXPECT_TRUE(has(errors(svc("      colour: blue\n")), "gw.yaml:6: unknown key 'colour'"));
  EXPECT_TRUE(has(errors("  tablesize: 7\n"), "gw.yaml:3: unknown key 'tablesize'"));
  EXPECT_TRUE(has(errors(svc("      health: {check: ping}\n")), "gw.yaml:6:"));
  EXPECT_TRUE(has(errors(svc("      health: {check: http, path: healthz}\n")),
                  "gw.yaml:6: lb.services.web.health.path 'healthz' must start with /"));
  EXPECT_TRUE(has(errors(svc("      health: {interval: 1s, timeout: 2s}\n")),
                  "the timeout must not be longer than the interval"));
  EXPECT_TRUE(has(errors(svc("      dynamic_weights: {floor: 120%}\n")),
                  "gw.yaml:6: lb.services.web.dynamic_weights.floor '120%' must be a percentage"));
  EXPECT_TRUE(has(errors(svc("      dynamic_weights: {tolerance: 500us}\n")),
                  "gw.yaml:6: lb.services.web.dynamic_weights.tolerance: '500us' has an unknown "
                  "unit 'us'"));
  EXPECT_TRUE(has(errors("  services:\n    - name: web\n      vip: 198.18.1.1:80\n"),
                  "gw.yaml:5: lb.services.web.vip: '198.18.1.1:80' has no protocol"));
  EXPECT_TRUE(has(errors("  services:\n    - name: web\n      vip: 198.18.1.1/tcp\n"),
                  "gw.yaml:5: lb.services.web.vip: '198.18.1.1' has no port"));
  EXPECT_TRUE(has(errors("  services:\n    - {vip: 198.18.1.1:80/tcp}\n"),
                  "gw.yaml:4: a service needs a name"));
}

TEST(LbConfig, Endpoints) {
  auto e = parse_lb_endpoint("[2001:db8::2]:8080", true);
  ASSERT_TRUE(e);
  EXPECT_TRUE(e->v6);
  EXPECT_EQ(e->port, 8080);
  EXPECT_EQ(format_lb_endpoint(*e), "[2001:db8::2]:8080");
  auto bare6 = parse_lb_endpoint("2001:db8::2", false);
  ASSERT_TRUE(bare6);
  EXPECT_EQ(bare6->port, 0);
  auto v4 = parse_lb_endpoint("198.18.2.2", false);
  ASSERT_TRUE(v4);
  EXPECT_EQ(v4->addr[10], 0xff) << "v4-mapped";
  EXPECT_EQ(v4->addr[12], 198);
  EXPECT_FALSE(parse_lb_endpoint("198.18.2.2", true));
  EXPECT_FALSE(parse_lb_endpoint("web", false));
  EXPECT_FALSE(parse_lb_endpoint("[2001:db8::2", false));
}

}  // namespace
}  // namespace bpfgate::core
