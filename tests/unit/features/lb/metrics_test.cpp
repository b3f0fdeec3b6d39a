// The load balancer in /metrics: per-backend families labelled by service,
// backend and id, latency as one-bucket histograms, counters by reason; HELP
// and TYPE alone when no balancer runs.
#include "features/lb/metrics.hpp"

#include <gtest/gtest.h>

#include "support/prometheus_parse.hpp"

namespace bpfgate::agent::lb {
namespace {

namespace prom = test::prom;
using core::prom::Writer;

TEST(MetricsLb, BackendsLatencyAndReasons) {
  LbView v;
  v.connections = 4096;
  v.conns = 7;
  v.catalog = {{1, "web", "tcp", {{3, 100, 300, 250, false, true, "up"}}}};
  ServiceView s;
  s.id = 1;
  s.name = "web";
  BackendView b;
  b.id = 3;
  b.address = "198.18.2.2:8080";
  b.flags = BG_LB_BACKEND_USED | BG_LB_BACKEND_DRAINING;
  b.ring_entries = 17;
  b.active_flows = 5;
  b.stats.packets = 10;
  b.stats.bytes = 1000;
  b.stats.new_flows = 4;
  b.stats.connect_ns = 3'000'000;
  b.stats.connects = 2;
  b.cat = v.catalog[0].backends[0];
  s.backends.push_back(b);
  v.services.push_back(s);
  v.counters[BG_LB_FORWARDED] = {10, 1000};
  Writer w;
  write_metrics(w, &v);
  auto p = prom::parse(w.text());
  ASSERT_TRUE(p) << p.error().what() << "\n" << w.text();
  prom::Labels l = {{"service", "web"}, {"backend", "198.18.2.2:8080"}, {"id", "3"}};
  EXPECT_EQ(prom::value_of(*p, "bpfgate_lb_backend_packets_total", l), 10);
  EXPECT_EQ(prom::value_of(*p, "bpfgate_lb_backend_new_flows_total", l), 4);
  EXPECT_EQ(prom::value_of(*p, "bpfgate_lb_backend_active_flows", l), 5);
  EXPECT_EQ(prom::value_of(*p, "bpfgate_lb_backend_ring_entries", l), 17);
  EXPECT_EQ(prom::value_of(*p, "bpfgate_lb_backend_up", l), 1);
  EXPECT_EQ(prom::value_of(*p, "bpfgate_lb_backend_draining", l), 1);
  EXPECT_EQ(prom::value_of(*p, "bpfgate_lb_backend_weight", {{"kind", "effective"}}), 250);
  EXPECT_EQ(prom::value_of(*p, "bpfgate_lb_backend_weight", {{"kind", "configured"}}), 300);
  EXPECT_EQ(prom::value_of(*p, "bpfgate_lb_backend_connect_seconds_count", l), 2);
  EXPECT_DOUBLE_EQ(prom::value_of(*p, "bpfgate_lb_backend_connect_seconds_sum", l), 0.003);
  EXPECT_EQ(p->types["bpfgate_lb_backend_connect_seconds"], "histogram");
  EXPECT_EQ(prom::value_of(*p, "bpfgate_lb_packets_total", {{"reason", "forwarded"}}), 10);
  EXPECT_EQ(prom::value_of(*p, "bpfgate_lb_connections"), 7);
  for (const auto &[family, type] : p->types) {
    if (type == "counter") {
      EXPECT_TRUE(family.ends_with("_total")) << family;
    }
  }
}

TEST(MetricsLb, DeclaredWithoutSamplesWhenOff) {
  Writer w;
  write_metrics(w, static_cast<const LbView *>(nullptr));
  auto p = prom::parse(w.text());
  ASSERT_TRUE(p) << p.error().what();
  EXPECT_TRUE(p->samples.empty());
  EXPECT_GE(p->types.size(), 15u);
}

}  // namespace
}  // namespace bpfgate::agent::lb
