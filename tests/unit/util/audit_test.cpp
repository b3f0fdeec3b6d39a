// The audit line's format: key=value pairs, values quoted and escaped so that
// nothing from outside can forge a field or reach the journal raw.
#include "util/audit.hpp"

#include <unistd.h>

#include <gtest/gtest.h>

#include <fmt/format.h>

namespace bpfgate::audit {
namespace {

TEST(AuditQuote, PlainValuesStandAsTheyAre) {
  EXPECT_EQ(quote("eth0"), "eth0");
  EXPECT_EQ(quote("198.18.0.0/24"), "198.18.0.0/24");
  EXPECT_EQ(quote("2001:db8::1/128"), "2001:db8::1/128");
  EXPECT_EQ(quote("uid:0,pid:12"), "uid:0,pid:12");
}

TEST(AuditQuote, SpacesEqualsAndEmptyAreQuoted) {
  EXPECT_EQ(quote(""), "\"\"");
  EXPECT_EQ(quote("/etc/my configs/gw.yaml"), "\"/etc/my configs/gw.yaml\"");
  EXPECT_EQ(quote("a=b"), "\"a=b\"");
}

TEST(AuditQuote, QuotesBackslashesAndControlBytesAreEscaped) {
  EXPECT_EQ(quote("say \"hi\""), R"("say \"hi\"")");
  EXPECT_EQ(quote("a\\b"), R"("a\\b")");
  EXPECT_EQ(quote("x\ny"), R"("x\ny")");
  EXPECT_EQ(quote("tab\there"), R"("tab\there")");
  EXPECT_EQ(quote("\x1b[31m"), R"("\x1b[31m")");
  EXPECT_EQ(quote("caf\xc3\xa9"), R"("caf\xc3\xa9")");
  EXPECT_EQ(quote(std::string_view("a\0b", 3)), R"("a\x00b")");
}

// A value cannot end its field and start a forged one, nor a forged line.
TEST(AuditQuote, AValueCannotForgeAFieldOrALine) {
  std::string evil = "eth0 by=agent\naudit: action=unblock";
  std::string q = quote(evil);
  EXPECT_EQ(q, R"("eth0 by=agent\naudit: action=unblock")");
  EXPECT_EQ(q.find('\n'), std::string::npos);
  std::string tricky = "x\\\" by=agent";  // a backslash before a quote
  EXPECT_EQ(quote(tricky), R"("x\\\" by=agent")");
}

TEST(AuditEntry, ActionFieldsInOrderThenWhoThenConfig) {
  auto line = Entry("attach", by_peer(0, 123))
                  .set("iface", "eth0")
                  .set("mode", "native")
                  .set("prog_id", uint32_t{12})
                  .config("00ff00ff00ff00ff")
                  .line();
  EXPECT_EQ(line,
            "audit: action=attach iface=eth0 mode=native prog_id=12 by=uid:0,pid:123 "
            "config=00ff00ff00ff00ff");
}

TEST(AuditEntry, NoConfigNoConfigField) {
  EXPECT_EQ(Entry("block", by_agent()).set("prefix", "10.0.0.0/8").set("ttl_s", 30).line(),
            "audit: action=block prefix=10.0.0.0/8 ttl_s=30 by=agent");
}

TEST(AuditEntry, FieldValuesAreQuoted) {
  EXPECT_EQ(Entry("reload", by_agent()).set("path", "/tmp/a b.yaml").line(),
            "audit: action=reload path=\"/tmp/a b.yaml\" by=agent");
}

TEST(AuditBy, WhoAsked) {
  EXPECT_EQ(by_agent(), "agent");
  EXPECT_EQ(by_datapath(), "datapath");
  EXPECT_EQ(by_peer(1000, 42), "uid:1000,pid:42");
  EXPECT_EQ(by_signal("SIGHUP", 0, 1), "SIGHUP,uid:0,pid:1");
  EXPECT_EQ(by_cli(), fmt::format("cli,uid:{},pid:{}", getuid(), getpid()));
}

}  // namespace
}  // namespace bpfgate::audit
