// The Prometheus text format: what the writer lays out, and that the parser
// the integration tests use (tests/support) reads it back (escapes,
// histograms, +Inf).
#include "core/prometheus.hpp"

#include <gtest/gtest.h>

#include <cmath>

#include "support/prometheus_parse.hpp"

namespace bpfgate::core::prom {
namespace {

using test::prom::parse;
using test::prom::sum_of;
using test::prom::value_of;

TEST(Prometheus, FamiliesSamplesAndEscapes) {
  Writer w;
  w.family("bpfgate_packets_total", "counter", "Frames seen");
  w.sample("bpfgate_packets_total", {{"interface", "eth0"}, {"reason", "ok"}}, 42);
  w.sample("bpfgate_packets_total", {{"interface", "we\"ird\\na\nme"}}, 1.5);
  EXPECT_EQ(w.text(),
            "# HELP bpfgate_packets_total Frames seen\n"
            "# TYPE bpfgate_packets_total counter\n"
            "bpfgate_packets_total{interface=\"eth0\",reason=\"ok\"} 42\n"
            "bpfgate_packets_total{interface=\"we\\\"ird\\\\na\\nme\"} 1.5\n");
  auto p = parse(w.text());
  ASSERT_TRUE(p.ok()) << p.error().what();
  EXPECT_EQ(p->types.at("bpfgate_packets_total"), "counter");
  EXPECT_EQ(value_of(*p, "bpfgate_packets_total", {{"reason", "ok"}}), 42);
  EXPECT_EQ(value_of(*p, "bpfgate_packets_total", {{"interface", "we\"ird\\na\nme"}}), 1.5);
  EXPECT_EQ(sum_of(*p, "bpfgate_packets_total"), 43.5);
  EXPECT_TRUE(std::isnan(value_of(*p, "bpfgate_nothing")));
}

TEST(Prometheus, HistogramIsCumulativeWithInf) {
  Writer w;
  w.family("x_seconds", "histogram", "h");
  w.histogram("x_seconds", {{"service", "web"}}, {0.001, 0.002}, {1, 2, 3}, 0.25);
  auto p = parse(w.text());
  ASSERT_TRUE(p.ok()) << p.error().what();
  EXPECT_EQ(value_of(*p, "x_seconds_bucket", {{"le", "0.001"}}), 1);
  EXPECT_EQ(value_of(*p, "x_seconds_bucket", {{"le", "0.002"}}), 3);
  EXPECT_EQ(value_of(*p, "x_seconds_bucket", {{"le", "+Inf"}}), 6);
  EXPECT_EQ(value_of(*p, "x_seconds_count", {{"service", "web"}}), 6);
  EXPECT_EQ(value_of(*p, "x_seconds_sum"), 0.25);
}

}  // namespace
}  // namespace bpfgate::core::prom
