// The XDP filter's datapath events in /metrics: one counter family per event,
// named bpfgate_<event>_total with the names `status -j` uses, HELP and TYPE
// before the samples, one sample per interface. The verdict counters: only the
// pairs the pipeline can produce.
#include <gtest/gtest.h>

#include <cmath>
#include <iterator>

#include "features/xdp/metrics.hpp"
#include "support/prometheus_parse.hpp"

namespace bpfgate::agent {
namespace {

namespace prom = test::prom;
using core::prom::Writer;

TEST(MetricsEvents, OneCounterFamilyPerEventWithASamplePerInterface) {
  std::vector<FilterStatus> filters(2);
  filters[0].iface = "eth0";
  filters[1].iface = "eth1";
  filters[0].stats[BG_STAT_PROVEN] = 5;
  filters[1].stats[BG_STAT_AUTOBLOCK_CAPPED] = 7;
  filters[1].stats[BG_STAT_SYN_PASSED] = 11;
  Writer w;
  write_datapath_events(w, filters);
  auto p = prom::parse(w.text());
  ASSERT_TRUE(p.ok()) << p.error().what();
  EXPECT_EQ(p->types.size(), static_cast<size_t>(BG_STAT_NR));
  for (const auto &[family, type] : p->types) {
    EXPECT_EQ(type, "counter") << family;
    EXPECT_TRUE(family.ends_with("_total")) << family;
  }
  EXPECT_EQ(prom::value_of(*p, "bpfgate_sources_proven_total", {{"interface", "eth0"}}), 5);
  EXPECT_EQ(prom::value_of(*p, "bpfgate_sources_proven_total", {{"interface", "eth1"}}), 0);
  EXPECT_EQ(prom::value_of(*p, "bpfgate_autoblocks_capped_total", {{"interface", "eth1"}}), 7);
  EXPECT_EQ(prom::value_of(*p, "bpfgate_syns_passed_stateless_total", {{"interface", "eth1"}}), 11);
  for (const char *f : {"bpfgate_cas_contended_total", "bpfgate_autoblocks_failed_total",
                        "bpfgate_autoblocks_spared_total", "bpfgate_proofs_failed_total",
                        "bpfgate_proofs_refused_total"})
    EXPECT_EQ(prom::sum_of(*p, f), 0) << f;
  EXPECT_NE(w.text().find("# HELP bpfgate_sources_proven_total Sources that proved themselves "
                          "with a valid SYN cookie\n"
                          "# TYPE bpfgate_sources_proven_total counter\n"
                          "bpfgate_sources_proven_total{interface=\"eth0\"} 5\n"),
            std::string::npos)
      << w.text();
}

TEST(MetricsOperations, BypassGaugeAndWouldDropByReason) {
  std::vector<FilterStatus> filters(2);
  filters[0].iface = "eth0";
  filters[1].iface = "eth1";
  filters[0].bypass = true;
  filters[0].ops[BG_OP_BYPASSED].packets = 9;
  filters[1].ops[BG_OP_WOULD_DROP + static_cast<unsigned>(BG_REASON_DENY)].packets = 3;
  filters[1].ops[BG_OP_WOULD_DROP + static_cast<unsigned>(BG_REASON_RATE_LIMIT)].packets = 4;
  filters[1].ops[BG_OP_WOULD_AUTOBLOCK].packets = 2;
  Writer w;
  write_operations(w, filters);
  auto p = prom::parse(w.text());
  ASSERT_TRUE(p.ok()) << p.error().what();
  EXPECT_EQ(p->types.at("bpfgate_interface_bypass"), "gauge");
  EXPECT_EQ(p->types.at("bpfgate_would_drop_total"), "counter");
  EXPECT_EQ(prom::value_of(*p, "bpfgate_interface_bypass", {{"interface", "eth0"}}), 1);
  EXPECT_EQ(prom::value_of(*p, "bpfgate_interface_bypass", {{"interface", "eth1"}}), 0);
  EXPECT_EQ(prom::value_of(*p, "bpfgate_bypassed_total", {{"interface", "eth0"}}), 9);
  EXPECT_EQ(
      prom::value_of(*p, "bpfgate_would_drop_total", {{"interface", "eth1"}, {"reason", "deny"}}),
      3);
  EXPECT_EQ(prom::value_of(*p, "bpfgate_would_drop_total",
                           {{"interface", "eth1"}, {"reason", "rate_limit"}}),
            4);
  EXPECT_EQ(prom::value_of(*p, "bpfgate_would_autoblocks_total", {{"interface", "eth1"}}), 2);
  // Only reasons the filter drops for: no would-drop "ok".
  EXPECT_EQ(w.text().find("reason=\"ok\""), std::string::npos);
}

TEST(MetricsEvents, FamiliesAreDeclaredWithoutFilters) {
  Writer w;
  write_datapath_events(w, {});
  auto p = prom::parse(w.text());
  ASSERT_TRUE(p.ok()) << p.error().what();
  EXPECT_EQ(p->types.size(), static_cast<size_t>(BG_STAT_NR));
  EXPECT_TRUE(p->samples.empty());
}

TEST(MetricsEvents, NamesAreStable) {
  const char *want[] = {"cas_contended",     "autoblocks_failed",     "autoblocks_capped",
                        "autoblocks_spared", "sources_proven",        "proofs_failed",
                        "proofs_refused",    "syns_passed_stateless", "sources_proven_connected",
                        "syns_answered",     "syns_passed_refresh",   "events_lost",
                        "passed_no_state"};
  static_assert(sizeof(want) / sizeof(want[0]) == BG_STAT_NR);
  for (uint32_t e = 0; e < BG_STAT_NR; e++)
    EXPECT_STREQ(stat_name(static_cast<bg_stat>(e)).name, want[e]) << e;
}

TEST(MetricsVerdicts, OnlyThePairsThePipelineCanProduce) {
  std::vector<FilterStatus> filters(2);
  filters[0].iface = "eth0";
  filters[1].iface = "eth1";
  filters[0].counters[bg_counter_key(BG_VERDICT_DROP, BG_REASON_DENY)] = {7, 700};
  filters[1].counters[bg_counter_key(BG_VERDICT_PASS, BG_REASON_OK)] = {3, 180};
  Writer w;
  write_verdicts(w, filters);
  auto p = prom::parse(w.text());
  ASSERT_TRUE(p.ok()) << p.error().what();
  EXPECT_EQ(p->types.at("bpfgate_packets_total"), "counter");
  EXPECT_EQ(p->types.at("bpfgate_bytes_total"), "counter");
  const size_t pairs = std::size(kVerdictReasons);
  EXPECT_LT(pairs, static_cast<size_t>(BG_COUNTER_NR));
  EXPECT_EQ(p->samples.size(), 2 * 2 * pairs) << "two families, two interfaces";
  for (const auto &s : p->samples) {
    bool listed = false;
    for (const auto &[v, r] : kVerdictReasons)
      listed |= s.labels.at("verdict") == to_string(v) && s.labels.at("reason") == to_string(r);
    EXPECT_TRUE(listed) << s.name << " " << s.labels.at("verdict") << "/" << s.labels.at("reason");
  }
  EXPECT_TRUE(std::isnan(
      prom::value_of(*p, "bpfgate_packets_total", {{"verdict", "pass"}, {"reason", "deny"}})));
  EXPECT_EQ(prom::value_of(*p, "bpfgate_packets_total",
                           {{"interface", "eth0"}, {"verdict", "drop"}, {"reason", "deny"}}),
            7);
  EXPECT_EQ(prom::value_of(*p, "bpfgate_bytes_total",
                           {{"interface", "eth0"}, {"verdict", "drop"}, {"reason", "deny"}}),
            700);
  EXPECT_EQ(prom::value_of(*p, "bpfgate_bytes_total",
                           {{"interface", "eth1"}, {"verdict", "pass"}, {"reason", "ok"}}),
            180);
  EXPECT_EQ(prom::sum_of(*p, "bpfgate_packets_total"), 10);
}

TEST(MetricsVerdicts, ThePairsAreDistinct) {
  for (size_t i = 0; i < std::size(kVerdictReasons); i++)
    for (size_t j = i + 1; j < std::size(kVerdictReasons); j++)
      EXPECT_FALSE(kVerdictReasons[i].verdict == kVerdictReasons[j].verdict &&
                   kVerdictReasons[i].reason == kVerdictReasons[j].reason)
          << i << " and " << j;
}

}  // namespace
}  // namespace bpfgate::agent
