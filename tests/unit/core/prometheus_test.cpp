// The Prometheus text format: what the writer lays out, and that the parser
// the integration tests use reads it back (escapes, histograms, +Inf).
#include "core/prometheus.hpp"

#include <gtest/gtest.h>

#include <cmath>

namespace bpfgate::core::prom {
namespace {

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

TEST(Prometheus, ParserRejectsWhatIsNotTheFormat) {
  for (const char *bad :
       {"name{a=\"b\" 1\n", "name{a=b} 1\n", "name\n", "name{a=\"b\"} x\n", "{a=\"b\"} 1\n"}) {
    auto p = parse(bad);
    EXPECT_FALSE(p.ok()) << bad;
    if (!p.ok())
      EXPECT_NE(p.error().message().find("line 1"), std::string::npos) << p.error().message();
  }
  auto ok = parse("# a comment\n\nname 1 1700000000000\nname2{} +Inf\n");
  ASSERT_TRUE(ok.ok()) << ok.error().what();
  EXPECT_EQ(value_of(*ok, "name"), 1);
  EXPECT_TRUE(std::isinf(value_of(*ok, "name2")));
}

}  // namespace
}  // namespace bpfgate::core::prom
