// The tc datapath as the control plane sees it: programs on clsact ingress
// and egress of an interface, stages chained through a program array,
// classes switched atomically, an HTB hierarchy for priorities. Attach
// (load, pin, attach), adopt what is pinned from any process, apply a
// config, enable or disable a stage, read per-class counters, detach.
//
// Pins live under <bpffs>/bpfgate-tc/<iface>/ (bpfgate/abi/tc.h). tc filters
// are not bpf_links: they stay attached after the process that attached
// them exits, like the pinned XDP link, until `bpfgate tc detach`.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "bpf/fd.hpp"
#include "bpf/map.hpp"
#include "bpf/pin_set.hpp"
#include "bpfgate/abi/tc.h"
#include "core/config.hpp"
#include "features/tc/tc_config.hpp"
#include "util/result.hpp"

struct bpf_object;

namespace bpfgate::agent {

// One class's counters, summed over CPUs.
struct TcClassStats {
  std::string name;  // "" for the packets that matched no class
  uint32_t position = 0;
  bool unclassified = false;
  uint64_t packets = 0, bytes = 0, drops = 0, marked = 0, mirrored = 0;
  double rate_bps = 0;  // what passed, over the last complete window (about 1 s)
  bg_tc_class def{};    // the class as the datapath runs it
};

// The programs and maps of one tc datapath, by fd: loaded from the embedded
// object (attach, tests, benchmarks) or opened from pins (any process).
class TcDatapath {
 public:
  // Loads the production object; every stage is in its slot.
  static Result<TcDatapath> load();
  // From a loaded object that defines the tc programs and maps by their
  // names (bpf/tc/tc_progs.h): the production one or a benchmark's.
  static Result<TcDatapath> from_object(const bpf_object *obj);
  static Result<TcDatapath> from_pins(const std::string &dir);
  // Pins every program and map under `dir` (tc_datapath.cpp lists them).
  Status pin(const std::string &dir);
  static std::vector<std::string> pin_names();
  // Removes every pin of a tc datapath under `dir`, and `dir` when empty.
  static Status unpin(const std::string &dir);

  // Writes the classes into the generation not in use and switches to it in
  // one write; sets the stages. Counters and buckets of a position whose
  // class changed start over.
  Status apply(const core::TcImage &image);
  Status set_stage(uint32_t stage, bool on);
  Result<core::TcStages> stages() const;
  Result<bg_tc_config> config() const;
  Status write_config(const bg_tc_config &c);
  // The classes the datapath runs now.
  Result<std::vector<bg_tc_class>> active_classes() const;
  // Per class, then one entry for the unclassified packets.
  Result<std::vector<TcClassStats>> class_stats() const;

  int prog_fd(bool egress) const;
  int stage_fd(uint32_t stage) const;
  bpf::Map<__u32, bg_tc_bucket> &buckets() { return buckets_; }
  bpf::PerCpuMap<__u32, bg_tc_stats> &stats() { return stats_; }

 private:
  explicit TcDatapath(bpf::PinSet pins);

  bpf::PinSet pins_;              // owns every fd; the maps below borrow theirs
  bpf::Map<__u32, __u32> slots_;  // the program array
  bpf::Map<__u32, bg_tc_config> config_;
  bpf::Map<__u32, bg_tc_class> classes_;
  bpf::Map<__u32, bg_tc_bucket> buckets_;
  bpf::PerCpuMap<__u32, bg_tc_stats> stats_;
};

// What `tc attach` and the agent ask for on one interface.
struct TcSetup {
  core::TcImage image;
  std::optional<core::TcHtbConfig> htb;  // none: no HTB (an HTB bpfgate set up is removed)
};

// A config's tc: section compiled against this namespace's interfaces
// (mirror targets by their ifindex).
Result<TcSetup> tc_setup_of(const core::TcConfig &tc);

struct TcStatus {
  std::string iface;
  uint32_t ifindex = 0;                              // 0: the interface is gone; the pins are stale
  uint32_t ingress_prog_id = 0, egress_prog_id = 0;  // what our filters run now (0: none)
  bool attached = false;                             // both filters run our pinned programs
  core::TcStages stages{};
  bg_tc_config config{};
  size_t classes = 0;
};

// <bpffs>/bpfgate-tc/<iface>.
std::string tc_pin_dir(const std::string &bpffs, const std::string &iface);

// Loads, applies `setup`, sets up HTB if asked, attaches to clsact ingress
// and egress (creating clsact if the interface has none) and pins.
Result<TcStatus> tc_attach(const std::string &bpffs, const std::string &iface,
                           const TcSetup &setup);
// Removes our filters, the HTB root and clsact if bpfgate created them (and
// nothing else uses clsact), and the pins.
Status tc_detach(const std::string &bpffs, const std::string &iface);
// Interfaces with a pin directory, whether or not they still exist.
Result<std::vector<std::string>> tc_pinned_interfaces(const std::string &bpffs);

// A tc datapath found pinned under <bpffs>/bpfgate-tc/<iface>/.
class PinnedTc {
 public:
  static Result<PinnedTc> open(const std::string &bpffs, const std::string &iface);
  const std::string &iface() const { return iface_; }
  TcDatapath &datapath() { return dp_; }
  const TcDatapath &datapath() const { return dp_; }
  Result<TcStatus> status() const;
  // Applies classes, stages and HTB, under the pin directory's lock.
  Status apply(const TcSetup &setup);
  Status set_stage(uint32_t stage, bool on);

 private:
  PinnedTc(std::string iface, std::string dir, TcDatapath dp)
      : iface_(std::move(iface)), dir_(std::move(dir)), dp_(std::move(dp)) {}
  std::string iface_, dir_;
  TcDatapath dp_;
};

// What the config's tc: section asks of this namespace (its interfaces and
// mirror targets exist): errors as "FILE:LINE: reason" (features/tc/feature.cpp).
std::vector<std::string> tc_environment_errors(const core::Config &c);
Status tc_check_environment(const core::Config &c);
// Attaches or adopts every interface of `wanted`, applies it, and detaches
// the interfaces of `running` that `wanted` no longer names.
// Each attach and detach is audited (util/audit.hpp) as asked `by`, from the
// config whose hash is `config_hash`.
Status tc_converge(const std::string &bpffs, const std::optional<core::TcConfig> &running,
                   const std::optional<core::TcConfig> &wanted, const std::string &by,
                   const std::string &config_hash);
// At the agent's stop: detaches `running`'s interfaces unless `keep`.
void tc_stop(const std::string &bpffs, const std::optional<core::TcConfig> &running, bool keep,
             const std::string &by);

}  // namespace bpfgate::agent
