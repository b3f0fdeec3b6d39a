// The operator's config file (YAML): the model, and a parser that validates
// everything and reports every error with file, line and reason. A config
// that has any error is refused whole.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "bpfgate/abi/xdp.h"
#include "core/cidr.hpp"
#include "core/limits.hpp"
#include "features/tc/tc_config.hpp"
#include "util/result.hpp"

namespace bpfgate::core {

struct InterfaceConfig {
  std::string name;
  std::string mode = "auto";      // auto|native|generic|offload
  std::string attach = "direct";  // direct|dispatcher (libxdp's, beside other XDP programs)
  uint32_t priority = 50;         // the run priority in the dispatcher (lower first)
  uint32_t max_sources = kDefaultMaxSources;
  int line = 0;
};

struct RuleConfig {
  std::string match;  // as written: "tcp/443", "udp/8000-8099", "icmp"
  uint8_t proto = 0;  // IPPROTO_*
  bool has_ports = false;
  uint16_t port_lo = 0, port_hi = 0;
  bg_action action = BG_ACTION_LIMIT;
  Limits limits;  // action limit
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

// A TCP port of this host whose requests are measured (features/observe/probes.hpp).
struct ServiceConfig {
  std::string name;
  uint16_t port = 0;
  bool http = true;  // read HTTP/1.x status lines
  int line = 0;
};

// The Prometheus endpoint; `listen: off` turns it off.
struct MetricsConfig {
  bool enabled = true;
  std::string address = "127.0.0.1";  // numeric IPv4 or IPv6
  uint16_t port = 9477;
  int line = 0;
};

struct EventsConfig {
  std::string buffer = "auto";                        // auto|ringbuf|perf
  uint64_t drop_sample_interval_ns = 100'000'000ULL;  // per CPU; 0: no drop samples
};

// Socket acceleration run by the agent (features/accel/accel.hpp); the ports and the
// cgroup are checked against the machine by the agent (check_environment).
struct AccelConfig {
  std::string cgroup;                  // empty: the unified hierarchy's root
  std::string ports;                   // "8080,9000-9010"; empty: every port
  std::vector<std::string> addresses;  // empty: this namespace's, plus loopback
  uint32_t max_sockets = 0;            // 0: the default
  int line = 0, cgroup_line = 0, ports_line = 0;
  bool operator==(const AccelConfig &) const = default;
};

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
  std::optional<AccelConfig> accel;  // socket acceleration, enabled and watched by the agent
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

// "tcp/443" etc. into a rule's match fields (line and action untouched).
Status parse_match(const std::string &text, RuleConfig &rule);

}  // namespace bpfgate::core
