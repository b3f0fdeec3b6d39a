// What the balancer should run, from the config, the runtime overlay (`bpfgate
// lb add|remove|drain|weight`, kept by the agent across reloads and restarts)
// and what health checks and dynamic weights say. Pure logic: no kernel.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "features/lb/lb_config.hpp"
#include "features/lb/lb_datapath.hpp"
#include "util/result.hpp"

namespace bpfgate::agent::lb {

// One backend's runtime changes; the key is its "address:port".
struct OverlayBackend {
  bool added = false;    // not in the config: added at run time
  bool removed = false;  // in the config, removed at run time
  bool draining = false;
  std::optional<uint32_t> weight;  // set at run time
  bool operator==(const OverlayBackend &) const = default;
};
// service name -> backend key -> changes.
using Overlay = std::map<std::string, std::map<std::string, OverlayBackend>>;

enum class LbOp { add, remove, drain, weight };
struct LbRequest {
  LbOp op = LbOp::add;
  std::string service, address;
  std::optional<uint32_t> weight;
};
const char *op_name(LbOp op);

// The control socket's line: "lb add SERVICE ADDR[:PORT] [WEIGHT]", "lb remove
// SERVICE ADDR[:PORT]", "lb drain SERVICE ADDR[:PORT]", "lb weight SERVICE
// ADDR[:PORT] WEIGHT".
Result<LbRequest> parse_lb_request(std::string_view line);
std::string format_lb_request(const LbRequest &r);

// The overlay with `r` applied to `services` (the config's); an error says why
// and changes nothing. `what` says what changed ("added 198.18.2.5:80 to web").
Result<Overlay> change_overlay(const Overlay &o, const std::vector<core::LbServiceConfig> &services,
                               const LbRequest &r, std::string &what);
// Drops what no longer applies (services gone; removals of backends no longer configured).
Overlay prune_overlay(const Overlay &o, const std::vector<core::LbServiceConfig> &services);

// A backend as configured and changed at run time.
struct Backend {
  core::LbEndpoint at;
  uint32_t configured = 0;  // the config's weight (a runtime add's: its own)
  uint32_t weight = 0;      // configured, or the runtime weight
  bool runtime_added = false, runtime_weight = false, draining = false;
  std::string key() const { return core::format_lb_endpoint(at); }
};
std::vector<Backend> backends_of(const core::LbServiceConfig &s, const Overlay &o);

// What health checks and dynamic weights say, by service and backend key.
struct Signals {
  std::map<std::pair<std::string, std::string>, bool> down;         // absent: up
  std::map<std::pair<std::string, std::string>, uint32_t> weights;  // absent: as configured
};

std::vector<PlannedService> plan(const std::vector<core::LbServiceConfig> &services,
                                 const Overlay &o, const Signals &s);

// The overlay as its state file holds it (JSON), and back.
std::string overlay_to_json(const Overlay &o);
Result<Overlay> overlay_from_json(const std::string &text);

}  // namespace bpfgate::agent::lb
