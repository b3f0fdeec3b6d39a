// libFuzzer target: the control socket's protocol (agent/control_request.hpp)
// as the agent reads a client: bytes arrive in reads of at most 256 (the
// first input byte picks a smaller size, as a slow client sends), the agent
// stops reading once the request is complete, takes the request line and
// answers it. What a reply must be: one line, bounded, whatever was sent.
#include <cstdint>
#include <string>
#include <string_view>

#include "agent/control_request.hpp"
#include "support/fuzz_check.hpp"

using bpfgate::fuzz::check;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  using namespace bpfgate::agent;
  if (size == 0)
    return 0;
  size_t chunk = 1 + data[0] % kMaxControlLine;
  std::string_view sent(reinterpret_cast<const char *>(data) + 1, size - 1);
  std::string in;
  for (size_t at = 0; at < sent.size() && !control_request_complete(in); at += chunk)
    in.append(sent.substr(at, chunk));
  std::string line = control_request_line(in);
  check(line.size() <= kMaxControlLine, "a request line is bounded");
  check(line.find('\n') == std::string::npos, "a request line is one line");
  check(line.empty() || line.back() != '\r', "a request line has no CR at its end");
  switch (control_verb(line)) {
    case ControlVerb::reload:
    case ControlVerb::ping:
      check(line == "reload" || line == "ping", "a verb is the whole line");
      break;
    case ControlVerb::events: {
      auto req = parse_events_request(line);
      check(req.iface.find(' ') == std::string::npos, "an interface is one word");
      check(req.iface.size() <= line.size(), "an interface comes from the line");
      break;
    }
    case ControlVerb::lb:
      check(line.rfind("lb ", 0) == 0, "a balancer request begins with `lb `");
      break;
    case ControlVerb::unknown: {
      std::string reply = unknown_control_reply(line);
      check(reply.size() <= 512, "a reply is bounded");
      check(reply.find('\n') == reply.size() - 1, "a reply is one line");
      break;
    }
  }
  return 0;
}
