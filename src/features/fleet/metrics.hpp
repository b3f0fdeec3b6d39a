// What the fleet reports: its counters and connection state, kept by the
// agent's loop and read under a lock by /metrics' thread and by
// `bpfgate fleet status` (through the control socket).
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "core/prometheus.hpp"

namespace bpfgate::fleet {

inline const std::vector<double> kLagBounds = {0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                                               1,    2.5,   5,    10,  30};

struct FleetStats {
  bool enabled = false;    // a fleet: section is in force
  bool connected = false;  // the watch is in place
  std::string node, endpoint, last_error;
  int64_t revision = 0;  // the last applied
  uint64_t published = 0, received = 0, applied = 0, refused = 0, held_back = 0;
  uint64_t queued = 0;   // writes waiting for etcd
  uint64_t entries = 0;  // fleet entries in force on this node
  // The never-block list: the fleet's entries (PREFIX@never/), the config's.
  uint64_t never_fleet = 0, never_config = 0;
  double lag_s = 0;  // the last applied entry: its node's learning to this apply
  // Scans of this node's blocklists (publishing); the last one's cost, and
  // the least time between two that follows from it.
  uint64_t scans = 0;
  double scan_s = 0, scan_every_s = 0;
  // Every applied entry's lag, by the bounds of kLagBounds (one more: above).
  std::vector<uint64_t> lag_counts = std::vector<uint64_t>(kLagBounds.size() + 1);
  double lag_sum = 0;
  void observe_lag(double s);
};

// The agent's one set (a process runs one agent).
void update_stats(const std::function<void(FleetStats &)> &fn);
FleetStats stats();

// bpfgate_fleet_{published,received,applied,refused,held_back}_total,
// bpfgate_fleet_connected, bpfgate_fleet_never_block_entries{source} and the histogram
// bpfgate_fleet_lag_seconds (samples only while the fleet is on).
void write_metrics(core::prom::Writer &w, const FleetStats &s);
std::string status_json(const FleetStats &s);

}  // namespace bpfgate::fleet
