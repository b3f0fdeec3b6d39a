// The config's `tc:` section (the tc datapath: classes, HTB, stages): the
// model, its parser in the schema idiom (core/schema.hpp), and its
// compilation into the class table the datapath runs. Pure logic: no kernel.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "bpfgate/abi/tc.h"
#include "core/cidr.hpp"
#include "core/values.hpp"
#include "util/result.hpp"

namespace YAML {
class Node;
}

namespace bpfgate::core {

class Diag;

// What a class matches; every field given must match.
struct TcMatchConfig {
  std::optional<uint8_t> proto;    // IPPROTO_*
  std::optional<PortRange> sport;  // source port
  std::optional<PortRange> dport;  // destination port
  std::optional<PortRange> port;   // either port
  std::optional<Prefix> src, dst;  // CIDR
  std::optional<uint8_t> dscp;     // 0-63
};

struct TcMirrorConfig {
  std::string iface;
  uint32_t sample = 1;  // one packet in `sample`
  int line = 0;
};

struct TcClassConfig {
  std::string name;
  uint8_t dirs = BG_TC_DIR_INGRESS | BG_TC_DIR_EGRESS;
  TcMatchConfig match;
  uint64_t rate_bps = 0;  // 0: not policed
  uint64_t burst_bytes = 0;
  bg_tc_exceed exceed = BG_TC_EXCEED_DROP;
  uint8_t exceed_dscp = 8;          // CS1
  std::optional<uint8_t> priority;  // 0 (first) .. 7: an HTB leaf
  std::optional<uint8_t> set_dscp;
  std::optional<TcMirrorConfig> mirror;
  int line = 0;
};

struct TcHtbConfig {
  uint64_t rate_bps = 0;  // what the link carries: the root class's rate and every leaf's ceil
  uint8_t default_priority = 4;  // the leaf of traffic no class gives a priority
  int line = 0;
  bool operator==(const TcHtbConfig &o) const {
    return rate_bps == o.rate_bps && default_priority == o.default_priority;
  }
};

struct TcInterfaceConfig {
  std::string name;
  int line = 0;
};

using TcStages = std::array<bool, BG_TC_STAGE_NR>;

struct TcConfig {
  std::vector<TcInterfaceConfig> interfaces;
  std::optional<TcHtbConfig> htb;
  TcStages stages{true, true, true, true, true};
  std::vector<TcClassConfig> classes;
  int line = 0;
};

// Parses the `tc:` mapping into `out` (left empty when it has errors).
void parse_tc(Diag &d, const YAML::Node &n, std::optional<TcConfig> &out);

// Rates and sizes: core/values.hpp (parse_rate_bps, parse_size_bytes).
// "ef", "af41", "cs1", "le" or 0-63.
Result<uint8_t> parse_dscp(const std::string &text);
std::string format_rate_bps(double bps);

const char *stage_name(uint32_t stage);
// A class's enum bg_tc_dir bits as the config writes them: ingress, egress or both.
const char *direction_name(uint8_t dirs);
std::optional<bg_tc_stage> parse_stage(const std::string &name);

inline constexpr uint64_t kTcRateMinBps = kRateMinBps;  // 8 kbit/s
inline constexpr uint64_t kTcRateMaxBps = kRateMaxBps;  // 400 gbit/s
inline constexpr uint64_t kTcBurstMinBytes = 1514;      // one full-size frame
inline constexpr uint64_t kTcBurstMaxBytes = 256ULL << 20;
// Without a burst: 50 ms at the rate, at least 512 KiB and at most
// kTcBurstMaxBytes (above 43 gbit/s 50 ms would not fit: at 400 gbit/s the
// bucket holds 5.4 ms, and burst * 8e9 must stay below 2^64). TCP sends GSO packets
// of up to 64 KiB back to back and a policer drops them whole: a smaller
// bucket costs TCP most of its rate (measured: README, "tc datapath").
uint64_t default_burst(uint64_t rate_bps);

// skb->priority that sends a packet to the HTB leaf of priority `p`.
inline uint32_t htb_classid(uint8_t p) {
  return (static_cast<uint32_t>(BG_TC_HTB_MAJOR) << 16) | (BG_TC_HTB_MINOR_BASE + p);
}

// The class table of one generation, and the stages to run.
struct TcImage {
  std::vector<bg_tc_class> classes;  // in config order: the first match wins
  TcStages stages{true, true, true, true, true};
};

using IfindexOf = std::function<Result<uint32_t>(const std::string &)>;
// Mirror interfaces are resolved with `ifindex_of` (the caller's namespace).
Result<TcImage> compile_tc(const TcConfig &c, const IfindexOf &ifindex_of);

}  // namespace bpfgate::core
