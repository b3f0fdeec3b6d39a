// The balancer's datapath as the control plane drives it: load the `lb`
// object (sized by the config) or adopt it from its pins, write a generation
// of services and Maglev rings and switch to it, hand the program to every
// filter (its `next` program array) and attach it alone where backends'
// replies arrive, take it all away again. Pins: <bpffs>/bpfgate-lb/.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "bpf/pin_set.hpp"
#include "bpf/xdp_mode.hpp"
#include "bpfgate/abi/lb.h"
#include "features/lb/lb_config.hpp"
#include "util/result.hpp"

namespace bpfgate::agent::lb {

// <bpffs>/bpfgate-lb. Not <bpffs>/bpfgate/lb: every directory under
// <bpffs>/bpfgate is taken for a filtered interface (status, top, block).
std::string pin_dir(const std::string &bpffs);
// Every pin but the links (link_<iface>, made as the balancer attaches alone).
bpf::PinSet pins(const std::string &bpffs);
std::string link_pin(const std::string &iface);

// A backend as an apply writes it: its state from the config, the runtime
// overlay, health checks and dynamic weights.
struct PlannedBackend {
  core::LbEndpoint at;  // with its port
  uint32_t weight = 0;  // effective: what the ring is built with
  bool draining = false, down = false;
  uint32_t id = 0;  // set by apply: stable while the backend is configured
  std::string key() const { return core::format_lb_endpoint(at); }
};

struct PlannedService {
  std::string name;
  core::LbEndpoint vip;
  uint8_t proto = 6;
  std::vector<PlannedBackend> backends;
  uint32_t id = 0;  // set by apply
};

struct Geometry {
  uint32_t table_size = BG_LB_RING_DEFAULT;
  uint32_t connections = BG_LB_CONNS_DEFAULT;
  uint64_t idle_ns = 300'000'000'000ULL;
};

// What the pins hold now (for adoption and `lb list`).
struct PinnedGeometry {
  uint32_t ring_entries = 0, conns = 0;
  bg_lb_ctl ctl{};
};

class Balancer {
 public:
  // Adopts the pinned balancer when its maps are this build's and sized as
  // `g` asks (a restarted agent keeps its connections and stats); otherwise
  // (none pinned, or `replace_other` and another size) loads and pins a new one.
  static Result<Balancer> open(const std::string &bpffs, const Geometry &g, bool replace_other);

  // Writes generation !active (vips, rings, backends' entries), switches
  // ctl.active to it, then deletes the old generation's vips and frees the ids
  // of backends no longer planned. Fills in the ids. On error nothing
  // switched: the running generation stays.
  Status apply(std::vector<PlannedService> &services);

  // Puts the program in slot BG_NEXT_LB of each filter's `next` array; a
  // filter without one gets a note (it predates the balancer).
  void hand_to_filters(std::vector<std::string> &notes);
  // Attaches the program alone on `iface` (native, else generic), pinned as link_<iface>.
  Status attach(const std::string &iface, bpf::XdpMode mode, std::string &note);
  Status detach(const std::string &iface);
  std::vector<std::string> attached() const;  // interfaces with a link_ pin
  // Takes the program out of every filter, detaches every link, unpins all.
  Status remove();

  bool adopted() const { return adopted_; }
  const std::string &dir() const { return set_.dir(); }
  int fd(const char *pin) const { return set_.fd(pin); }
  uint32_t prog_id() const;

 private:
  Balancer(std::string bpffs, bpf::PinSet set, const Geometry &g)
      : bpffs_(std::move(bpffs)), set_(std::move(set)), geometry_(g) {}
  Status assign_ids(std::vector<PlannedService> &services, std::vector<uint32_t> &freed);
  Status write_generation(uint32_t gen, const std::vector<PlannedService> &services);
  Status write_ring(uint32_t slot, const PlannedService &s);

  std::string bpffs_;
  bpf::PinSet set_;
  Geometry geometry_;
  bool adopted_ = false;
  std::map<std::string, uint32_t> service_ids_;  // by name
};

// The pins' geometry, read without adopting (EPROTO: another layout).
Result<PinnedGeometry> read_geometry(const std::string &bpffs);

}  // namespace bpfgate::agent::lb
