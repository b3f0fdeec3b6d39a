// Where the fleet entries a node applied came from (bpfgate/abi/fleet.h): a
// hash map the agent creates and pins at <bpffs>/bpfgate-fleet/NODE/origins
// (NODE: fleet.node, so that agents of several nodes on one bpffs, as the
// tests run them, keep theirs apart), read by `bpfgate list` (origin node)
// and by a restarted agent (what it applied).
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "bpf/map.hpp"
#include "bpfgate/abi/fleet.h"
#include "core/cidr.hpp"
#include "util/result.hpp"

namespace bpfgate::fleet {

using OriginMap = bpf::Map<bg_lpm_key, bg_fleet_origin>;

std::string origins_path(const std::string &bpffs, const std::string &node);
// The pinned map, created and pinned when absent.
Result<OriginMap> open_or_create_origins(const std::string &bpffs, const std::string &node);
// Every node's pinned map under bpffs (none: the fleet never ran here).
std::vector<OriginMap> open_origins(const std::string &bpffs);
// The node of `p` in the first of `maps` that has it, or "".
std::string origin_of(const std::vector<OriginMap> &maps, const core::Prefix &p);
bg_fleet_origin make_origin(const std::string &node, double at_s, int64_t expires);

// The other nodes' keys in force here (bg_fleet_key), pinned beside the
// origins; `created` says it was made now (an agent of an older bpfgate left
// only the origins).
using KeyMap = bpf::Map<bg_fleet_key, bg_fleet_origin>;
Result<KeyMap> open_or_create_keys(const std::string &bpffs, const std::string &node,
                                   bool &created);
bg_fleet_key make_fleet_key(const core::Prefix &p, const std::string &node);

}  // namespace bpfgate::fleet
