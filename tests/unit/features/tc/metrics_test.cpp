// The tc classes in /metrics: one sample per class and counter, HELP and TYPE
// even without tc.
#include <gtest/gtest.h>

#include <iterator>

#include "features/tc/metrics.hpp"
#include "support/prometheus_parse.hpp"

namespace bpfgate::agent {
namespace {

namespace prom = test::prom;
using core::prom::Writer;

TEST(MetricsTc, OneSamplePerClassAndCounter) {
  TcClassStats api, bulk, none;
  api.name = "api";
  api.def.dirs = BG_TC_DIR_EGRESS;
  api.packets = 10, api.bytes = 1000, api.marked = 2, api.mirrored = 5;
  bulk.name = "bulk";
  bulk.def.dirs = BG_TC_DIR_INGRESS | BG_TC_DIR_EGRESS;
  bulk.packets = 4, bulk.bytes = 400, bulk.drops = 3;
  none.unclassified = true;
  none.packets = 1, none.bytes = 60;
  Writer w;
  write_tc_classes(w, {{"eth0", {api, bulk, none}}});
  auto p = prom::parse(w.text());
  ASSERT_TRUE(p.ok()) << p.error().what();
  const char *families[] = {"bpfgate_tc_class_packets_total", "bpfgate_tc_class_bytes_total",
                            "bpfgate_tc_class_drops_total", "bpfgate_tc_class_marked_total",
                            "bpfgate_tc_class_mirrored_total"};
  EXPECT_EQ(p->types.size(), std::size(families));
  for (const char *f : families)
    EXPECT_EQ(p->types[f], "counter") << f;
  EXPECT_EQ(p->samples.size(), 3 * std::size(families));
  prom::Labels a = {{"interface", "eth0"}, {"class", "api"}, {"direction", "egress"}};
  EXPECT_EQ(prom::value_of(*p, "bpfgate_tc_class_packets_total", a), 10);
  EXPECT_EQ(prom::value_of(*p, "bpfgate_tc_class_bytes_total", a), 1000);
  EXPECT_EQ(prom::value_of(*p, "bpfgate_tc_class_marked_total", a), 2);
  EXPECT_EQ(prom::value_of(*p, "bpfgate_tc_class_mirrored_total", a), 5);
  EXPECT_EQ(prom::value_of(*p, "bpfgate_tc_class_drops_total",
                           {{"class", "bulk"}, {"direction", "both"}}),
            3);
  EXPECT_EQ(prom::value_of(*p, "bpfgate_tc_class_packets_total",
                           {{"class", "(unclassified)"}, {"direction", "both"}}),
            1);
}

TEST(MetricsTc, FamiliesAreDeclaredWithoutTc) {
  Writer w;
  write_tc_classes(w, {});
  auto p = prom::parse(w.text());
  ASSERT_TRUE(p.ok()) << p.error().what();
  EXPECT_EQ(p->types.size(), 5u);
  EXPECT_TRUE(p->samples.empty());
}

}  // namespace
}  // namespace bpfgate::agent
