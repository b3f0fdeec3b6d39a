// read_view: the balancer's pins, read by any process, with the agent's catalog.
#include <arpa/inet.h>
#include <bpf/bpf.h>

#include <algorithm>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <map>

#include "bpf/map.hpp"
#include "bpf/pin.hpp"
#include "features/lb/lb_config.hpp"
#include "features/lb/lb_datapath.hpp"
#include "features/lb/lb_status.hpp"

namespace bpfgate::agent::lb {

namespace {

core::LbEndpoint endpoint_of(const uint8_t *addr, uint16_t port_be) {
  static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  core::LbEndpoint e;
  std::memcpy(e.addr.data(), addr, 16);
  e.port = ntohs(port_be);
  e.v6 = std::memcmp(addr, mapped, 12) != 0;
  return e;
}

uint64_t monotonic_ns() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1'000'000'000ULL + static_cast<uint64_t>(ts.tv_nsec);
}

bg_lb_backend_stats summed(const std::vector<bg_lb_backend_stats> &per_cpu) {
  bg_lb_backend_stats out{};
  for (const auto &s : per_cpu) {
    const auto *src = reinterpret_cast<const uint64_t *>(&s);
    auto *dst = reinterpret_cast<uint64_t *>(&out);
    for (size_t i = 0; i < sizeof(out) / 8; i++)
      dst[i] += src[i];
  }
  return out;
}

// One service's ring: backend id -> entries. Batched where the kernel can.
std::map<uint32_t, uint64_t> read_ring(int fd, uint32_t slot, uint32_t m) {
  std::vector<__u32> keys(m), ids(m);
  __u32 first = slot * m, prev = first - 1, out_batch = 0, count = m;
  std::map<uint32_t, uint64_t> out;
  LIBBPF_OPTS(bpf_map_batch_opts, opts);
  // The kernel reads a batch from the key after in_batch (none: from key 0).
  if (bpf_map_lookup_batch(fd, first ? &prev : nullptr, &out_batch, keys.data(), ids.data(), &count,
                           &opts) != 0 &&
      errno != ENOENT)
    count = 0;
  if (count != m || keys[0] != first) {  // no batch: one by one
    for (uint32_t i = 0; i < m; i++) {
      __u32 k = first + i;
      if (bpf_map_lookup_elem(fd, &k, &ids[i]) != 0)
        ids[i] = 0;
    }
  }
  for (uint32_t i = 0; i < m; i++)
    if (ids[i] != 0)
      out[ids[i]]++;
  return out;
}

std::vector<bg_lb_backend> read_backends(int fd) {
  std::vector<bg_lb_backend> out(BG_LB_BACKENDS_MAX);
  for (__u32 id = 1; id < BG_LB_BACKENDS_MAX; id++)
    if (bpf_map_lookup_elem(fd, &id, &out[id]) != 0)
      out[id] = bg_lb_backend{};
  return out;
}

ServiceView service_view(const bpf::PinSet &set, const LbView &v, const bg_lb_vip_key &k,
                         const bg_lb_service &s, const std::vector<bg_lb_backend> &backends) {
  ServiceView sv;
  sv.id = s.id;
  sv.vip = core::format_lb_endpoint(endpoint_of(k.addr, k.port));
  sv.proto = core::lb_proto_name(k.proto);
  sv.no_backend = s.flags & BG_LB_SVC_NO_BACKEND;
  sv.name = "service-" + std::to_string(s.id);
  auto ring = read_ring(set.fd(BG_PIN_LB_RING), s.slot, v.table_size);
  for (uint32_t id = 1; id < BG_LB_BACKENDS_MAX; id++) {
    const auto &b = backends[id];
    if (!(b.flags & BG_LB_BACKEND_USED) || b.service != s.id)
      continue;
    BackendView bv;
    bv.id = id;
    bv.address = core::format_lb_endpoint(endpoint_of(b.addr, b.port));
    bv.flags = b.flags;
    bv.ring_entries = ring[id];
    sv.backends.push_back(bv);
  }
  return sv;
}

void read_services(const bpf::PinSet &set, LbView &v) {
  bpf::Map<bg_lb_vip_key, bg_lb_service> vips(set.fd(BG_PIN_LB_VIPS));
  auto all = vips.dump();
  if (!all)
    return;
  auto backends = read_backends(set.fd(BG_PIN_LB_BACKENDS));
  for (const auto &[k, s] : *all)
    if (k.gen == v.active)
      v.services.push_back(service_view(set, v, k, s, backends));
  std::sort(v.services.begin(), v.services.end(),
            [](const auto &a, const auto &b) { return a.id < b.id; });
}

void read_stats(const bpf::PinSet &set, LbView &v) {
  bpf::PerCpuMap<__u32, bg_lb_backend_stats> stats(set.fd(BG_PIN_LB_STATS));
  std::map<uint32_t, uint64_t> active;
  bpf::Map<bg_lb_conn_key, bg_lb_conn> conns(set.fd(BG_PIN_LB_CONNS));
  uint64_t now = monotonic_ns();
  if (auto all = conns.dump(); all) {
    v.conns = all->size();
    for (const auto &[k, c] : *all)
      if (c.last_ns + v.idle_ns >= now)
        active[c.backend]++;
  }
  for (auto &s : v.services)
    for (auto &b : s.backends) {
      if (auto per_cpu = stats.lookup(b.id); per_cpu)
        b.stats = summed(*per_cpu);
      b.active_flows = active[b.id];
    }
  bpf::PerCpuMap<__u32, bg_counter> counters(set.fd(BG_PIN_LB_COUNTERS));
  for (__u32 c = 0; c < BG_LB_COUNTER_NR; c++)
    if (auto per_cpu = counters.lookup(c); per_cpu)
      for (const auto &x : *per_cpu) {
        v.counters[c].packets += x.packets;
        v.counters[c].bytes += x.bytes;
      }
}

void join_catalog(LbView &v) {
  for (auto &s : v.services)
    for (const auto &cs : v.catalog)
      if (cs.id == s.id) {
        s.cat = cs;
        s.name = cs.name;
        for (auto &b : s.backends)
          for (const auto &cb : cs.backends)
            if (cb.id == b.id)
              b.cat = cb;
      }
}

}  // namespace

Result<LbView> read_view(const std::string &bpffs, std::optional<Catalog> catalog) {
  std::string dir = pin_dir(bpffs);
  if (!bpf::exists(dir + "/" + BG_PIN_LB_CTL))
    return make_error(ENOENT,
                      "the load balancer is not running (nothing pinned under {}): give the "
                      "agent's config an lb: section",
                      dir);
  auto set = bpf::PinSet::adopt(dir, pins(bpffs).specs());
  if (!set)
    return set.error();
  auto geo = read_geometry(bpffs);
  if (!geo)
    return geo.error();
  LbView v;
  v.table_size = geo->ring_entries / (2 * BG_LB_SERVICES_MAX);
  v.connections = geo->conns;
  v.active = geo->ctl.active;
  v.idle_ns = geo->ctl.conn_idle_ns;
  if (auto id = bpf::prog_id_of(set->fd(BG_PIN_LB_PROG)); id)
    v.prog_id = *id;
  std::error_code ec;
  for (const auto &e : std::filesystem::directory_iterator(dir, ec)) {
    std::string name = e.path().filename().string();
    if (name.rfind(BG_PIN_LB_LINK_PREFIX, 0) == 0)
      v.interfaces.push_back(name.substr(std::strlen(BG_PIN_LB_LINK_PREFIX)));
  }
  std::sort(v.interfaces.begin(), v.interfaces.end());
  read_services(*set, v);
  read_stats(*set, v);
  if (catalog)
    v.catalog = std::move(*catalog);
  join_catalog(v);
  return v;
}

}  // namespace bpfgate::agent::lb
