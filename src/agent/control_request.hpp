// The control socket's protocol, apart from its I/O (agent/daemon_control.cpp):
// a client sends one line; what of its bytes make the request, and what the
// request asks. Pure functions, so that they are unit-tested and fuzzed
// (tests/fuzz/control_fuzz.cpp) without a socket.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace bpfgate::agent {

// A request line is read up to its newline or this many bytes.
inline constexpr size_t kMaxControlLine = 256;

// Whether a client that sent `in` so far is done: a newline, or the most a
// request line may be.
bool control_request_complete(std::string_view in);

// The request in what a client sent: up to the first newline, at most
// kMaxControlLine bytes, trailing CRs and newlines dropped.
std::string control_request_line(std::string_view in);

enum class ControlVerb { reload, ping, events, lb, unknown };

// `events [json|text] [IFACE]`, words split on spaces: JSON unless the
// second word is `text`; every interface unless a third word names one.
struct EventsRequest {
  bool json = true;
  std::string iface;
};

// `events` begins the line for an events request, `lb ` a load balancer's change.
ControlVerb control_verb(std::string_view line);
EventsRequest parse_events_request(std::string_view line);

// The answer to a request the agent does not know (or `events` where it
// reads no events): the request quoted back, escaped and cut.
std::string unknown_control_reply(std::string_view line);

}  // namespace bpfgate::agent
