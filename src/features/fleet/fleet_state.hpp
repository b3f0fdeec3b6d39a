// What the fleet keeps in the agent's state directory (<state_dir>/fleet, JSON,
// written whole: a temporary file, fsync, rename): the last revision it
// applied, so that a restart watches on from there rather than reading
// every key again, the keys it published with their expiry, so that it
// deletes them when its own blocks go, and those the fleet took back.
#pragma once

#include <cstdint>
#include <map>
#include <set>
#include <string>

#include "util/result.hpp"

namespace bpfgate::fleet {

struct FleetState {
  std::string prefix;  // the key prefix the revision is of
  int64_t revision = 0;
  std::map<std::string, int64_t> published;  // key -> expires (unix s, 0: none)
  // Keys of ours another deleted (an operator's `fleet unblock`) while the
  // block stays here: not published again until it goes here.
  std::set<std::string> withdrawn;
  // The fleet's never-block list (key -> value as etcd holds it), and the
  // entries of other nodes it keeps out (key -> value): a restart that
  // resumes from `revision` sees neither again, yet must guard with the one
  // and let the others in once the list no longer covers them.
  std::map<std::string, std::string> never, kept_out;
};

// An absent file is an empty state; a bad one, an error.
Result<FleetState> read_state(const std::string &path);
Status write_state(const std::string &path, const FleetState &s);

}  // namespace bpfgate::fleet
