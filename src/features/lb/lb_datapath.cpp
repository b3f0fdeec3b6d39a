// The balancer's datapath: load or adopt (this file), apply a generation
// (lb_apply.cpp), hand to filters and attach alone (lb_attach.cpp).
#include "features/lb/lb_datapath.hpp"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "bpf/map.hpp"
#include "bpf/object.hpp"
#include "bpf/pin.hpp"
#include "bpfgate/abi/xdp.h"
#include "lb.skel.h"
#include "util/log.hpp"

namespace bpfgate::agent::lb {

namespace {

using LbSkel = bpf::Skeleton<bpf::SkeletonTraits<struct lb, lb__open_opts, lb__load, lb__destroy>>;

Status write_ctl(const bpf::PinSet &set, const Geometry &g, bool keep_active) {
  bpf::Map<__u32, bg_lb_ctl> ctl(set.fd(BG_PIN_LB_CTL));
  __u32 zero = 0;
  auto cur = ctl.lookup(zero);
  if (!cur)
    return cur.error().context("read the balancer's ctl");
  bg_lb_ctl c = cur->value_or(bg_lb_ctl{});
  if (!keep_active)
    c.active = 0;
  c.ring_size = g.table_size;
  c.conn_idle_ns = g.idle_ns;
  return ctl.update(zero, c);
}

Result<bpf::PinSet> load(const std::string &bpffs, const Geometry &g) {
  auto skel = LbSkel::open("lb");
  if (!skel)
    return skel.error();
  bpf_map__set_max_entries((*skel)->maps.bg_lb_ring, 2 * BG_LB_SERVICES_MAX * g.table_size);
  bpf_map__set_max_entries((*skel)->maps.bg_lb_conns, g.connections);
  bpf_map__set_max_entries((*skel)->maps.bg_lb_reverse, g.connections);
  if (auto st = skel->load(); !st)
    return st.error();
  auto empty = pins(bpffs);
  auto set = bpf::PinSet::from_object(empty.dir(), empty.specs(), (*skel)->obj);
  if (!set)
    return set.error();
  if (auto st = write_ctl(*set, g, false); !st)
    return st.error();
  if (auto st = set->pin(); !st)
    return st.error();
  return set;
}

}  // namespace

std::string pin_dir(const std::string &bpffs) {
  return bpf::feature_dir(bpffs, std::string("bpfgate-") + BG_LB_PIN_DIR);
}

std::string link_pin(const std::string &iface) {
  return BG_PIN_LB_LINK_PREFIX + iface;
}

bpf::PinSet pins(const std::string &bpffs) {
  return bpf::PinSet(pin_dir(bpffs),
                     {bpf::map_pin<__u32, bg_lb_ctl>(BG_PIN_LB_CTL, "bg_lb_ctl"),
                      bpf::map_pin<bg_lb_vip_key, bg_lb_service>(BG_PIN_LB_VIPS, "bg_lb_vips"),
                      bpf::map_pin<__u32, __u32>(BG_PIN_LB_RING, "bg_lb_ring"),
                      bpf::map_pin<__u32, bg_lb_backend>(BG_PIN_LB_BACKENDS, "bg_lb_backends"),
                      bpf::map_pin<bg_lb_conn_key, bg_lb_conn>(BG_PIN_LB_CONNS, "bg_lb_conns"),
                      bpf::map_pin<bg_lb_rev_key, bg_lb_rev>(BG_PIN_LB_REVERSE, "bg_lb_reverse"),
                      bpf::map_pin<__u32, bg_lb_backend_stats>(BG_PIN_LB_STATS, "bg_lb_stats"),
                      bpf::map_pin<__u32, bg_counter>(BG_PIN_LB_COUNTERS, "bg_lb_counters"),
                      bpf::prog_pin(BG_PIN_LB_PROG, "bg_xdp_lb")});
}

Result<PinnedGeometry> read_geometry(const std::string &bpffs) {
  auto set = bpf::PinSet::adopt(pin_dir(bpffs), pins(bpffs).specs());
  if (!set)
    return set.error();
  PinnedGeometry g;
  auto ring = bpf::map_info(set->fd(BG_PIN_LB_RING));
  auto conns = bpf::map_info(set->fd(BG_PIN_LB_CONNS));
  if (!ring || !conns)
    return !ring ? ring.error() : conns.error();
  g.ring_entries = ring->max_entries;
  g.conns = conns->max_entries;
  bpf::Map<__u32, bg_lb_ctl> ctl(set->fd(BG_PIN_LB_CTL));
  auto c = ctl.lookup(0);
  if (!c)
    return c.error();
  g.ctl = c->value_or(bg_lb_ctl{});
  return g;
}

Result<Balancer> Balancer::open(const std::string &bpffs, const Geometry &g, bool replace_other) {
  if (auto st = bpf::ensure_bpffs(bpffs); !st)
    return st.error();
  auto empty = pins(bpffs);
  auto held = empty.lock(true);
  if (!held)
    return held.error();
  if (bpf::exists(empty.path(BG_PIN_LB_CTL))) {
    auto pinned = read_geometry(bpffs);
    bool same = pinned && pinned->ring_entries == 2 * BG_LB_SERVICES_MAX * g.table_size &&
                pinned->conns == g.connections;
    if (same) {
      auto set = bpf::PinSet::adopt(empty.dir(), empty.specs());
      if (!set)
        return set.error();
      if (auto st = write_ctl(*set, g, true); !st)
        return st.error();
      Balancer b(bpffs, std::move(*set), g);
      b.adopted_ = true;
      return b;
    }
    std::string was =
        pinned ? fmt::format("table_size {}, connections {}",
                             pinned->ring_entries / (2 * BG_LB_SERVICES_MAX), pinned->conns)
               : pinned.error().what();
    if (!replace_other)
      return make_error(EEXIST,
                        "the pinned balancer ({}) is not what the config asks (table_size "
                        "{}, connections {}): restart the agent to change it",
                        was, g.table_size, g.connections);
    log::warn(
        "load balancer: the pinned one ({}) is replaced by one of table_size {}, "
        "connections {}: its connection table is lost",
        was, g.table_size, g.connections);
    Balancer old(bpffs, pins(bpffs), g);
    if (auto st = old.remove(); !st)
      return st.error();
  }
  auto set = load(bpffs, g);
  if (!set)
    return set.error();
  return Balancer(bpffs, std::move(*set), g);
}

uint32_t Balancer::prog_id() const {
  auto id = bpf::prog_id_of(set_.fd(BG_PIN_LB_PROG));
  return id ? *id : 0;
}

}  // namespace bpfgate::agent::lb
