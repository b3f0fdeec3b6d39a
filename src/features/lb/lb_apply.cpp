// A generation of the balancer's policy: backend ids (stable), Maglev rings
// and vips written beside the running generation, then one write of
// ctl.active switches to it (include/bpfgate/abi/lb.h).
#include <arpa/inet.h>
#include <bpf/bpf.h>

#include <cstring>
#include <map>
#include <set>

#include "bpf/map.hpp"
#include "bpfgate/abi/xdp.h"
#include "features/lb/lb_datapath.hpp"
#include "features/lb/maglev.hpp"

namespace bpfgate::agent::lb {

namespace {

using BackendKey = std::tuple<uint32_t, std::array<uint8_t, 16>, uint16_t>;  // service, addr, port

BackendKey key_of(const bg_lb_backend &b) {
  std::array<uint8_t, 16> a;
  std::memcpy(a.data(), b.addr, 16);
  return {b.service, a, ntohs(b.port)};
}

bool all_zero(const bg_lb_backend &b) {
  static const bg_lb_backend zero{};
  return std::memcmp(&b, &zero, sizeof(b)) == 0;
}

bg_lb_backend entry_of(const PlannedBackend &p, uint32_t service) {
  bg_lb_backend b{};
  std::memcpy(b.addr, p.at.addr.data(), 16);
  b.port = htons(p.at.port);
  b.flags = BG_LB_BACKEND_USED | (p.draining ? BG_LB_BACKEND_DRAINING : 0) |
            (p.down ? BG_LB_BACKEND_DOWN : 0);
  b.service = service;
  return b;
}

// The id of a backend not configured before: one never used if there is one
// (so that flows still pinned to a freed id do not land on a newcomer), else
// one freed. 0: none left.
uint32_t allocate(const std::vector<bg_lb_backend> &table, std::vector<bool> &taken) {
  for (int pass = 0; pass < 2; pass++)
    for (uint32_t id = 1; id < table.size(); id++)
      if (!taken[id] && (pass == 1 || all_zero(table[id]))) {
        taken[id] = true;
        return id;
      }
  return 0;
}

Result<std::vector<bg_lb_backend>> read_backends(int fd) {
  std::vector<bg_lb_backend> table(BG_LB_BACKENDS_MAX);
  for (__u32 id = 0; id < BG_LB_BACKENDS_MAX; id++)
    if (bpf_map_lookup_elem(fd, &id, &table[id]) != 0)
      return Error(errno, "read the balancer's backends");
  return table;
}

// The id of every service: kept by name, recovered from the running vips
// after a restart (same VIP), else the lowest free.
void assign_services(std::vector<PlannedService> &services, std::map<std::string, uint32_t> &ids,
                     const std::map<std::pair<core::LbEndpoint, uint8_t>, uint32_t> &running) {
  std::map<std::string, uint32_t> next;
  std::set<uint32_t> used;
  for (auto &s : services) {
    auto by_name = ids.find(s.name);
    auto by_vip = running.find({s.vip, s.proto});
    uint32_t id = by_name != ids.end()      ? by_name->second
                  : by_vip != running.end() ? by_vip->second
                                            : 0;
    if (id != 0 && used.insert(id).second)
      s.id = id;
  }
  for (auto &s : services) {
    for (uint32_t id = 1; s.id == 0; id++)
      if (used.insert(id).second)
        s.id = id;
    next[s.name] = s.id;
  }
  ids = std::move(next);
}

}  // namespace

// The running generation's services by VIP (to recover ids after a restart).
static std::map<std::pair<core::LbEndpoint, uint8_t>, uint32_t> running_vips(int fd,
                                                                             uint32_t active) {
  std::map<std::pair<core::LbEndpoint, uint8_t>, uint32_t> out;
  auto all = bpf::Map<bg_lb_vip_key, bg_lb_service>(fd).dump();
  if (!all)
    return out;
  for (const auto &[k, v] : *all) {
    if (k.gen != active)
      continue;
    core::LbEndpoint e;
    std::memcpy(e.addr.data(), k.addr, 16);
    e.port = ntohs(k.port);
    static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    e.v6 = std::memcmp(k.addr, mapped, 12) != 0;
    out[{e, k.proto}] = v.id;
  }
  return out;
}

Status Balancer::assign_ids(std::vector<PlannedService> &services, std::vector<uint32_t> &freed) {
  int fd = set_.fd(BG_PIN_LB_BACKENDS);
  auto table = read_backends(fd);
  if (!table)
    return table.error();
  std::map<BackendKey, uint32_t> configured;
  std::vector<bool> taken(BG_LB_BACKENDS_MAX, false);
  taken[0] = true;
  for (uint32_t id = 1; id < BG_LB_BACKENDS_MAX; id++)
    if ((*table)[id].flags & BG_LB_BACKEND_USED)
      configured[key_of((*table)[id])] = id;
  std::set<uint32_t> kept;
  for (auto &s : services)
    for (auto &b : s.backends)
      if (auto it = configured.find({s.id, b.at.addr, b.at.port}); it != configured.end()) {
        b.id = it->second;
        taken[b.id] = true;
        kept.insert(b.id);
      }
  bpf::PerCpuMap<__u32, bg_lb_backend_stats> stats(set_.fd(BG_PIN_LB_STATS));
  bpf::Map<__u32, bg_lb_backend> backends(fd);
  for (auto &s : services)
    for (auto &b : s.backends) {
      if (b.id == 0) {
        b.id = allocate(*table, taken);
        if (b.id == 0)
          return make_error(ENOSPC, "no backend id left ({} at most)", BG_LB_BACKENDS_MAX - 1);
        if (auto st = stats.update_all(b.id, bg_lb_backend_stats{}); !st)
          return st.error().context("reset a new backend's stats");
      }
      if (auto st = backends.update(b.id, entry_of(b, s.id)); !st)
        return st.error().context("write backend " + b.key());
    }
  for (const auto &[key, id] : configured)
    if (!kept.count(id))
      freed.push_back(id);
  return {};
}

Status Balancer::write_ring(uint32_t slot, const PlannedService &s) {
  std::vector<MaglevBackend> in;
  for (const auto &b : s.backends)
    if (!b.down && !b.draining && b.weight > 0)
      in.push_back({b.key(), b.id, b.weight});
  uint32_t m = geometry_.table_size;
  std::vector<uint32_t> table = maglev_table(std::move(in), m);
  std::vector<__u32> keys(m);
  for (uint32_t i = 0; i < m; i++)
    keys[i] = slot * m + i;
  __u32 count = m;
  LIBBPF_OPTS(bpf_map_batch_opts, opts);
  if (bpf_map_update_batch(set_.fd(BG_PIN_LB_RING), keys.data(), table.data(), &count, &opts) == 0)
    return {};
  for (uint32_t i = 0; i < m; i++)  // a kernel without batch updates of arrays
    if (bpf_map_update_elem(set_.fd(BG_PIN_LB_RING), &keys[i], &table[i], BPF_ANY) != 0)
      return Error(errno, "write the Maglev ring of " + s.name);
  return {};
}

Status Balancer::write_generation(uint32_t gen, const std::vector<PlannedService> &services) {
  bpf::Map<bg_lb_vip_key, bg_lb_service> vips(set_.fd(BG_PIN_LB_VIPS));
  auto all = vips.dump();
  if (!all)
    return all.error();
  for (const auto &[k, v] : *all)
    if (k.gen == gen)  // left by an apply that did not finish
      (void)vips.erase(k);
  for (uint32_t i = 0; i < services.size(); i++) {
    const auto &s = services[i];
    uint32_t slot = gen * BG_LB_SERVICES_MAX + i;
    if (auto st = write_ring(slot, s); !st)
      return st;
    bool any = false;
    for (const auto &b : s.backends)
      any = any || (!b.down && !b.draining && b.weight > 0);
    bg_lb_vip_key k{};
    std::memcpy(k.addr, s.vip.addr.data(), 16);
    k.port = htons(s.vip.port);
    k.proto = s.proto;
    k.gen = static_cast<__u8>(gen);
    bg_lb_service v{s.id, slot, any ? 0u : static_cast<__u32>(BG_LB_SVC_NO_BACKEND), 0};
    if (auto st = vips.update(k, v); !st)
      return st.error().context("write the VIP of " + s.name);
  }
  return {};
}

Status Balancer::apply(std::vector<PlannedService> &services) {
  if (services.size() > BG_LB_SERVICES_MAX)
    return make_error(E2BIG, "{} services, at most {}", services.size(), BG_LB_SERVICES_MAX);
  bpf::Map<__u32, bg_lb_ctl> ctl(set_.fd(BG_PIN_LB_CTL));
  auto cur = ctl.lookup(0);
  if (!cur)
    return cur.error();
  bg_lb_ctl c = cur->value_or(bg_lb_ctl{});
  uint32_t gen = c.active ^ 1;
  assign_services(services, service_ids_, running_vips(set_.fd(BG_PIN_LB_VIPS), c.active));
  std::vector<uint32_t> freed;
  if (auto st = assign_ids(services, freed); !st)
    return st;
  if (auto st = write_generation(gen, services); !st)
    return st;
  c.active = gen;
  c.ring_size = geometry_.table_size;
  c.conn_idle_ns = geometry_.idle_ns;
  if (auto st = ctl.update(0, c); !st)
    return st.error().context("switch the balancer's generation");
  bpf::Map<bg_lb_vip_key, bg_lb_service> vips(set_.fd(BG_PIN_LB_VIPS));
  if (auto all = vips.dump(); all)
    for (const auto &[k, v] : *all)
      if (k.gen != gen)
        (void)vips.erase(k);
  bpf::Map<__u32, bg_lb_backend> backends(set_.fd(BG_PIN_LB_BACKENDS));
  for (uint32_t id : freed)
    if (auto b = backends.lookup(id); b && *b) {
      bg_lb_backend e = **b;
      e.flags = 0;  // free; the address stays, so the id is reused last
      (void)backends.update(id, e);
    }
  return {};
}

}  // namespace bpfgate::agent::lb
