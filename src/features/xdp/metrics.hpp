// The XDP filter's families in /metrics, read fresh from its pins at each
// scrape: interface state, verdict counters, datapath events, per-rule
// counters, the blocklist and the fill levels of its maps, the policy
// generation.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "core/prometheus.hpp"
#include "features/xdp/filter.hpp"

namespace bpfgate::agent {

// The filters' verdict counters: bpfgate_packets_total and bpfgate_bytes_total
// {interface, verdict, reason}, one sample for each pair of kVerdictReasons.
void write_verdicts(core::prom::Writer &w, const std::vector<FilterStatus> &filters);
// The filters' datapath events (enum bg_stat): one counter family each,
// bpfgate_<stat_name()>_total{interface}, HELP and TYPE even without filters.
void write_datapath_events(core::prom::Writer &w, const std::vector<FilterStatus> &filters);

// The operator switches: bpfgate_interface_bypass{interface} (1 while the
// filter passes everything), bpfgate_bypassed_total{interface},
// bpfgate_would_drop_total{interface, reason} (frames dry-run passed, one
// sample for each reason the filter drops for) and
// bpfgate_would_autoblocks_total{interface}.
void write_operations(core::prom::Writer &w, const std::vector<FilterStatus> &filters);

// A map's fill level in bpfgate_map_entries / bpfgate_map_max_entries that is
// not the filter's own (the observer's flows, whose interface is "").
struct MapFill {
  std::string iface;
  std::string map;
  uint64_t entries = 0;
  uint64_t max_entries = 0;
};

// What the agent knows of the filters beyond their pins.
struct FilterMetricsInput {
  std::vector<std::string> interfaces;                         // from the config
  std::map<std::string, std::vector<std::string>> rule_names;  // iface -> match by rule id - 1
  std::map<std::string, uint64_t> sources_after_sweep;         // iface -> entries
  std::vector<MapFill> other_maps;  // after the filters' samples, in both map families
};

// Every family of the filters, in the exposition's order: bpfgate_interface_up,
// bpfgate_interface_xdp_info, the verdicts, the datapath events, the rules,
// bpfgate_blocklist_entries, bpfgate_map_entries, bpfgate_map_max_entries,
// bpfgate_policy_generation.
void write_filter_metrics(core::prom::Writer &w, const std::string &bpffs,
                          const FilterMetricsInput &in);

}  // namespace bpfgate::agent
