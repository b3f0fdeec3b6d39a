// The load balancer bench's environment (bench/lb_nspp.cpp): a network namespace
// the process works in, whose routes and permanent neighbours let bpf_fib_lookup
// answer; the production balancer loaded, pinned and filled by the control
// plane's code; the filter and the balancer as two programs in libxdp's
// dispatcher. Each is removed again when its owner goes, also on failure.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "bpf/xdp_dispatcher.hpp"
#include "features/lb/lb_datapath.hpp"
#include "util/result.hpp"

struct lb;        // lb.skel.h
struct lb_bench;  // lb_bench.skel.h
struct bpf_object;

namespace bpfgate::bench {

constexpr const char *kVip4 = "198.18.2.1", *kVip6 = "2001:db8:2::1";
constexpr const char *kBackends4[] = {"198.18.1.10", "198.18.1.11", "198.18.1.12"};
constexpr const char *kBackends6[] = {"2001:db8:1::10", "2001:db8:1::11", "2001:db8:1::12"};

// What runs of this bench left when they died without their destructors (a signal,
// an abort): the namespaces bglbn-PID and bpffs directories /sys/fs/bpf/bglbn-PID
// of processes no longer alive. Returns how many it removed.
int remove_leftovers();

// The namespace this process works in (entered by make), and its removal.
class BenchNetns {
 public:
  static Result<BenchNetns> make(const std::string &name);
  BenchNetns(BenchNetns &&o) noexcept;
  BenchNetns &operator=(BenchNetns &&) = delete;
  ~BenchNetns();

 private:
  BenchNetns() = default;
  std::string name_;
  int home_ = -1;
  bool made_ = false;
};

// Inside the namespace: the clients' link (lbc0) and the backends' (lbb0),
// forwarding on, permanent neighbours for the backends. No default route.
Status wire();

// The balancer in <dir>/bpfgate-lb, pinned by the control plane's code, with
// two services (kVip4:80/tcp, kVip6:80/tcp) of three backends each; the pins
// (and dir) go when this goes.
class PinnedBalancer {
 public:
  static Result<PinnedBalancer> open(const std::string &dir);
  PinnedBalancer(PinnedBalancer &&o) noexcept;
  PinnedBalancer &operator=(PinnedBalancer &&) = delete;
  ~PinnedBalancer();
  int prog_fd() const { return b_->fd(BG_PIN_LB_PROG); }
  int counters_fd() const { return b_->fd(BG_PIN_LB_COUNTERS); }
  int fd(const std::string &pin) const { return b_->fd(pin.c_str()); }
  const std::string &dir() const { return dir_; }

 private:
  PinnedBalancer() = default;
  std::string dir_;
  std::optional<agent::lb::Balancer> b_;
};

// The balancer's counters (packets), summed over CPUs, by enum bg_lb_counter.
Result<std::vector<uint64_t>> lb_counters(int fd);

// The filter (bg_lbb_filter_ext of the bench's object `bench`, sharing its maps) and the
// balancer (sharing the pinned one's maps) as two extension programs in libxdp's
// dispatcher on `iface`, the filter first and XDP_PASS going on; taken out again
// when this goes.
class Dispatched {
 public:
  static Result<std::unique_ptr<Dispatched>> make(const bpf_object *bench, const PinnedBalancer &lb,
                                                  int ifindex, const std::string &iface);
  ~Dispatched();
  int main_fd() const { return main_; }

 private:
  Dispatched(int ifindex, std::string iface) : ifindex_(ifindex), iface_(std::move(iface)) {}
  int ifindex_;
  std::string iface_;
  lb_bench *filter_ = nullptr;
  struct lb *lb_ = nullptr;
  std::vector<bpf::DispatchedAttachment> attached_;
  int main_ = -1;
};

}  // namespace bpfgate::bench
