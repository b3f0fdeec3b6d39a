// The control socket's protocol without the socket (agent/control_request.hpp):
// what the agent takes as the request and what it makes of it.
#include <gtest/gtest.h>

#include <string>

#include "agent/control_request.hpp"

namespace bpfgate::agent {
namespace {

TEST(ControlRequest, CompleteAtANewlineOrTheMostALineMayBe) {
  EXPECT_FALSE(control_request_complete(""));
  EXPECT_FALSE(control_request_complete("relo"));
  EXPECT_TRUE(control_request_complete("reload\n"));
  EXPECT_FALSE(control_request_complete(std::string(kMaxControlLine - 1, 'x')));
  EXPECT_TRUE(control_request_complete(std::string(kMaxControlLine, 'x')));
}

TEST(ControlRequest, TheLineIsUpToItsNewlineCutAndTrimmed) {
  EXPECT_EQ(control_request_line("reload\n"), "reload");
  EXPECT_EQ(control_request_line("ping\r\n"), "ping");
  EXPECT_EQ(control_request_line("ping\r\r"), "ping");  // no newline: CRs at the end dropped
  EXPECT_EQ(control_request_line("ping\nreload\n"), "ping");
  EXPECT_EQ(control_request_line("reload"), "reload");  // the client closed after it
  EXPECT_EQ(control_request_line(std::string(300, 'x')), std::string(kMaxControlLine, 'x'));
}

TEST(ControlRequest, Verbs) {
  EXPECT_EQ(control_verb("reload"), ControlVerb::reload);
  EXPECT_EQ(control_verb("ping"), ControlVerb::ping);
  EXPECT_EQ(control_verb("events"), ControlVerb::events);
  EXPECT_EQ(control_verb("events text eth0"), ControlVerb::events);
  EXPECT_EQ(control_verb("eventsx"), ControlVerb::events);  // as the agent always took it
  EXPECT_EQ(control_verb("reload now"), ControlVerb::unknown);
  EXPECT_EQ(control_verb(" ping"), ControlVerb::unknown);
  EXPECT_EQ(control_verb(""), ControlVerb::unknown);
  EXPECT_EQ(control_verb("lb drain web 198.18.2.2:80"), ControlVerb::lb);
  EXPECT_EQ(control_verb("lb"), ControlVerb::unknown);
  EXPECT_EQ(control_verb("lbx add"), ControlVerb::unknown);
}

TEST(ControlRequest, EventsWords) {
  auto r = parse_events_request("events");
  EXPECT_TRUE(r.json);
  EXPECT_EQ(r.iface, "");
  r = parse_events_request("events text eth0");
  EXPECT_FALSE(r.json);
  EXPECT_EQ(r.iface, "eth0");
  r = parse_events_request("events  json   eth1 extra");
  EXPECT_TRUE(r.json);
  EXPECT_EQ(r.iface, "eth1");
}

TEST(ControlRequest, AnUnknownRequestIsQuotedBackOnOneLine) {
  EXPECT_EQ(unknown_control_reply("hello"),
            "error unknown command 'hello' (known: reload, ping, events, lb)\n");
  std::string reply = unknown_control_reply("a\nb\x1b" + std::string(200, 'x'));
  EXPECT_EQ(reply.find('\n'), reply.size() - 1);
  EXPECT_NE(reply.find("a\\nb\\x1b"), std::string::npos);
  EXPECT_NE(reply.find("..."), std::string::npos);
}

}  // namespace
}  // namespace bpfgate::agent
