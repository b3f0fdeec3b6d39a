// The shipped Prometheus alert rules (deploy/prometheus-bpfgate-rules.yaml):
// valid YAML with the structure Prometheus reads (groups of rules, each an
// alert with an expression, a severity and what to tell the operator), and an
// alert for each thing an operator must hear of. That every bpfgate_* metric
// they use is exported is checked against a real scrape
// (tests/integration/observe_test.cpp).
#include <gtest/gtest.h>

#include <yaml-cpp/yaml.h>

#include <filesystem>
#include <regex>
#include <set>
#include <string>

#include "support/system.hpp"

namespace bpfgate::test {
namespace {

YAML::Node load_rules() {
  return YAML::LoadFile(
      (std::filesystem::path(BPFGATE_SOURCE_DIR) / "deploy" / "prometheus-bpfgate-rules.yaml")
          .string());
}

TEST(AlertRules, HaveTheStructurePrometheusReads) {
  YAML::Node doc;
  ASSERT_NO_THROW(doc = load_rules());
  ASSERT_TRUE(doc.IsMap());
  ASSERT_TRUE(doc["groups"].IsSequence());
  ASSERT_GE(doc["groups"].size(), 1u);
  static const std::set<std::string> kGroupKeys = {"name", "rules", "interval", "limit"};
  static const std::set<std::string> kRuleKeys = {"alert",  "expr",        "for",
                                                  "labels", "annotations", "keep_firing_for"};
  static const std::set<std::string> kSeverities = {"critical", "warning", "info"};
  static const std::regex kDuration(R"(([0-9]+(ms|s|m|h|d|w|y))+)");
  static const std::regex kAlertName(R"([A-Z][A-Za-z0-9]*)");
  std::set<std::string> names;
  for (const auto &g : doc["groups"]) {
    ASSERT_TRUE(g.IsMap());
    for (const auto &kv : g)
      EXPECT_TRUE(kGroupKeys.count(kv.first.as<std::string>())) << kv.first.as<std::string>();
    EXPECT_FALSE(g["name"].as<std::string>("").empty());
    ASSERT_TRUE(g["rules"].IsSequence());
    for (const auto &r : g["rules"]) {
      ASSERT_TRUE(r.IsMap());
      std::string name = r["alert"].as<std::string>("");
      EXPECT_TRUE(std::regex_match(name, kAlertName)) << "alert: " << name;
      EXPECT_TRUE(names.insert(name).second) << "two alerts named " << name;
      for (const auto &kv : r)
        EXPECT_TRUE(kRuleKeys.count(kv.first.as<std::string>()))
            << name << ": unknown key " << kv.first.as<std::string>();
      ASSERT_TRUE(r["expr"].IsScalar()) << name;
      EXPECT_FALSE(r["expr"].as<std::string>().empty()) << name;
      if (r["for"]) {
        EXPECT_TRUE(std::regex_match(r["for"].as<std::string>(), kDuration)) << name;
      }
      EXPECT_TRUE(kSeverities.count(r["labels"]["severity"].as<std::string>(""))) << name;
      EXPECT_FALSE(r["annotations"]["summary"].as<std::string>("").empty()) << name;
      EXPECT_FALSE(r["annotations"]["description"].as<std::string>("").empty()) << name;
      // Balanced brackets: a cheap check of the expression (promtool, where installed, parses it).
      std::string e = r["expr"].as<std::string>();
      int paren = 0, brace = 0, bracket = 0;
      for (char c : e) {
        paren += (c == '(') - (c == ')');
        brace += (c == '{') - (c == '}');
        bracket += (c == '[') - (c == ']');
        EXPECT_TRUE(paren >= 0 && brace >= 0 && bracket >= 0) << name << ": " << e;
      }
      EXPECT_EQ(paren + brace + bracket, 0) << name << ": " << e;
    }
  }
}

// An alert for each: the filter detached, a refused reload, events lost, a
// table near full, sockets that socket acceleration refused or let fall back.
TEST(AlertRules, CoverWhatAnOperatorMustHearOf) {
  YAML::Node doc = load_rules();
  auto uses = [&](const std::string &metric) {
    for (const auto &g : doc["groups"])
      for (const auto &r : g["rules"])
        if (r["expr"].as<std::string>().find(metric) != std::string::npos)
          return true;
    return false;
  };
  EXPECT_TRUE(uses("bpfgate_interface_up"));
  EXPECT_TRUE(uses("bpfgate_agent_last_reload_timestamp_seconds{result=\"error\"}"));
  EXPECT_TRUE(uses("bpfgate_events_lost_total"));
  EXPECT_TRUE(uses("bpfgate_agent_events_lost_total"));
  EXPECT_TRUE(uses("bpfgate_map_entries"));
  EXPECT_TRUE(uses("bpfgate_map_max_entries"));
  EXPECT_TRUE(uses("bpfgate_accel_sockets_refused_total"));
  EXPECT_TRUE(uses("bpfgate_accel_fallbacks_total{reason=\"backlog\"}"));
}

// Where promtool is installed: the rules as Prometheus parses them, and each
// alert firing (and not) on the series of prometheus-bpfgate-rules.test.yaml.
TEST(AlertRules, PromtoolChecksAndFiresThem) {
  if (run("command -v promtool").exit_code != 0)
    GTEST_SKIP() << "promtool is not installed (scripts/deps.sh unpacks it from Debian's "
                    "prometheus package)";
  auto dir = std::filesystem::path(BPFGATE_SOURCE_DIR);
  auto check =
      run("promtool check rules " + (dir / "deploy/prometheus-bpfgate-rules.yaml").string());
  EXPECT_EQ(check.exit_code, 0) << check.out << check.err;
  auto test = run("promtool test rules " +
                  (dir / "tests/unit/deploy/prometheus-bpfgate-rules.test.yaml").string());
  EXPECT_EQ(test.exit_code, 0) << test.out << test.err;
}

}  // namespace
}  // namespace bpfgate::test
