#include "features/accel/accel_config.hpp"

#include <yaml-cpp/yaml.h>

#include <fmt/format.h>

#include "bpfgate/abi/accel.h"
#include "core/cidr.hpp"
#include "core/schema.hpp"

namespace bpfgate::core {

namespace {

// "8080,9000-9010", a number, or a list of either.
void parse_ports(const Section &s, AccelConfig &a) {
  Diag &d = s.diag();
  const auto &p = s["ports"];
  a.ports_line = line_of(p);
  if (p.IsSequence()) {
    for (const auto &item : p)
      if (auto v = read_scalar(d, item, "a port"))
        a.ports += (a.ports.empty() ? "" : ",") + *v;
  } else if (auto v = read_scalar(d, p, "accel.ports")) {
    a.ports = *v;
  }
  if (a.ports.empty()) {
    d.at(p, "accel.ports is empty: list ports (8080,9000-9010), or leave it out for every port");
    return;
  }
  auto list = parse_port_list(a.ports);
  if (!list)
    d.at(p, fmt::format("accel.ports: {}", list.error().message()));
  else
    a.port_list = std::move(*list);
}

void parse_addresses(const Section &s, AccelConfig &a) {
  Diag &d = s.diag();
  const auto &l = s["addresses"];
  if (!l.IsSequence()) {
    d.at(l, "accel.addresses must be a list of prefixes, e.g. [127.0.0.0/8, ::1]");
    return;
  }
  for (const auto &item : l)
    if (auto v = read_scalar(d, item, "an address")) {
      if (!parse_prefix(*v))
        d.at(item, fmt::format("'{}' is not an address or prefix", *v));
      a.addresses.push_back(*v);
    }
}

}  // namespace

void parse_accel(Diag &d, const YAML::Node &n, std::optional<AccelConfig> &out) {
  Section s(d, n, "accel", {"cgroup", "ports", "addresses", "max_sockets"});
  if (!s)
    return;
  AccelConfig a;
  a.line = a.cgroup_line = a.ports_line = s.line();
  if (s.has("cgroup")) {
    a.cgroup_line = line_of(s["cgroup"]);
    s.text("cgroup", a.cgroup, "accel.cgroup");
  }
  if (s.has("ports"))
    parse_ports(s, a);
  if (s.has("addresses"))
    parse_addresses(s, a);
  s.number("max_sockets", a.max_sockets, 1, BG_ACCEL_MAX_SOCKETS_MAX, "accel.max_sockets");
  out = a;
}

}  // namespace bpfgate::core
