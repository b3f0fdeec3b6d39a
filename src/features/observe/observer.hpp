// What the agent shows: the event stream (read from each filter's event
// buffer, logged, and sent to `bpfgate events` clients), /metrics on its own
// thread, and the per-service probes. The daemon owns one Observer and calls
// it at a few points of its loop; everything else lives here.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "features/xdp/blocklist.hpp"
#include "features/observe/events.hpp"
#include "features/xdp/filter.hpp"
#include "agent/metrics.hpp"
#include "features/observe/probes.hpp"
#include "bpf/event_buffer.hpp"
#include "bpf/fd.hpp"
#include "core/config.hpp"
#include "core/line_limit.hpp"

namespace bpfgate::agent {

// `event:` lines the agent logs, at most, a second and at once; the rest are
// counted (bpfgate_agent_event_log_lines_suppressed_total) and the next line
// logged says how many were left out. `bpfgate events` gets every event.
inline constexpr uint64_t kEventLogRate = 20;
inline constexpr uint64_t kEventLogBurst = 200;

class Observer {
 public:
  static Result<std::unique_ptr<Observer>> start(const std::string &bpffs, const core::Config &c,
                                                 const std::map<std::string, PinnedFilter> &f);
  ~Observer();

  // After every successful converge: event buffers, sample intervals,
  // services, tc probes on the configured interfaces, the metrics address.
  // Probes loaded, attached or detached are audited as `by`'s.
  Status apply(const core::Config &c, const std::map<std::string, PinnedFilter> &filters,
               const std::string &by);
  void note_reload(bool ok);
  // The filter of `iface` was attached again (agent/daemon.cpp): its probes
  // went with the old interface and are attached to the new one; with
  // new_maps (a new filter, not the pinned one again) its event buffer too.
  void interface_back(const std::string &iface, bool new_maps);

  // One epoll fd over every event buffer; readable when events wait.
  int fd() const { return epoll_.get(); }
  void on_readable();
  // After each sweep: released blocks, and manual blocks not seen before.
  void on_sweep(const std::string &iface, const Datapath &dp, const SweepReport &r);
  // A control-socket client that asked for "events [json|text] [IFACE]".
  void subscribe(bpf::UniqueFd conn, const std::string &request);
  // The agent stops: keep leaves the tc probes and pins for the next agent.
  void stop(bool keep);

 private:
  Observer() = default;
  void publish(Event e);
  void log_event(const std::string &text);
  void log_left_out();
  Status watch(const std::string &iface, uint64_t sample_interval_ns);
  Status serve_metrics(const core::MetricsConfig &m);
  void sync_snapshot(const core::Config &c);
  // The services' tc probes on every interface of `wanted` that exists.
  Status attach_probes(const std::set<std::string> &wanted, const std::string &by,
                       const std::string &config_hash);

  struct Subscriber {
    bpf::UniqueFd fd;
    bool json = true;
    std::string iface;  // empty: every interface
  };
  struct Source {
    bpf::EventBuffer buffer;
    uint64_t lost_seen = 0;
  };

  std::string bpffs_;
  bpf::UniqueFd epoll_;
  std::map<std::string, Source> sources_;
  std::map<std::string, std::set<std::string>> manual_blocks_;  // iface -> prefixes seen
  std::map<std::string, uint64_t>
      manual_versions_;  // iface -> its blocklist's version when they were
  std::map<std::string, std::vector<std::string>> rule_names_;
  std::vector<Subscriber> subscribers_;
  std::unique_ptr<ServiceProbes> probes_;
  std::unique_ptr<MetricsServer> metrics_;
  core::MetricsConfig metrics_config_;
  uint64_t sample_interval_ns_ = 0;
  std::set<std::string> probe_ifaces_;  // where the config asks for probes
  // The `event:` log lines: a flood of events must not flood the journal.
  core::LineLimiter event_log_{{.rate_pps = kEventLogRate, .burst = kEventLogBurst}};
  AgentState state_;
};

}  // namespace bpfgate::agent
