// Per-service probes (include/bpfgate/abi/observe.h): the tc programs that
// time requests on the agent's interfaces, and the TCP tracing programs that
// count retransmits and accepted connections, loaded in the best form this
// kernel allows:
//   fexit       fexit/tcp_retransmit_skb + tp_btf/inet_sock_set_state (BTF, trampolines)
//   tp_btf      tp_btf/tcp_retransmit_skb + tp_btf/inet_sock_set_state (BTF)
//   tracepoint  classic tracepoints, field offsets read from tracefs (no BTF)
// `auto` tries them in that order and says why it moved on. The service maps
// are pinned under <bpffs>/bpfgate-observe/, so counters survive a restart of
// the agent and any process can read them.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "bpf/tc_attach.hpp"
#include "bpfgate/abi/observe.h"
#include "core/config.hpp"
#include "util/result.hpp"

namespace bpfgate::agent {

std::string observe_pin_dir(const std::string &bpffs);

class ServiceProbes {
 public:
  // tcp_mode: auto|fexit|tp_btf|tracepoint|off (a named mode that cannot
  // load is an error; auto falls back).
  static Result<std::unique_ptr<ServiceProbes>> load(const std::string &bpffs,
                                                     const std::string &tcp_mode);
  ~ServiceProbes();
  ServiceProbes(const ServiceProbes &) = delete;
  ServiceProbes &operator=(const ServiceProbes &) = delete;

  // Replaces the set of services (ids follow the list's order).
  Status set_services(const std::vector<core::ServiceConfig> &services);
  // tc ingress and egress on iface (replacing ours from an earlier run).
  Status attach(const std::string &iface);
  void detach(const std::string &iface);
  std::vector<std::string> attached() const;
  // Leaves every tc program attached when this goes (keep_datapath).
  void release_all();

  // The TCP probes in use (fexit, tp_btf, tracepoint, off) and, when auto
  // fell back or they are off, why.
  const std::string &tcp_mode() const { return tcp_mode_; }
  const std::string &tcp_note() const { return tcp_note_; }
  int ingress_prog_fd() const;
  int egress_prog_fd() const;

 private:
  struct Impl;
  explicit ServiceProbes(std::unique_ptr<Impl> impl);
  Status load_tcp(const std::string &mode);
  Status try_tcp(const std::string &mode);  // one of fexit, tp_btf, tracepoint
  std::unique_ptr<Impl> impl_;
  std::map<std::string, std::pair<bpf::TcFilter, bpf::TcFilter>> tc_;
  std::string tcp_mode_ = "off", tcp_note_;
};

struct ServiceStats {
  uint32_t id = 0;
  std::string name;
  uint16_t port = 0;
  bool http = false;
  bg_obs_stats total{};  // summed over CPUs
};
// The services pinned under <bpffs>/bpfgate-observe/ with their counters,
// from any process; empty when no probes were ever loaded.
Result<std::vector<ServiceStats>> read_services(const std::string &bpffs);
// Entries in the flows map (for map fill levels); -1 when not pinned.
Result<int64_t> count_flows(const std::string &bpffs);
// Removes the pins (when the agent stops without keep_datapath).
void remove_observe_pins(const std::string &bpffs);

// The upper bound of a log2 histogram bucket, in seconds (2^bucket us).
double bucket_upper_seconds(uint32_t bucket);
// The q-quantile (0..1) from a bucket histogram: the upper bound of the bucket
// it falls in (a log2 histogram's answer is good to a factor of two).
double quantile_seconds(const __u64 (&hist)[BG_OBS_HIST_BUCKETS], double q);

}  // namespace bpfgate::agent
