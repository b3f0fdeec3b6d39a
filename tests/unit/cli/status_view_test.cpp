// What `bpfgate status` shows of a filter: the datapath events by their
// stable names (every one, zero or not) and the known table against its
// bound, in the JSON and in the text.
#include "cli/status_view.hpp"

#include <gtest/gtest.h>

namespace bpfgate::cli {
namespace {

agent::FilterStatus sample_status() {
  agent::FilterStatus s;
  s.iface = "veth0";
  s.ifindex = 7;
  s.mode = "native";
  s.limits = {1000, 2000};
  s.max_sources = 65536;
  s.unproven = {20000, 20000};
  s.unproven_enforced = true;
  s.counters[bg_counter_key(BG_VERDICT_PASS, BG_REASON_OK)] = {10, 640};
  s.counters[bg_counter_key(BG_VERDICT_DROP, BG_REASON_RATE_LIMIT)] = {4, 256};
  for (uint32_t e = 0; e < BG_STAT_NR; e++)
    s.stats[e] = 100 + e;
  s.known_sources = 3;
  s.max_known = 65536;
  return s;
}

TEST(StatusView, JsonHasEveryEventByNameAndTheKnownTable) {
  auto j = status_json(sample_status());
  EXPECT_EQ(j["iface"], "veth0");
  EXPECT_EQ(j["packets"]["passed"], 10);
  EXPECT_EQ(j["packets"]["dropped"], 4);
  EXPECT_EQ(j["counters"]["drop"]["rate_limit"]["bytes"], 256);
  EXPECT_EQ(j["known_sources"]["entries"], 3);
  EXPECT_EQ(j["known_sources"]["max_entries"], 65536);
  const auto &e = j["events"];
  ASSERT_EQ(e.size(), static_cast<size_t>(BG_STAT_NR)) << e.dump();
  EXPECT_EQ(e["cas_contended"], 100 + BG_STAT_CAS_CONTENDED);
  EXPECT_EQ(e["autoblocks_failed"], 100 + BG_STAT_AUTOBLOCK_FAILED);
  EXPECT_EQ(e["autoblocks_capped"], 100 + BG_STAT_AUTOBLOCK_CAPPED);
  EXPECT_EQ(e["autoblocks_spared"], 100 + BG_STAT_AUTOBLOCK_SPARED);
  EXPECT_EQ(e["sources_proven"], 100 + BG_STAT_PROVEN);
  EXPECT_EQ(e["proofs_failed"], 100 + BG_STAT_PROOF_FAILED);
  EXPECT_EQ(e["proofs_refused"], 100 + BG_STAT_KNOWN_FULL);
  EXPECT_EQ(e["syns_passed_stateless"], 100 + BG_STAT_SYN_PASSED);
  EXPECT_EQ(e["sources_proven_connected"], 100 + BG_STAT_PROVEN_CONNECTED);
  EXPECT_EQ(e["syns_answered"], 100 + BG_STAT_SYN_ANSWERED);
  EXPECT_EQ(e["syns_passed_refresh"], 100 + BG_STAT_SYN_REFRESH);
  EXPECT_EQ(j["unproven"]["rate_pps"], 20000);
  EXPECT_EQ(j["unproven"]["enforced"], true);
}

TEST(StatusView, TextSaysWhenTheUnprovenShareIsNotEnforced) {
  auto s = sample_status();
  s.unproven_enforced = false;
  EXPECT_NE(status_text(s).find("unproven 20000/s (not enforced: no proofs)"), std::string::npos)
      << status_text(s);
  s.unproven = {};
  EXPECT_NE(status_text(s).find("unproven unbounded"), std::string::npos) << status_text(s);
}

TEST(StatusView, SaysWhetherHeldSynsAreAnsweredAndWhyNot) {
  auto s = sample_status();
  EXPECT_NE(status_text(s).find("syn-proxy off  "), std::string::npos) << status_text(s);
  s.syn_proxy_asked = true;
  EXPECT_NE(status_text(s).find("syn-proxy off (needs prove and tcp_syncookies=2)"),
            std::string::npos)
      << status_text(s);
  s.syn_proxy = true;
  EXPECT_NE(status_text(s).find("syn-proxy on  "), std::string::npos) << status_text(s);
  auto j = status_json(s);
  EXPECT_EQ(j["syn_proxy"]["asked"], true);
  EXPECT_EQ(j["syn_proxy"]["enforced"], true);
}

TEST(StatusView, JsonShowsZeroEvents) {
  agent::FilterStatus s;
  auto j = status_json(s);
  ASSERT_EQ(j["events"].size(), static_cast<size_t>(BG_STAT_NR));
  EXPECT_EQ(j["events"]["sources_proven"], 0);
  EXPECT_EQ(j["known_sources"]["entries"], 0);
}

TEST(StatusView, TextShowsTheKnownTableAndEveryEvent) {
  EXPECT_EQ(status_text(sample_status()),
            "veth0: mode native  prog 0  link 0  rate 1000 pps  burst 2000  max-sources 65536  "
            "new-sources unbounded  unproven 20000/s  syn-proxy off  unparsed pass\n"
            "    passed 10  dropped 4  known sources 3/65536\n"
            "    events: cas_contended 100  autoblocks_failed 101  autoblocks_capped 102  "
            "autoblocks_spared 103  sources_proven 104  proofs_failed 105  proofs_refused 106  "
            "syns_passed_stateless 107  sources_proven_connected 108  syns_answered 109  "
            "syns_passed_refresh 110  events_lost 111  passed_no_state 112\n");
}

}  // namespace
}  // namespace bpfgate::cli
