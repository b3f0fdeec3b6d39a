// The config's `lb:` section (the XDP load balancer, features/lb/): services
// (VIP address:port/protocol), their backends and weights, health checks and
// dynamic weights, the table sizes. The model and its parser in the schema
// idiom (core/schema.hpp); an endpoint parser the CLI shares. Pure logic.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "util/result.hpp"

namespace YAML {
class Node;
}

namespace bpfgate::core {

class Diag;

// An address and port as the balancer keys them: 16 bytes, IPv4 v4-mapped.
struct LbEndpoint {
  std::array<uint8_t, 16> addr{};
  uint16_t port = 0;  // host order; 0: none written
  bool v6 = false;
  bool operator==(const LbEndpoint &) const = default;
  auto operator<=>(const LbEndpoint &) const = default;
};

// "198.18.1.1:80", "198.18.1.1", "[2001:db8::1]:80", "2001:db8::1"; with
// need_port the port must be there (1-65535).
Result<LbEndpoint> parse_lb_endpoint(const std::string &text, bool need_port);
// "198.18.1.1:80/tcp", "[2001:db8::1]:53/udp": a VIP and its protocol.
Result<std::pair<LbEndpoint, uint8_t>> parse_lb_vip(const std::string &text);
// "198.18.2.2:8080", "[2001:db8::2]:80" (the backends' stable key); "198.18.2.2"
// without a port.
std::string format_lb_endpoint(const LbEndpoint &e);

enum class LbCheck { none, tcp, http };

struct LbHealthConfig {
  LbCheck check = LbCheck::none;
  std::string path = "/";  // http
  uint32_t expect = 200;   // http: the status a healthy backend answers
  uint64_t interval_ns = 1'000'000'000ULL;
  uint64_t timeout_ns = 500'000'000ULL;
  uint32_t rise = 2;  // checks passed in a row to be up again
  uint32_t fall = 2;  // checks failed in a row to be down
  int line = 0;
  bool operator==(const LbHealthConfig &) const = default;
};

struct LbDynamicWeights {
  bool enabled = false;
  uint64_t interval_ns = 1'000'000'000ULL;
  uint32_t floor_pct = 10;       // no backend below this share of its configured weight
  uint32_t max_step_pct = 25;    // most a weight changes per interval, of the configured weight
  uint32_t hysteresis_pct = 10;  // changes smaller than this are not made
  uint64_t tolerance_ns = 1'000'000ULL;  // latency this much above the median is as fast
  int line = 0;
  bool operator==(const LbDynamicWeights &) const = default;
};

struct LbBackendConfig {
  LbEndpoint at;  // port: the backend's, or the VIP's when none was written
  uint32_t weight = 100;
  int line = 0;
  std::string key() const { return format_lb_endpoint(at); }
  bool operator==(const LbBackendConfig &) const = default;
};

struct LbServiceConfig {
  std::string name;
  LbEndpoint vip;
  uint8_t proto = 6;  // IPPROTO_TCP or IPPROTO_UDP
  std::vector<LbBackendConfig> backends;
  LbHealthConfig health;
  LbDynamicWeights dynamic_weights;
  int line = 0;
  bool operator==(const LbServiceConfig &) const = default;
};

struct LbConfig {
  uint32_t table_size = 4099;  // prime; restart to change
  uint32_t connections = 262144;
  uint64_t idle_timeout_ns = 300'000'000'000ULL;
  std::vector<std::string> interfaces;  // where the balancer attaches alone
  std::vector<int> interface_lines;
  std::vector<LbServiceConfig> services;
  int line = 0, table_size_line = 0, connections_line = 0;
  bool operator==(const LbConfig &) const = default;
};

// "tcp"/"udp" of a protocol number.
const char *lb_proto_name(uint8_t proto);

// Parses the `lb:` mapping into `out`.
void parse_lb(Diag &d, const YAML::Node &n, std::optional<LbConfig> &out);

}  // namespace bpfgate::core
