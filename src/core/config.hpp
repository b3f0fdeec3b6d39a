// The operator's config file (YAML): the model, and a parser that validates
// everything and reports every error with file, line and reason. A config
// that has any error is refused whole. Each feature's sections are modelled
// and read in its folder (features/<name>/<name>_config.hpp), in the schema
// idiom of core/schema.hpp; this file keeps the root, agent: and sweep:.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "bpfgate/abi/xdp.h"
#include "core/cidr.hpp"
#include "core/limits.hpp"
#include "features/accel/accel_config.hpp"
#include "features/lb/lb_config.hpp"
#include "features/fleet/fleet_config.hpp"
#include "features/observe/observe_config.hpp"
#include "features/tc/tc_config.hpp"
#include "features/xdp/xdp_config.hpp"
#include "util/result.hpp"

namespace bpfgate::core {

struct Config {
  std::string path;
  std::string hash;  // FNV-1a 64 of the file's bytes, hex: which version is applied
  std::vector<InterfaceConfig> interfaces;
  Limits limits{kDefaultRatePps, kDefaultRatePps};
  std::optional<PrefixLimitConfig> prefix_limit;
  // limits.new_sources (off: rate 0): sources without state let in per second.
  Limits new_sources{kDefaultNewSourcesPps, kDefaultNewSourcesPps};
  // limits.unproven (off: rate 0): frames of sources that have not proved
  // themselves let in per second, all of them together.
  Limits unproven{kDefaultUnprovenPps, kDefaultUnprovenPps};
  // limits.prove: TCP sources prove themselves with SYN cookies (syncookies | off).
  bool prove = true;
  // limits.syn_proxy: a held SYN is answered by the datapath with the kernel's
  // cookie (on | off, default off; takes effect with prove and tcp_syncookies=2).
  bool syn_proxy = false;
  // dry_run: every frame the filter would drop is passed and counted as
  // would-drop by reason; no auto-block is made, no SYN answered (on | off).
  bool dry_run = false;
  bg_verdict unparsed = BG_VERDICT_PASS;
  std::vector<Prefix> allow, deny;
  std::vector<RuleConfig> rules;
  std::optional<AutoBlockConfig> auto_block;
  uint64_t sweep_interval_ns = 1'000'000'000ULL;
  uint64_t source_idle_ns = 300'000'000'000ULL;  // per-source entries idle this long are swept
  std::string control_socket = "/run/bpfgate/agent.sock";
  bool keep_datapath = false;  // leave the datapath running when the agent stops
  bool seccomp = true;         // agent.seccomp: the agent's own filter once it runs
  // agent.state_dir: where the agent keeps what must outlive a reboot (the
  // manual blocks, features/xdp/block_store.hpp); empty ("off"): nothing kept.
  std::string state_dir = "/var/lib/bpfgate";
  MetricsConfig metrics;
  EventsConfig events;
  std::vector<ServiceConfig> services;
  std::string tcp_probes = "auto";   // auto|fexit|tp_btf|tracepoint|off
  std::optional<TcConfig> tc;        // the tc datapath (features/tc/tc_config.hpp)
  std::optional<AccelConfig> accel;  // socket acceleration (features/accel/accel_config.hpp)
  std::optional<LbConfig> lb;        // the XDP load balancer (features/lb/lb_config.hpp)
  std::optional<FleetConfig>
      fleet;  // the fleet's shared blocklist (features/fleet/fleet_config.hpp)
};

// What a config is read for: the agent needs interfaces for its XDP filter;
// `bpfgate tc attach/apply IFACE --config FILE` reads only the tc: section, so
// a file that holds nothing else is one.
enum class ConfigFor { agent, tc };

// Parses and validates; on error, the message lists every problem as
// "FILE:LINE: reason", one per line.
Result<Config> parse_config(const std::string &text, const std::string &path,
                            ConfigFor use = ConfigFor::agent);
Result<Config> load_config(const std::string &path, ConfigFor use = ConfigFor::agent);

}  // namespace bpfgate::core
