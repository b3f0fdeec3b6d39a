// The config's `accel:` section (socket acceleration run by the agent,
// features/accel/accel.hpp): the model and its parser in the schema idiom
// (core/schema.hpp). The cgroup is checked against the machine by the agent
// (check_environment). Pure logic: no kernel.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace YAML {
class Node;
}

namespace bpfgate::core {

class Diag;

struct AccelConfig {
  std::string cgroup;                  // empty: the unified hierarchy's root
  std::string ports;                   // as written: "8080,9000-9010"; empty: every port
  std::vector<uint16_t> port_list;     // `ports`, parsed: sorted, unique; empty: every port
  std::vector<std::string> addresses;  // empty: this namespace's, plus loopback
  uint32_t max_sockets = 0;            // 0: the default
  int line = 0, cgroup_line = 0, ports_line = 0;
  bool operator==(const AccelConfig &) const = default;
};

// Parses the `accel:` mapping into `out`.
void parse_accel(Diag &d, const YAML::Node &n, std::optional<AccelConfig> &out);

}  // namespace bpfgate::core
