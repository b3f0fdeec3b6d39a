// tc programs on an interface's clsact hook through libbpf's bpf_tc_* API
// (libbpf 1.1 has no tcx), the one way every feature attaches them. A
// TcFilter owns one filter (ingress or egress) and removes it when it goes,
// unless released: tc filters are not bpf_links and outlive the process that
// attached them (the tc datapath releases its filters; the probes keep theirs
// for as long as the agent runs).
#pragma once

#include <cstdint>
#include <string>

#include "util/result.hpp"

namespace bpfgate::bpf {

enum class TcDirection { kIngress, kEgress };

std::string to_string(TcDirection d);
inline TcDirection tc_direction(bool egress) {
  return egress ? TcDirection::kEgress : TcDirection::kIngress;
}

// Creates the clsact qdisc on an interface: true when it did, false when
// there was one (shared: other filters on it stay).
Result<bool> clsact_create(int ifindex, const std::string &iface);
// Removes the clsact qdisc and every filter on it (absent is fine).
Status clsact_destroy(int ifindex);

class TcFilter {
 public:
  // Creates the clsact qdisc if the interface has none (an existing one is
  // shared: other filters on it stay), then attaches prog_fd at `priority`
  // (also the handle), replacing a filter of ours left by an earlier run.
  static Result<TcFilter> attach(int prog_fd, int ifindex, const std::string &iface,
                                 TcDirection dir, uint32_t priority);
  TcFilter(TcFilter &&o) noexcept;
  TcFilter &operator=(TcFilter &&o) noexcept;
  TcFilter(const TcFilter &) = delete;
  TcFilter &operator=(const TcFilter &) = delete;
  ~TcFilter();

  // Removes the filter now (the clsact qdisc stays: others may use it).
  Status detach();
  // Leaves the filter attached when the owner goes.
  void release() { ifindex_ = 0; }
  uint32_t prog_id() const { return prog_id_; }
  const std::string &iface() const { return iface_; }
  TcDirection direction() const { return dir_; }

 private:
  TcFilter() = default;
  int ifindex_ = 0;
  std::string iface_;
  TcDirection dir_ = TcDirection::kIngress;
  uint32_t priority_ = 0;
  uint32_t prog_id_ = 0;
};

// Removes our filter (priority and handle) from an interface if present.
Status tc_detach(int ifindex, TcDirection dir, uint32_t priority);
// The id of the program attached at `priority` (0: none).
Result<uint32_t> tc_query(int ifindex, TcDirection dir, uint32_t priority);

}  // namespace bpfgate::bpf
