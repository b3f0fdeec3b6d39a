// What the balancer runs and has seen, read from its pins by any process
// (`bpfgate lb list`, /metrics), joined with the agent's catalog: the names
// and weights the maps do not hold (<state_dir>/lb-catalog.json, rewritten by
// the agent at every apply).
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "bpfgate/abi/lb.h"
#include "bpfgate/abi/xdp.h"
#include "util/result.hpp"

namespace bpfgate::agent::lb {

struct CatalogBackend {
  uint32_t id = 0;
  uint32_t configured = 0;           // the config's weight (a runtime add's own)
  uint32_t weight = 0;               // configured, or set at run time
  uint32_t effective = 0;            // what the ring was built with (dynamic weights)
  bool runtime = false;              // added at run time
  bool runtime_weight = false;       // weight set at run time
  std::string health = "unchecked";  // up | down | unchecked
};
struct CatalogService {
  uint32_t id = 0;
  std::string name, check = "none";
  std::vector<CatalogBackend> backends;
};
using Catalog = std::vector<CatalogService>;

std::string catalog_to_json(const Catalog &c);
Result<Catalog> catalog_from_json(const std::string &text);
std::string catalog_path(const std::string &state_dir);
std::string overlay_path(const std::string &state_dir);
// Written whole: a temporary file beside it, fsync, rename.
Status write_state_file(const std::string &path, const std::string &text);
// nullopt: no such file.
Result<std::optional<std::string>> read_state_file(const std::string &path);

// The catalog the agent published last (for /metrics, in the agent's process).
void publish_catalog(const Catalog &c);
std::optional<Catalog> published_catalog();

struct BackendView {
  uint32_t id = 0;
  std::string address;  // "198.18.2.2:8080"
  uint8_t flags = 0;    // enum bg_lb_backend_flags
  uint64_t ring_entries = 0;
  bg_lb_backend_stats stats{};        // summed over CPUs
  uint64_t active_flows = 0;          // connection entries used within idle_timeout
  std::optional<CatalogBackend> cat;  // from the catalog, when there is one
  std::string state() const;          // up | down | draining
};

struct ServiceView {
  uint32_t id = 0;
  std::string name;  // from the catalog; "service-<id>" without one
  std::string vip, proto;
  bool no_backend = false;
  std::vector<BackendView> backends;
  std::optional<CatalogService> cat;
};

struct LbView {
  uint32_t table_size = 0, connections = 0, active = 0, prog_id = 0;
  uint64_t idle_ns = 0, conns = 0;
  std::vector<std::string> interfaces;  // attached alone
  std::vector<ServiceView> services;
  std::array<bg_counter, BG_LB_COUNTER_NR> counters{};
  Catalog catalog;
};

// ENOENT: no balancer pinned.
Result<LbView> read_view(const std::string &bpffs, std::optional<Catalog> catalog);
const char *counter_name(bg_lb_counter c);

}  // namespace bpfgate::agent::lb
