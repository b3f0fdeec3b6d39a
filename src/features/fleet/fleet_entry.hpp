// The fleet's entries as etcd holds them, and the decisions over them that
// need no kernel and no network: the key and value of a block, what a value
// received must be to be applied, the never-block guard, aggregation of
// addresses into prefixes, and the publish rate's token bucket.
//
//   key    PREFIX + NODE + '/' + the CIDR with '/' as '_'
//          /bpfgate/blocks/gw-1/198.51.100.7_32   (one key per node and CIDR, so
//          that etcd's roles can confine a node to PREFIX + NODE + '/')
//   value  {"cidr":"198.51.100.7/32","node":"gw-1","reason":"auto",
//           "at":1765000000.123,"expires":1765000600}   (unix s; expires 0: none;
//          node: the key's; reason "deny": a prefix of the node's deny list)
//
// The fleet's never-block list, an operator's (the node roles cannot write it):
//   key    PREFIX + "@never/" + the CIDR with '/' as '_'  ('@' is no node name)
//   value  {"cidr":"10.0.0.0/8","by":"operator","at":1765000000.123}
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/cidr.hpp"
#include "util/result.hpp"

namespace bpfgate::fleet {

inline constexpr size_t kMaxKeyBytes = 256, kMaxValueBytes = 1024;
// An entry that says it expires further away than this is refused.
inline constexpr int64_t kMaxTtlS = 366 * 24 * 3600;

// The wall clock in unix seconds, as entries carry their times.
double wall_s();

struct FleetEntry {
  core::Prefix prefix;
  std::string node;
  std::string reason;   // manual | auto | aggregate | deny
  double at = 0;        // unix s: when the publishing node learned it
  int64_t expires = 0;  // unix s; 0: until removed
};

std::string key_of(const std::string &key_prefix, const std::string &node, const core::Prefix &p);
// PREFIX + NODE + '/': the keys of one node (what its etcd role may write).
std::string node_prefix(const std::string &key_prefix, const std::string &node);
std::string encode_value(const FleetEntry &e);
// A value received under `key`, checked whole: under the prefix, the key's
// node and CIDR the value's, a node name, a known reason, times that make
// sense, sizes capped. The error says why it is refused.
Result<FleetEntry> decode_entry(const std::string &key_prefix, const std::string &key,
                                const std::string &value, double now_s);

// What a key names (unchecked against any value).
struct KeyName {
  std::string node;
  core::Prefix prefix;
};
Result<KeyName> parse_key(const std::string &key_prefix, const std::string &key);

// The fleet's never-block list: where its keys live, and one entry.
inline constexpr const char *kNeverDir = "@never/";
// The fleet's never-block entries a node holds at most (past it: refused).
inline constexpr size_t kMaxNever = 4096;

struct NeverEntry {
  core::Prefix prefix;
  std::string by;  // who added it (the operator's etcd user, or the CLI's caller)
  double at = 0;   // unix s
};

// PREFIX + "@never/": the never-block list's keys.
std::string never_prefix(const std::string &key_prefix);
std::string never_key(const std::string &key_prefix, const core::Prefix &p);
bool is_never_key(const std::string &key_prefix, const std::string &key);
std::string encode_never(const NeverEntry &e);
// Checked whole as decode_entry: the key's CIDR the value's, `by` a name of
// 1-63 of [A-Za-z0-9._-], `at` a time up to now, sizes capped.
Result<NeverEntry> decode_never(const std::string &key_prefix, const std::string &key,
                                const std::string &value, double now_s);

// Whether a and b share an address (one holds the other).
bool overlaps(const core::Prefix &a, const core::Prefix &b);
bool touches_never_block(const core::Prefix &p, const std::vector<core::Prefix> &never);
// The prefix of `len` bits (IPv4: 0-32) that holds p.
core::Prefix widen(const core::Prefix &p, unsigned len);

struct Aggregation {
  unsigned ipv4_prefix = 24, ipv6_prefix = 64, threshold = 8;
};
// What to publish for `local` (blocks of this node): single addresses of one
// aggregation prefix are replaced by that prefix when `threshold` or more of
// them are blocked, unless the prefix touches a never-block entry (then the
// addresses stay single); the prefix lasts as long as its longest member.
std::vector<FleetEntry> aggregate(const std::vector<FleetEntry> &local, const Aggregation &a,
                                  const std::vector<core::Prefix> &never);

// Writes a second, `rate` at once at most; time given (ns), so tests drive it.
class TokenBucket {
 public:
  explicit TokenBucket(uint64_t rate = 50) : rate_(rate), credit_(rate * kUnit) {}
  void set_rate(uint64_t rate);
  bool take(uint64_t now_ns);

 private:
  static constexpr uint64_t kUnit = 1'000'000'000;  // one write's credit: ns x writes/s
  uint64_t rate_;
  uint64_t credit_;
  uint64_t last_ns_ = 0;
};

}  // namespace bpfgate::fleet
