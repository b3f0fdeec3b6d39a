// Socket acceleration in /metrics: its state, the sk_msg and sock_ops
// counters, and among them the fallbacks to the normal TCP path (by reason)
// and the sockets the sockhash refused, each a counter with HELP and TYPE.
#include "features/accel/metrics.hpp"

#include <gtest/gtest.h>

#include <cmath>

#include "support/prometheus_parse.hpp"

namespace bpfgate::agent::accel {
namespace {

namespace prom = test::prom;
using core::prom::Writer;

AccelStatus enabled() {
  AccelStatus s;
  s.state = State::kEnabled;
  s.max_sockets = 4096;
  s.sockets = 6;
  s.congested = 1;
  s.counters[BG_ACCEL_SOCK_ADDED] = {8, 0};
  s.counters[BG_ACCEL_SOCK_ADD_FAILED] = {3, 0};
  s.counters[BG_ACCEL_SOCK_SKIPPED] = {2, 0};
  s.counters[BG_ACCEL_MSG_REDIRECTED] = {100, 1 << 20};
  s.counters[BG_ACCEL_MSG_NO_PEER] = {4, 400};
  s.counters[BG_ACCEL_MSG_FALLBACK] = {5, 500};
  s.counters[BG_ACCEL_MSG_DRAINING] = {6, 600};
  s.counters[BG_ACCEL_MSG_NO_STATE] = {7, 700};
  s.counters[BG_ACCEL_MSG_BACKLOG] = {9, 900};
  return s;
}

TEST(MetricsAccel, FallbacksByReasonAndRefusedSockets) {
  AccelStatus s = enabled();
  Writer w;
  write_metrics(w, &s);
  auto p = prom::parse(w.text());
  ASSERT_TRUE(p.ok()) << p.error().what();
  EXPECT_EQ(p->types["bpfgate_accel_fallbacks_total"], "counter");
  EXPECT_EQ(p->types["bpfgate_accel_fallback_bytes_total"], "counter");
  EXPECT_EQ(p->types["bpfgate_accel_sockets_refused_total"], "counter");
  EXPECT_EQ(p->types["bpfgate_accel_max_sockets"], "gauge");
  const std::pair<const char *, double> kReasons[] = {
      {"no_peer", 4}, {"earlier", 5}, {"draining", 6}, {"no_state", 7}, {"backlog", 9}};
  for (const auto &[reason, n] : kReasons) {
    EXPECT_EQ(prom::value_of(*p, "bpfgate_accel_fallbacks_total", {{"reason", reason}}), n)
        << reason;
    EXPECT_EQ(prom::value_of(*p, "bpfgate_accel_fallback_bytes_total", {{"reason", reason}}),
              n * 100)
        << reason;
  }
  EXPECT_EQ(prom::sum_of(*p, "bpfgate_accel_fallbacks_total"),
            static_cast<double>(s.fallback_messages()));
  EXPECT_EQ(prom::sum_of(*p, "bpfgate_accel_fallback_bytes_total"),
            static_cast<double>(s.fallback_bytes()));
  EXPECT_EQ(prom::value_of(*p, "bpfgate_accel_sockets_refused_total"), 3);
  EXPECT_EQ(prom::value_of(*p, "bpfgate_accel_max_sockets"), 4096);
  EXPECT_NE(w.text().find("# HELP bpfgate_accel_sockets_refused_total Sockets acceleration could "
                          "not add: the sockhash was full (max_sockets)"),
            std::string::npos)
      << w.text();
  // What was there before: by event, every counter.
  EXPECT_EQ(prom::value_of(*p, "bpfgate_accel_enabled"), 1);
  EXPECT_EQ(prom::value_of(*p, "bpfgate_accel_sockets"), 6);
  EXPECT_EQ(prom::value_of(*p, "bpfgate_accel_congested_sockets"), 1);
  EXPECT_EQ(prom::value_of(*p, "bpfgate_accel_messages_total", {{"event", "sockets_add_failed"}}),
            3);
  EXPECT_EQ(prom::value_of(*p, "bpfgate_accel_bytes_total", {{"event", "redirected"}}), 1 << 20);
  for (const auto &[family, type] : p->types) {
    if (type == "counter") {
      EXPECT_TRUE(family.ends_with("_total")) << family;
    }
  }
}

TEST(MetricsAccel, DrainingIsAHalf) {
  AccelStatus s = enabled();
  s.state = State::kDraining;
  Writer w;
  write_metrics(w, &s);
  auto p = prom::parse(w.text());
  ASSERT_TRUE(p.ok()) << p.error().what();
  EXPECT_EQ(prom::value_of(*p, "bpfgate_accel_enabled"), 0.5);
  EXPECT_EQ(prom::value_of(*p, "bpfgate_accel_fallbacks_total", {{"reason", "draining"}}), 6);
}

TEST(MetricsAccel, OffDeclaresTheFamiliesWithoutSamples) {
  for (bool null : {true, false}) {
    AccelStatus s = enabled();
    s.state = State::kOff;
    Writer w;
    write_metrics(w, null ? nullptr : &s);
    auto p = prom::parse(w.text());
    ASSERT_TRUE(p.ok()) << p.error().what();
    EXPECT_EQ(p->types.size(), 9u);
    ASSERT_EQ(p->samples.size(), 1u) << w.text();
    EXPECT_EQ(p->samples[0].name, "bpfgate_accel_enabled");
    EXPECT_EQ(p->samples[0].value, 0);
    EXPECT_TRUE(std::isnan(prom::value_of(*p, "bpfgate_accel_sockets_refused_total")));
  }
}

}  // namespace
}  // namespace bpfgate::agent::accel
