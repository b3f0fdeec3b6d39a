#include "features/fleet/metrics.hpp"

#include <nlohmann/json.hpp>

#include <mutex>

namespace bpfgate::fleet {

namespace {
std::mutex mu;
FleetStats current;
}  // namespace

void FleetStats::observe_lag(double s) {
  lag_s = s;
  lag_sum += s;
  size_t i = 0;
  while (i < kLagBounds.size() && s > kLagBounds[i])
    i++;
  lag_counts[i]++;
}

void update_stats(const std::function<void(FleetStats &)> &fn) {
  std::lock_guard<std::mutex> l(mu);
  fn(current);
}

FleetStats stats() {
  std::lock_guard<std::mutex> l(mu);
  return current;
}

void write_metrics(core::prom::Writer &w, const FleetStats &s) {
  const std::pair<const char *, uint64_t FleetStats::*> counters[] = {
      {"published", &FleetStats::published}, {"received", &FleetStats::received},
      {"applied", &FleetStats::applied},     {"refused", &FleetStats::refused},
      {"held_back", &FleetStats::held_back},
  };
  const char *help[] = {
      "Fleet entries this node wrote to etcd",
      "Fleet entries this node read from etcd (watch events and full reads)",
      "Fleet entries of other nodes applied to this node's blocklists (adds and removals)",
      "Fleet entries refused on receipt (malformed, hostile, never-block)",
      "Blocks not published at once: over fleet.max_publish_rate",
  };
  for (size_t i = 0; i < std::size(counters); i++) {
    std::string name = std::string("bpfgate_fleet_") + counters[i].first + "_total";
    w.family(name, "counter", help[i]);
    if (s.enabled)
      w.sample(name, {}, static_cast<double>(s.*counters[i].second));
  }
  w.family("bpfgate_fleet_connected", "gauge", "1 while the fleet's etcd watch is in place");
  if (s.enabled)
    w.sample("bpfgate_fleet_connected", {{"endpoint", s.endpoint}}, s.connected ? 1 : 0);
  w.family("bpfgate_fleet_never_block_entries", "gauge",
           "Prefixes never blocked through the fleet: the fleet's list (etcd) and the config's");
  if (s.enabled) {
    w.sample("bpfgate_fleet_never_block_entries", {{"source", "fleet"}},
             static_cast<double>(s.never_fleet));
    w.sample("bpfgate_fleet_never_block_entries", {{"source", "config"}},
             static_cast<double>(s.never_config));
  }
  w.family("bpfgate_fleet_lag_seconds", "histogram",
           "From the publishing node learning an entry to its apply here");
  if (s.enabled)
    w.histogram("bpfgate_fleet_lag_seconds", {}, kLagBounds, s.lag_counts, s.lag_sum);
}

std::string status_json(const FleetStats &s) {
  return nlohmann::json{{"enabled", s.enabled},
                        {"connected", s.connected},
                        {"node", s.node},
                        {"endpoint", s.endpoint},
                        {"last_error", s.last_error},
                        {"revision", s.revision},
                        {"published", s.published},
                        {"received", s.received},
                        {"applied", s.applied},
                        {"refused", s.refused},
                        {"held_back", s.held_back},
                        {"queued", s.queued},
                        {"entries", s.entries},
                        {"never_block", s.never_fleet},
                        {"never_block_config", s.never_config},
                        {"lag_s", s.lag_s},
                        {"scans", s.scans},
                        {"scan_ms", s.scan_s * 1e3},
                        {"scan_every_ms", s.scan_every_s * 1e3}}
      .dump();
}

}  // namespace bpfgate::fleet
