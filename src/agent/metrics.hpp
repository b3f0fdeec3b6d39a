// The agent's /metrics: everything read fresh from the pinned maps at each
// scrape (so the HTTP thread never touches the event loop's objects), plus a
// snapshot of the agent's own health that the event loop publishes.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "util/result.hpp"

namespace bpfgate::agent {

// What only the agent knows; copied under a lock by each scrape.
struct AgentSnapshot {
  std::string version;
  double start_time_s = 0;  // unix time
  uint64_t reloads_ok = 0, reloads_failed = 0;
  std::string config_hash;   // of the config in force (core::Config::hash)
  double last_reload_s = 0;  // unix time of the last reload tried (0: none)
  bool last_reload_ok = true;
  std::map<std::string, uint64_t> events;  // by type name
  uint64_t events_lost = 0;
  uint64_t event_lines_left_out = 0;  // `event:` log lines over the log's rate
  uint64_t event_subscribers = 0;
  std::vector<std::string> interfaces;                         // from the config
  std::map<std::string, std::vector<std::string>> rule_names;  // iface -> match by rule id - 1
  std::map<std::string, std::string> event_buffers;            // iface -> ringbuf|perfbuf|none
  std::map<std::string, uint64_t> sources_after_sweep;         // iface -> entries
  std::vector<std::string> tc_interfaces;                      // the config's tc: section
  std::string tcp_probes = "off";                              // fexit|tp_btf|tracepoint|off
  bool services = false;
};

class AgentState {
 public:
  void update(const std::function<void(AgentSnapshot &)> &fn) {
    std::lock_guard<std::mutex> l(mu_);
    fn(s_);
  }
  AgentSnapshot get() const {
    std::lock_guard<std::mutex> l(mu_);
    return s_;
  }

 private:
  mutable std::mutex mu_;
  AgentSnapshot s_;
};

// The whole exposition: each feature's families (features/<name>/metrics.hpp:
// the XDP filters with the maps' fill levels, the tc classes, the services, socket
// acceleration), then the agent's health.
std::string render_metrics(const std::string &bpffs, const AgentSnapshot &agent);

// Serves GET /metrics on its own thread (one epoll loop, bounded: see
// metrics_server.cpp), so a slow or hostile client never holds up the agent.
class MetricsServer {
 public:
  static Result<std::unique_ptr<MetricsServer>> start(const std::string &address, uint16_t port,
                                                      std::function<std::string()> render);
  // Whether address:port can be bound now (the agent asks before it attaches
  // anything, so a taken port is an error at start, not after).
  static Status check_bindable(const std::string &address, uint16_t port);
  // "198.18.0.1:9477", "[::1]:9477": an address and port as messages write them.
  static std::string host_port(const std::string &address, uint16_t port);
  ~MetricsServer();
  const std::string &address() const { return address_; }
  uint16_t port() const { return port_; }

 private:
  struct Impl;
  MetricsServer() = default;
  std::unique_ptr<Impl> impl_;
  std::thread thread_;
  std::string address_;
  uint16_t port_ = 0;
};

}  // namespace bpfgate::agent
