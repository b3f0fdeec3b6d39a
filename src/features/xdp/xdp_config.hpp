// The XDP filter's sections of the config: interfaces, limits, unparsed, the
// allow/deny lists (and their files), rules and auto_block. The model, and
// their parser in the schema idiom (core/schema.hpp). Pure logic: no kernel.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "bpf/xdp_mode.hpp"
#include "bpfgate/abi/xdp.h"
#include "core/cidr.hpp"
#include "core/limits.hpp"
#include "util/result.hpp"

namespace YAML {
class Node;
}

namespace bpfgate::core {

class Diag;
struct Config;

struct InterfaceConfig {
  std::string name;
  std::string mode = "auto";  // auto|native|generic|offload (drv, skb, hw: the same)
  bpf::XdpMode xdp_mode = bpf::XdpMode::kAuto;  // `mode`, parsed
  std::string attach = "direct";  // direct|dispatcher (libxdp's, beside other XDP programs)
  uint32_t priority = 50;         // the run priority in the dispatcher (lower first)
  uint32_t max_sources = kDefaultMaxSources;
  // bypass: on|off: the agent sets the interface's bypass switch to it at
  // start and at every reload; absent, the switch is left to `bpfgate bypass`.
  std::optional<bool> bypass;
  int line = 0;
};

struct RuleConfig {
  std::string match;  // as written: "tcp/443", "udp/8000-8099", "icmp"
  uint8_t proto = 0;  // IPPROTO_*
  bool has_ports = false;
  uint16_t port_lo = 0, port_hi = 0;
  bg_action action = BG_ACTION_LIMIT;
  Limits limits;         // action limit
  bool dry_run = false;  // dry_run: on: its drops are passed and counted (BG_RULE_DRY_RUN)
  int line = 0;
};

struct PrefixLimitConfig {
  uint8_t v4_len = 24;
  uint8_t v6_len = 64;
  Limits limits;
};

struct AutoBlockConfig {
  uint64_t after_ns = 0;
  uint64_t ttl_ns = 0;
  Limits max_rate{kDefaultAutoBlockPps, kDefaultAutoBlockPps};  // auto-blocks a second
  std::vector<Prefix> never;                                    // prefixes never auto-blocked
};

// Reads the root's XDP keys into `c`; `need_interfaces`: a config without
// interfaces is an error (the agent's; `bpfgate tc` reads a file of tc: only).
void parse_xdp_sections(Diag &d, const YAML::Node &root, Config &c, bool need_interfaces);
// Once every section is read: allow and deny sorted and deduplicated; a prefix
// in both is an error, and so are more than the filter holds.
void settle_acl(Diag &d, Config &c);

// "tcp/443" etc. into a rule's match fields (line and action untouched).
Status parse_match(const std::string &text, RuleConfig &rule);

}  // namespace bpfgate::core
