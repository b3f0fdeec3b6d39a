#include "agent/metrics.hpp"

#include "features/accel/metrics.hpp"
#include "features/lb/metrics.hpp"
#include "features/fleet/metrics.hpp"
#include "features/observe/metrics.hpp"
#include "features/observe/probes.hpp"
#include "features/tc/metrics.hpp"
#include "features/xdp/metrics.hpp"

namespace bpfgate::agent {

namespace {

using core::prom::Writer;

// The observer's flows map, shown with the filters' maps (interface "").
std::vector<MapFill> observer_maps(const std::string &bpffs, bool services) {
  auto flows = services ? count_flows(bpffs) : Result<int64_t>(int64_t{-1});
  if (!flows || *flows < 0)
    return {};
  return {{"", "flows", static_cast<uint64_t>(*flows), BG_OBS_FLOWS_MAX}};
}

void write_agent(Writer &w, const AgentSnapshot &a) {
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
}

void write_agent_events(Writer &w, const AgentSnapshot &a) {
  w.family("bpfgate_agent_events_total", "counter", "Events the agent read or made, by type");
  for (const auto &[type, n] : a.events)
    w.sample("bpfgate_agent_events_total", {{"type", type}}, static_cast<double>(n));
  w.family("bpfgate_agent_events_lost_total", "counter",
           "Events the kernel could not queue to the agent (perf buffer overruns)");
  w.sample("bpfgate_agent_events_lost_total", {}, static_cast<double>(a.events_lost));
  w.family("bpfgate_agent_event_log_lines_suppressed_total", "counter",
           "Events the agent did not log (over its log's rate; streamed and "
           "counted all the same)");
  w.sample("bpfgate_agent_event_log_lines_suppressed_total", {},
           static_cast<double>(a.event_lines_left_out));
  w.family("bpfgate_agent_event_subscribers", "gauge", "`bpfgate events` clients connected");
  w.sample("bpfgate_agent_event_subscribers", {}, static_cast<double>(a.event_subscribers));
  w.family("bpfgate_agent_event_buffer_info", "gauge",
           "How events reach the agent from each filter (ringbuf, perfbuf, none)");
  for (const auto &[iface, kind] : a.event_buffers)
    w.sample("bpfgate_agent_event_buffer_info", {{"interface", iface}, {"buffer", kind}}, 1);
}

}  // namespace

std::string render_metrics(const std::string &bpffs, const AgentSnapshot &a) {
  Writer w;
  write_filter_metrics(w, bpffs,
                       {.interfaces = a.interfaces,
                        .rule_names = a.rule_names,
                        .sources_after_sweep = a.sources_after_sweep,
                        .other_maps = observer_maps(bpffs, a.services)});
  write_tc_metrics(w, bpffs, a.tc_interfaces);
  write_service_metrics(w, bpffs, a.services);
  accel::write_metrics(w, bpffs);
  lb::write_metrics(w, bpffs);
  fleet::write_metrics(w, fleet::stats());
  write_agent(w, a);
  write_agent_events(w, a);
  return w.text();
}

}  // namespace bpfgate::agent
