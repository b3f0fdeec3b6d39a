// What the fleet keeps in the agent's state directory (<state_dir>/fleet, JSON,
// written whole: a temporary file, fsync, rename): the last revision it
// applied, so that a restart watches on from there rather than reading
// every key again, and the keys it published with their expiry, so that it
// deletes them when its own blocks go.
#pragma once

#include <cstdint>
#include <map>
#include <string>

#include "util/result.hpp"

namespace bpfgate::fleet {

struct FleetState {
  std::string prefix;  // the key prefix the revision is of
  int64_t revision = 0;
  std::map<std::string, int64_t> published;  // key -> expires (unix s, 0: none)
};

// An absent file is an empty state; a bad one, an error.
Result<FleetState> read_state(const std::string &path);
Status write_state(const std::string &path, const FleetState &s);

}  // namespace bpfgate::fleet
