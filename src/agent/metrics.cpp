#include "agent/metrics.hpp"

#include <cstring>

#include <fmt/format.h>

#include "features/accel/accel.hpp"
#include "features/xdp/blocklist.hpp"
#include "features/xdp/filter.hpp"
#include "features/observe/probes.hpp"
#include "bpf/map.hpp"
#include "bpf/pin.hpp"
#include "core/prometheus.hpp"

namespace bpfgate::agent {

namespace {

using core::prom::Labels;
using core::prom::Writer;

const char *kActionNames[] = {"limit", "pass", "drop"};
const char *kClassNames[] = {"1xx", "2xx", "3xx", "4xx", "5xx", "other"};

struct FilterView {
  std::string iface;
  bool up = false;
  FilterStatus status;
  std::vector<BlockEntry> blocks;
  std::vector<std::pair<uint32_t, bg_rule_stats>> rules;  // active generation only
  std::vector<bg_rule> rule_defs;
};

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
  std::string pin = bpf::pin_dir(bpffs, iface) + "/" + BG_PIN_RULE_STATS;
  if (bpf::exists(pin)) {
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
  v.up = true;
  return v;
}

std::vector<TcClassesView> read_tc_classes(const std::string &bpffs,
                                           const std::vector<std::string> &ifaces) {
  std::vector<TcClassesView> out;
  for (const auto &iface : ifaces) {
    auto p = PinnedTc::open(bpffs, iface);
    if (!p)
      continue;  // not attached (yet): no samples, as for a filter that is down
    auto stats = p->datapath().class_stats();
    if (stats)
      out.push_back({iface, std::move(*stats)});
  }
  return out;
}

std::vector<double> latency_bounds() {
  std::vector<double> b;
  for (uint32_t i = 0; i + 1 < BG_OBS_HIST_BUCKETS; i++)
    b.push_back(bucket_upper_seconds(i));
  return b;
}

void histogram(Writer &w, const char *name, const Labels &l, const __u64 *hist, uint64_t sum_ns) {
  static const std::vector<double> bounds = latency_bounds();
  std::vector<uint64_t> counts(hist, hist + BG_OBS_HIST_BUCKETS);
  w.histogram(name, l, bounds, counts, sum_ns / 1e9);
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

void write_tc_classes(Writer &w, const std::vector<TcClassesView> &tc) {
  struct Family {
    const char *name;
    const char *help;
    uint64_t TcClassStats::*field;
  };
  static const Family kFamilies[] = {
      {"bpfgate_tc_class_packets_total",
       "Packets of a tc class, passed or not (unclassified: of no class)", &TcClassStats::packets},
      {"bpfgate_tc_class_bytes_total", "Bytes of those packets", &TcClassStats::bytes},
      {"bpfgate_tc_class_drops_total", "Packets of a tc class its policer dropped",
       &TcClassStats::drops},
      {"bpfgate_tc_class_marked_total",
       "Packets of a tc class over its rate, marked with exceed_dscp and passed (egress)",
       &TcClassStats::marked},
      {"bpfgate_tc_class_mirrored_total", "Copies of a tc class's packets sent to its mirror",
       &TcClassStats::mirrored},
  };
  for (const auto &f : kFamilies) {
    w.family(f.name, "counter", f.help);
    for (const auto &t : tc)
      for (const auto &c : t.classes)
        w.sample(f.name,
                 {{"interface", t.iface},
                  {"class", c.unclassified ? "(unclassified)" : c.name},
                  {"direction", c.unclassified ? "both" : core::direction_name(c.def.dirs)}},
                 static_cast<double>(c.*f.field));
  }
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

std::string render_metrics(const std::string &bpffs, const AgentSnapshot &a) {
  Writer w;
  std::vector<FilterView> filters;
  for (const auto &iface : a.interfaces)
    filters.push_back(read_filter(bpffs, iface));

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
  std::vector<FilterStatus> up;
  for (const auto &f : filters)
    if (f.up)
      up.push_back(f.status);
  write_verdicts(w, up);

  auto rule_labels = [&](const FilterView &f, uint32_t id) {
    std::string match;
    auto it = a.rule_names.find(f.iface);
    if (it != a.rule_names.end() && id - 1 < it->second.size())
      match = it->second[id - 1];
    uint32_t act = id < f.rule_defs.size() ? f.rule_defs[id].action : 0;
    return Labels{{"interface", f.iface},
                  {"rule", std::to_string(id)},
                  {"match", match},
                  {"action", act < 3 ? kActionNames[act] : "unknown"}};
  };
  write_datapath_events(w, up);

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
  w.family("bpfgate_map_entries", "gauge",
           "Entries in a BPF map (sources: as of the agent's last sweep)");
  for (const auto &f : filters) {
    if (!f.up)
      continue;
    auto it = a.sources_after_sweep.find(f.iface);
    if (it != a.sources_after_sweep.end())
      w.sample("bpfgate_map_entries", {{"interface", f.iface}, {"map", "sources"}},
               static_cast<double>(it->second));
    w.sample("bpfgate_map_entries", {{"interface", f.iface}, {"map", "blocklist"}},
             static_cast<double>(f.blocks.size()));
    w.sample("bpfgate_map_entries", {{"interface", f.iface}, {"map", "known"}},
             static_cast<double>(f.status.known_sources));
  }
  auto flows = a.services ? count_flows(bpffs) : Result<int64_t>(int64_t{-1});
  if (flows && *flows >= 0)
    w.sample("bpfgate_map_entries", {{"interface", ""}, {"map", "flows"}},
             static_cast<double>(*flows));
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
  if (flows && *flows >= 0)
    w.sample("bpfgate_map_max_entries", {{"interface", ""}, {"map", "flows"}}, BG_OBS_FLOWS_MAX);
  w.family("bpfgate_policy_generation", "gauge", "Policy generation the filter runs");
  for (const auto &f : filters)
    if (f.up)
      w.sample("bpfgate_policy_generation", {{"interface", f.iface}}, f.status.generation);
  write_tc_classes(w, read_tc_classes(bpffs, a.tc_interfaces));

  std::vector<ServiceStats> services;
  if (a.services)
    if (auto s = read_services(bpffs))
      services = std::move(*s);
  auto sl = [](const ServiceStats &s) {
    return Labels{{"service", s.name}, {"port", std::to_string(s.port)}};
  };
  auto with = [](Labels l, const char *k, const std::string &v) {
    l.emplace_back(k, v);
    return l;
  };
  w.family("bpfgate_service_requests_total", "counter",
           "Requests to a service (first payload from a client on an idle connection)");
  for (const auto &s : services)
    w.sample("bpfgate_service_requests_total", sl(s), static_cast<double>(s.total.requests));
  w.family("bpfgate_service_responses_total", "counter",
           "Responses of a service (first payload back after a request)");
  for (const auto &s : services)
    w.sample("bpfgate_service_responses_total", sl(s), static_cast<double>(s.total.responses));
  w.family("bpfgate_service_http_responses_total", "counter",
           "HTTP/1.x responses by status class (other: no HTTP/1.x status line)");
  for (const auto &s : services)
    for (uint32_t c = 0; s.http && c < BG_HTTP_NR; c++)
      w.sample("bpfgate_service_http_responses_total", with(sl(s), "class", kClassNames[c]),
               static_cast<double>(s.total.status[c]));
  w.family("bpfgate_service_request_duration_seconds", "histogram",
           "Time from a request's first byte in to the response's first byte out (log2 "
           "buckets kept in BPF)");
  for (const auto &s : services)
    histogram(w, "bpfgate_service_request_duration_seconds", sl(s), s.total.latency_hist,
              s.total.latency_sum_ns);
  w.family("bpfgate_service_tcp_handshake_duration_seconds", "histogram",
           "Time from a client's SYN to its ACK of the SYN-ACK");
  for (const auto &s : services)
    histogram(w, "bpfgate_service_tcp_handshake_duration_seconds", sl(s), s.total.handshake_hist,
              s.total.handshake_sum_ns);
  w.family("bpfgate_service_tcp_resets_total", "counter",
           "TCP resets on a service's connections (received: from clients, sent: by the service)");
  for (const auto &s : services) {
    w.sample("bpfgate_service_tcp_resets_total", with(sl(s), "direction", "received"),
             static_cast<double>(s.total.resets_rx));
    w.sample("bpfgate_service_tcp_resets_total", with(sl(s), "direction", "sent"),
             static_cast<double>(s.total.resets_tx));
  }
  w.family("bpfgate_service_tcp_retransmits_total", "counter",
           "Segments a service's sockets retransmitted (TCP probes)");
  for (const auto &s : services)
    w.sample("bpfgate_service_tcp_retransmits_total", sl(s),
             static_cast<double>(s.total.retransmits));
  w.family("bpfgate_service_tcp_connections_total", "counter",
           "Connections to a service that became established (TCP probes)");
  for (const auto &s : services)
    w.sample("bpfgate_service_tcp_connections_total", sl(s), static_cast<double>(s.total.accepted));

  // Socket acceleration, read from its pins (whoever enabled it).
  auto acc = accel::status(bpffs);
  bool acc_on = acc && acc->state != accel::State::kOff;
  w.family("bpfgate_accel_enabled", "gauge",
           "1 when socket acceleration is enabled, 0.5 while it drains, 0 when off");
  w.sample("bpfgate_accel_enabled", {},
           !acc_on ? 0 : (acc->state == accel::State::kEnabled ? 1 : 0.5));
  w.family("bpfgate_accel_sockets", "gauge", "Sockets in the acceleration sockhash");
  if (acc_on)
    w.sample("bpfgate_accel_sockets", {}, static_cast<double>(acc->sockets));
  w.family("bpfgate_accel_congested_sockets", "gauge",
           "Sockets marked by the housekeeper for holding too many unread redirected bytes");
  if (acc_on)
    w.sample("bpfgate_accel_congested_sockets", {}, static_cast<double>(acc->congested));
  w.family("bpfgate_accel_messages_total", "counter",
           "Sends seen by the sk_msg program and sockets seen by sock_ops, by what happened");
  for (uint32_t e = 0; acc_on && e < BG_ACCEL_EVENT_NR; e++)
    w.sample("bpfgate_accel_messages_total",
             {{"event", accel::event_name(static_cast<bg_accel_event>(e))}},
             static_cast<double>(acc->counters[e].count));
  w.family("bpfgate_accel_bytes_total", "counter", "Bytes of those sends, by what happened");
  for (uint32_t e = 0; acc_on && e < BG_ACCEL_EVENT_NR; e++)
    w.sample("bpfgate_accel_bytes_total",
             {{"event", accel::event_name(static_cast<bg_accel_event>(e))}},
             static_cast<double>(acc->counters[e].bytes));

  w.family("bpfgate_agent_info", "gauge", "The agent's version and the probes it runs");
  w.sample("bpfgate_agent_info", {{"version", a.version}, {"tcp_probes", a.tcp_probes}}, 1);
  w.family("bpfgate_agent_start_time_seconds", "gauge", "Unix time the agent started");
  w.sample("bpfgate_agent_start_time_seconds", {}, a.start_time_s);
  w.family("bpfgate_agent_reloads_total", "counter", "Config reloads, by result");
  w.sample("bpfgate_agent_reloads_total", {{"result", "ok"}}, static_cast<double>(a.reloads_ok));
  w.sample("bpfgate_agent_reloads_total", {{"result", "error"}},
           static_cast<double>(a.reloads_failed));
  w.family("bpfgate_agent_config_info", "gauge", "The config in force: FNV-1a 64 of its bytes");
  w.sample("bpfgate_agent_config_info", {{"hash", a.config_hash}}, 1);
  w.family("bpfgate_agent_last_reload_timestamp_seconds", "gauge",
           "When the last reload was tried (0: none yet), and whether it applied");
  w.sample("bpfgate_agent_last_reload_timestamp_seconds",
           {{"result", a.last_reload_ok ? "ok" : "error"}}, a.last_reload_s);
  w.family("bpfgate_agent_events_total", "counter", "Events the agent read or made, by type");
  for (const auto &[type, n] : a.events)
    w.sample("bpfgate_agent_events_total", {{"type", type}}, static_cast<double>(n));
  w.family("bpfgate_agent_events_lost_total", "counter",
           "Events the kernel could not queue to the agent (perf buffer overruns)");
  w.sample("bpfgate_agent_events_lost_total", {}, static_cast<double>(a.events_lost));
  w.family("bpfgate_agent_event_log_lines_suppressed_total", "counter",
           "Events the agent did not log (over its log's rate; streamed and counted all the same)");
  w.sample("bpfgate_agent_event_log_lines_suppressed_total", {},
           static_cast<double>(a.event_lines_left_out));
  w.family("bpfgate_agent_event_subscribers", "gauge", "`bpfgate events` clients connected");
  w.sample("bpfgate_agent_event_subscribers", {}, static_cast<double>(a.event_subscribers));
  w.family("bpfgate_agent_event_buffer_info", "gauge",
           "How events reach the agent from each filter (ringbuf, perfbuf, none)");
  for (const auto &[iface, kind] : a.event_buffers)
    w.sample("bpfgate_agent_event_buffer_info", {{"interface", iface}, {"buffer", kind}}, 1);
  return w.text();
}

}  // namespace bpfgate::agent
