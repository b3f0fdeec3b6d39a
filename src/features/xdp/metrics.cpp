#include "features/xdp/metrics.hpp"

#include <fmt/format.h>

#include "bpf/map.hpp"
#include "bpf/pin.hpp"
#include "features/xdp/blocklist.hpp"

namespace bpfgate::agent {

namespace {

using core::prom::Labels;
using core::prom::Writer;

const char *kActionNames[] = {"limit", "pass", "drop"};

struct FilterView {
  std::string iface;
  bool up = false;
  FilterStatus status;
  std::vector<BlockEntry> blocks;
  std::vector<std::pair<uint32_t, bg_rule_stats>> rules;  // active generation only
  std::vector<bg_rule> rule_defs;
};

// The rules' counters of the active generation, summed over the CPUs.
void read_rule_stats(const std::string &bpffs, FilterView &v) {
  std::string pin = bpf::pin_dir(bpffs, v.iface) + "/" + BG_PIN_RULE_STATS;
  if (!bpf::exists(pin))
    return;
  auto m = bpf::PerCpuMap<__u32, bg_rule_stats>::open_pinned(pin);
  for (uint32_t id = 1; m && id < v.rule_defs.size(); id++) {
    auto per_cpu = m->lookup(id);
    if (!per_cpu)
      break;
    bg_rule_stats sum{};
    for (const auto &c : *per_cpu)
      if (c.generation == v.status.generation)
        sum.packets += c.packets, sum.bytes += c.bytes;
    v.rules.emplace_back(id, sum);
  }
}

FilterView read_filter(const std::string &bpffs, const std::string &iface) {
  FilterView v;
  v.iface = iface;
  auto f = PinnedFilter::open(bpffs, iface);
  if (!f)
    return v;
  auto s = f->status();
  if (!s)
    return v;
  v.status = *s;
  auto blocks = list_blocks(f->datapath());
  if (blocks)
    v.blocks = std::move(*blocks);
  auto policy = f->datapath().active_policy();
  if (policy)
    v.rule_defs = policy->rules;
  read_rule_stats(bpffs, v);
  v.up = true;
  return v;
}

void write_interfaces(Writer &w, const std::vector<FilterView> &filters) {
  w.family("bpfgate_interface_up", "gauge",
           "1 when the filter of the interface is attached and readable");
  for (const auto &f : filters)
    w.sample("bpfgate_interface_up", {{"interface", f.iface}},
             f.up && f.status.ifindex != 0 ? 1 : 0);
  w.family("bpfgate_interface_xdp_info", "gauge",
           "The attached XDP filter's mode (native, generic, offload) and attachment (direct, "
           "dispatcher)");
  for (const auto &f : filters)
    if (f.up && f.status.ifindex != 0)
      w.sample(
          "bpfgate_interface_xdp_info",
          {{"interface", f.iface}, {"mode", f.status.mode}, {"attach", to_string(f.status.attach)}},
          1);
}

void write_rules(Writer &w, const std::vector<FilterView> &filters,
                 const std::map<std::string, std::vector<std::string>> &rule_names) {
  auto rule_labels = [&](const FilterView &f, uint32_t id) {
    std::string match;
    auto it = rule_names.find(f.iface);
    if (it != rule_names.end() && id - 1 < it->second.size())
      match = it->second[id - 1];
    uint32_t act = id < f.rule_defs.size() ? f.rule_defs[id].action : 0;
    return Labels{{"interface", f.iface},
                  {"rule", std::to_string(id)},
                  {"match", match},
                  {"action", act < 3 ? kActionNames[act] : "unknown"}};
  };
  w.family("bpfgate_rule_packets_total", "counter",
           "Frames that matched a protocol/port rule (restarts at each policy apply)");
  for (const auto &f : filters)
    for (const auto &[id, s] : f.rules)
      w.sample("bpfgate_rule_packets_total", rule_labels(f, id), static_cast<double>(s.packets));
  w.family("bpfgate_rule_bytes_total", "counter",
           "Bytes of the frames that matched a rule (restarts at each policy apply)");
  for (const auto &f : filters)
    for (const auto &[id, s] : f.rules)
      w.sample("bpfgate_rule_bytes_total", rule_labels(f, id), static_cast<double>(s.bytes));
}

void write_blocklist(Writer &w, const std::vector<FilterView> &filters) {
  w.family("bpfgate_blocklist_entries", "gauge", "Prefixes on the blocklist, by reason");
  for (const auto &f : filters) {
    if (!f.up)
      continue;
    uint64_t manual = 0, autob = 0;
    for (const auto &b : f.blocks)
      if (!b.expired)
        (b.value.reason == BG_BLOCK_AUTO ? autob : manual)++;
    w.sample("bpfgate_blocklist_entries", {{"interface", f.iface}, {"reason", "manual"}},
             static_cast<double>(manual));
    w.sample("bpfgate_blocklist_entries", {{"interface", f.iface}, {"reason", "auto"}},
             static_cast<double>(autob));
  }
}

void write_map_fill(Writer &w, const std::vector<FilterView> &filters,
                    const FilterMetricsInput &in) {
  w.family("bpfgate_map_entries", "gauge",
           "Entries in a BPF map (sources: as of the agent's last sweep)");
  for (const auto &f : filters) {
    if (!f.up)
      continue;
    auto it = in.sources_after_sweep.find(f.iface);
    if (it != in.sources_after_sweep.end())
      w.sample("bpfgate_map_entries", {{"interface", f.iface}, {"map", "sources"}},
               static_cast<double>(it->second));
    w.sample("bpfgate_map_entries", {{"interface", f.iface}, {"map", "blocklist"}},
             static_cast<double>(f.blocks.size()));
    w.sample("bpfgate_map_entries", {{"interface", f.iface}, {"map", "known"}},
             static_cast<double>(f.status.known_sources));
  }
  for (const auto &m : in.other_maps)
    w.sample("bpfgate_map_entries", {{"interface", m.iface}, {"map", m.map}},
             static_cast<double>(m.entries));
  w.family("bpfgate_map_max_entries", "gauge", "Capacity of a BPF map");
  for (const auto &f : filters) {
    if (!f.up)
      continue;
    w.sample("bpfgate_map_max_entries", {{"interface", f.iface}, {"map", "sources"}},
             f.status.max_sources);
    w.sample("bpfgate_map_max_entries", {{"interface", f.iface}, {"map", "blocklist"}},
             BG_BLOCKLIST_MAX);
    w.sample("bpfgate_map_max_entries", {{"interface", f.iface}, {"map", "known"}},
             f.status.max_known);
  }
  for (const auto &m : in.other_maps)
    w.sample("bpfgate_map_max_entries", {{"interface", m.iface}, {"map", m.map}},
             static_cast<double>(m.max_entries));
}

}  // namespace

void write_verdicts(Writer &w, const std::vector<FilterStatus> &filters) {
  auto write = [&](const char *family, __u64 bg_counter::*field) {
    for (const auto &f : filters)
      for (const auto &[v, r] : kVerdictReasons)
        w.sample(family,
                 {{"interface", f.iface}, {"verdict", to_string(v)}, {"reason", to_string(r)}},
                 static_cast<double>(f.counters[bg_counter_key(v, r)].*field));
  };
  w.family("bpfgate_packets_total", "counter",
           "Frames seen by the XDP filter, by verdict and reason");
  write("bpfgate_packets_total", &bg_counter::packets);
  w.family("bpfgate_bytes_total", "counter", "Bytes of the frames seen by the XDP filter");
  write("bpfgate_bytes_total", &bg_counter::bytes);
}

void write_datapath_events(Writer &w, const std::vector<FilterStatus> &filters) {
  for (uint32_t e = 0; e < BG_STAT_NR; e++) {
    const StatName &n = stat_name(static_cast<bg_stat>(e));
    std::string family = fmt::format("bpfgate_{}_total", n.name);
    w.family(family, "counter", n.help);
    for (const auto &f : filters)
      w.sample(family, {{"interface", f.iface}}, static_cast<double>(f.stats[e]));
  }
}

void write_operations(Writer &w, const std::vector<FilterStatus> &filters) {
  w.family("bpfgate_interface_bypass", "gauge",
           "1 while the interface's bypass switch is on: the filter passes every frame");
  for (const auto &f : filters)
    w.sample("bpfgate_interface_bypass", {{"interface", f.iface}}, f.bypass ? 1 : 0);
  w.family("bpfgate_bypassed_total", "counter", "Frames passed unfiltered by the bypass switch");
  for (const auto &f : filters)
    w.sample("bpfgate_bypassed_total", {{"interface", f.iface}},
             static_cast<double>(f.ops[BG_OP_BYPASSED].packets));
  w.family("bpfgate_would_drop_total", "counter",
           "Frames dry-run passed that the filter would have dropped, by reason");
  for (const auto &f : filters)
    for (const auto &[v, r] : kVerdictReasons)
      if (v == BG_VERDICT_DROP)
        w.sample("bpfgate_would_drop_total", {{"interface", f.iface}, {"reason", to_string(r)}},
                 static_cast<double>(f.ops[BG_OP_WOULD_DROP + static_cast<unsigned>(r)].packets));
  w.family("bpfgate_would_autoblocks_total", "counter",
           "Auto-blocks dry-run did not make (a source over its limit for auto_block.after)");
  for (const auto &f : filters)
    w.sample("bpfgate_would_autoblocks_total", {{"interface", f.iface}},
             static_cast<double>(f.ops[BG_OP_WOULD_AUTOBLOCK].packets));
}

void write_filter_metrics(Writer &w, const std::string &bpffs, const FilterMetricsInput &in) {
  std::vector<FilterView> filters;
  for (const auto &iface : in.interfaces)
    filters.push_back(read_filter(bpffs, iface));
  write_interfaces(w, filters);
  std::vector<FilterStatus> up;
  for (const auto &f : filters)
    if (f.up)
      up.push_back(f.status);
  write_verdicts(w, up);
  write_datapath_events(w, up);
  write_operations(w, up);
  write_rules(w, filters, in.rule_names);
  write_blocklist(w, filters);
  write_map_fill(w, filters, in);
  w.family("bpfgate_policy_generation", "gauge", "Policy generation the filter runs");
  for (const auto &f : filters)
    if (f.up)
      w.sample("bpfgate_policy_generation", {{"interface", f.iface}}, f.status.generation);
}

}  // namespace bpfgate::agent
