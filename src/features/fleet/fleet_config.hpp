// The config's `fleet:` section (features/fleet/: the fleet's shared
// blocklist through etcd): the model and its parser in the schema idiom
// (core/schema.hpp). Pure logic: no kernel, no network.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "core/cidr.hpp"

namespace YAML {
class Node;
}

namespace bpfgate::core {

class Diag;

struct FleetTlsConfig {
  std::string ca, cert, key;  // PEM files; cert and key together
};

struct FleetAuthConfig {
  std::string user, password_file;  // the password is the file's first line
};

struct FleetConfig {
  int line = 0;
  std::vector<std::string> endpoints;  // http(s)://host:port, tried in order
  std::string prefix = "/bpfgate/blocks/";
  std::string node;  // default: the host's name
  std::optional<FleetTlsConfig> tls;
  std::optional<FleetAuthConfig> auth;
  bool share_auto = true, share_manual = true;
  bool share_deny = false;         // share.deny_lists: the XDP filter's deny prefixes published
  uint64_t max_publish_rate = 50;  // writes a second (token bucket, burst as much)
  unsigned ipv4_prefix = 24, ipv6_prefix = 64;
  unsigned aggregate_threshold = 8;  // blocked addresses in one prefix: publish the prefix
  std::vector<Prefix> never_block;
};

// A node's name as keys and values carry it: 1-63 of [A-Za-z0-9._-].
bool valid_node_name(const std::string &s);

void parse_fleet(Diag &d, const YAML::Node &n, std::optional<FleetConfig> &out);

}  // namespace bpfgate::core
