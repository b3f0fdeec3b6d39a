// The tests' parser of the Prometheus text format (tests/support): what it
// refuses, with the line, and what it reads besides samples (comments, blank
// lines, timestamps, +Inf). What it reads of the writer's output is in
// tests/unit/core/prometheus_test.cpp.
#include "support/prometheus_parse.hpp"

#include <gtest/gtest.h>

#include <cmath>

namespace bpfgate::test::prom {
namespace {

TEST(Prometheus, ParserRejectsWhatIsNotTheFormat) {
  for (const char *bad :
       {"name{a=\"b\" 1\n", "name{a=b} 1\n", "name\n", "name{a=\"b\"} x\n", "{a=\"b\"} 1\n"}) {
    auto p = parse(bad);
    EXPECT_FALSE(p.ok()) << bad;
    if (!p.ok()) {
      EXPECT_NE(p.error().message().find("line 1"), std::string::npos) << p.error().message();
    }
  }
  auto ok = parse("# a comment\n\nname 1 1700000000000\nname2{} +Inf\n");
  ASSERT_TRUE(ok.ok()) << ok.error().what();
  EXPECT_EQ(value_of(*ok, "name"), 1);
  EXPECT_TRUE(std::isinf(value_of(*ok, "name2")));
}

}  // namespace
}  // namespace bpfgate::test::prom
