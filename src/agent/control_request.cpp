#include "agent/control_request.hpp"

#include <algorithm>
#include <vector>

#include "util/text.hpp"

namespace bpfgate::agent {

bool control_request_complete(std::string_view in) {
  return in.find('\n') != std::string_view::npos || in.size() >= kMaxControlLine;
}

std::string control_request_line(std::string_view in) {
  std::string cmd(in.substr(0, std::min(in.find('\n'), kMaxControlLine)));
  while (!cmd.empty() && (cmd.back() == '\r' || cmd.back() == '\n'))
    cmd.pop_back();
  return cmd;
}

ControlVerb control_verb(std::string_view line) {
  if (line == "reload")
    return ControlVerb::reload;
  if (line.rfind("events", 0) == 0)
    return ControlVerb::events;
  if (line == "ping")
    return ControlVerb::ping;
  if (line.rfind("lb ", 0) == 0)
    return ControlVerb::lb;
  return ControlVerb::unknown;
}

EventsRequest parse_events_request(std::string_view line) {
  std::vector<std::string_view> words;
  for (size_t i = 0; i < line.size();) {
    size_t j = line.find(' ', i);
    if (j == std::string_view::npos)
      j = line.size();
    if (j > i)
      words.push_back(line.substr(i, j - i));
    i = j + 1;
  }
  EventsRequest r;
  r.json = !(words.size() > 1 && words[1] == "text");
  if (words.size() > 2)
    r.iface = std::string(words[2]);
  return r;
}

std::string unknown_control_reply(std::string_view line) {
  return "error unknown command '" + util::excerpt(line) + "' (known: reload, ping, events, lb)\n";
}

}  // namespace bpfgate::agent
