// Socket acceleration's status, from the pins, from any process; the names
// of its states and counters.
#include <bpf/bpf.h>

#include <algorithm>
#include <cstring>

#include "bpf/map.hpp"
#include "bpf/pin.hpp"
#include "core/cidr.hpp"
#include "features/accel/accel.hpp"
#include "features/accel/accel_host.hpp"
#include "features/accel/accel_pins.hpp"

namespace bpfgate::agent::accel {

namespace {

uint64_t sum_fallback(const Counters &c, bool bytes) {
  uint64_t n = 0;
  for (auto e : {BG_ACCEL_MSG_NO_PEER, BG_ACCEL_MSG_FALLBACK, BG_ACCEL_MSG_DRAINING,
                 BG_ACCEL_MSG_NO_STATE, BG_ACCEL_MSG_BACKLOG})
    n += bytes ? c[e].bytes : c[e].count;
  return n;
}

// The sockhash's size and fill, and the sockets marked congested.
Status read_sockets(const bpf::PinSet &set, int sockets_fd, AccelStatus &s) {
  auto minfo = bpf::map_info(sockets_fd);
  if (!minfo)
    return minfo.error();
  s.max_sockets = minfo->max_entries;
  auto n = count_sockets(sockets_fd);
  if (!n)
    return n.error();
  s.sockets = *n;
  if (auto congested = bpf::open_pinned(set.path(BG_ACCEL_PIN_CONGESTED)); congested) {
    auto c = count_sockets(congested->get());  // keyed like the sockhash
    if (c)
      s.congested = *c;
  }
  return {};
}

// Enabled or draining, the cgroup, and the programs' and link's ids.
Result<bg_accel_config> read_state(const bpf::PinSet &set, AccelStatus &s) {
  auto config = ConfigMap::open_pinned(set.path(BG_ACCEL_PIN_CONFIG));
  if (!config)
    return config.error();
  auto cfg = config->lookup(0);
  if (!cfg)
    return cfg.error();
  bg_accel_config c = cfg->value_or(bg_accel_config{});
  s.state = (c.flags & BG_ACCEL_F_DRAINING) ? State::kDraining : State::kEnabled;
  s.cgroup_id = c.cgroup_id;
  if (s.state == State::kEnabled) {
    if (auto link = bpf::open_pinned(set.path(BG_ACCEL_PIN_LINK)); link) {
      if (auto info = bpf::link_info(link->get()); info) {
        s.link_id = info->id;
        s.sockops_prog_id = info->prog_id;
        s.cgroup_id = info->cgroup_id;
      }
    }
    if (auto root = unified_hierarchy(); root)
      s.cgroup = cgroup_path_of(*root, s.cgroup_id);
  }
  if (auto msg = bpf::open_pinned(set.path(BG_ACCEL_PIN_MSG)); msg)
    if (auto id = bpf::prog_id_of(msg->get()); id)
      s.msg_prog_id = *id;
  return c;
}

Status read_ports(const bpf::PinSet &set, AccelStatus &s) {
  auto ports = PortsMap::open_pinned(set.path(BG_ACCEL_PIN_PORTS));
  if (!ports)
    return ports.error();
  for (__u32 w = 0; w < BG_ACCEL_PORT_WORDS; w++) {
    auto bits = ports->lookup(w);
    if (!bits)
      return bits.error();
    __u32 v = bits->value_or(0);
    for (unsigned b = 0; v && b < 32; b++)
      if (v & (1U << b))
        s.ports.push_back(static_cast<uint16_t>(w * 32 + b));
  }
  return {};
}

Status read_addresses(const bpf::PinSet &set, AccelStatus &s) {
  auto addrs = AddrMap::open_pinned(set.path(BG_ACCEL_PIN_ADDRS));
  if (!addrs)
    return addrs.error();
  auto entries = addrs->dump();
  if (!entries)
    return entries.error();
  std::vector<core::Prefix> prefixes;
  for (const auto &[k, v] : *entries) {
    static const uint8_t kMapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    core::Prefix p;
    p.key = k;
    p.v4 = k.prefixlen >= 96 && std::memcmp(k.addr, kMapped, sizeof(kMapped)) == 0;
    prefixes.push_back(p);
  }
  std::sort(prefixes.begin(), prefixes.end());
  for (const auto &p : prefixes)
    s.addresses.push_back(core::format_prefix(p));
  return {};
}

Status read_counters(const bpf::PinSet &set, AccelStatus &s) {
  auto counters = CounterMap::open_pinned(set.path(BG_ACCEL_PIN_COUNTERS));
  if (!counters)
    return counters.error();
  for (__u32 e = 0; e < BG_ACCEL_EVENT_NR; e++) {
    auto per_cpu = counters->lookup(e);
    if (!per_cpu)
      return per_cpu.error();
    for (const auto &v : *per_cpu) {
      s.counters[e].count += v.count;
      s.counters[e].bytes += v.bytes;
    }
  }
  return {};
}

}  // namespace

std::string to_string(State s) {
  switch (s) {
    case State::kOff:
      return "off";
    case State::kEnabled:
      return "enabled";
    case State::kDraining:
      return "draining";
  }
  return "unknown";
}

std::string event_name(bg_accel_event e) {
  switch (e) {
    case BG_ACCEL_SOCK_ADDED:
      return "sockets_added";
    case BG_ACCEL_SOCK_ADD_FAILED:
      return "sockets_add_failed";
    case BG_ACCEL_SOCK_SKIPPED:
      return "sockets_skipped";
    case BG_ACCEL_MSG_REDIRECTED:
      return "redirected";
    case BG_ACCEL_MSG_NO_PEER:
      return "fallback_no_peer";
    case BG_ACCEL_MSG_FALLBACK:
      return "fallback_earlier";
    case BG_ACCEL_MSG_DRAINING:
      return "fallback_draining";
    case BG_ACCEL_MSG_NO_STATE:
      return "fallback_no_state";
    case BG_ACCEL_MSG_BACKLOG:
      return "fallback_backlog";
    case BG_ACCEL_EVENT_NR:
      break;
  }
  return "unknown";
}

uint64_t AccelStatus::fallback_messages() const {
  return sum_fallback(counters, false);
}
uint64_t AccelStatus::fallback_bytes() const {
  return sum_fallback(counters, true);
}

Result<AccelStatus> status(const std::string &bpffs) {
  AccelStatus s;
  if (auto st = bpf::ensure_bpffs(bpffs); !st)
    return st.error();
  bpf::PinSet set = pins(bpffs);
  if (!bpf::exists(set.path(BG_ACCEL_PIN_SOCKETS)))
    return s;
  auto sockets = bpf::open_pinned(set.path(BG_ACCEL_PIN_SOCKETS));
  if (!sockets) {
    if (sockets.error().err() == ENOENT)  // disabled while we looked
      return s;
    return sockets.error();
  }
  if (auto st = read_sockets(set, sockets->get(), s); !st)
    return st.error();
  auto cfg = read_state(set, s);
  if (!cfg)
    return cfg.error();
  if (!(cfg->flags & BG_ACCEL_F_ANY_PORT))
    if (auto st = read_ports(set, s); !st)
      return st.error();
  if (auto st = read_addresses(set, s); !st)
    return st.error();
  if (auto st = read_counters(set, s); !st)
    return st.error();
  return s;
}

}  // namespace bpfgate::agent::accel
