// The CPUs' hot slots of the XDP filter (struct bg_hot_slot): what they
// counted and have not yet added to the shared entries, for readers.
#include "features/xdp/datapath.hpp"

#include "core/cidr.hpp"

#include <cstring>

namespace bpfgate::agent {

namespace {

// Whether addr lies in the prefix of `plen` bits (of 128) at `net`.
bool in_prefix(const __u8 addr[16], const __u8 net[16], unsigned plen) {
  __u8 a[16], n[16];
  std::memcpy(a, addr, 16);
  std::memcpy(n, net, 16);
  core::mask(a, plen);
  core::mask(n, plen);  // both sides, as the loop it replaced compared them
  return std::memcmp(a, n, 16) == 0;
}

}  // namespace

void add_hot_counts(const std::vector<bg_hot_slot> &slots, const bg_src_key &key,
                    bg_src_state &st) {
  for (const bg_hot_slot &h : slots) {
    if (!h.hot)
      continue;
    if (key.kind == BG_SRC_ADDR && h.key.rule == key.rule &&
        std::memcmp(h.key.addr, key.addr, 16) == 0) {
      st.packets += h.packets;
      st.bytes += h.bytes;
      st.drops += h.drops;
    } else if (key.kind == BG_SRC_PREFIX && in_prefix(h.key.addr, key.addr, key.prefixlen)) {
      st.packets += h.prefix_packets;
      st.bytes += h.prefix_bytes;
    }
  }
}

Result<std::vector<bg_hot_slot>> Datapath::hot_slots() const {
  std::vector<bg_hot_slot> out;
  if (!hot_)
    return out;
  for (__u32 i = 0; i < BG_HOT_SLOTS; i++) {
    auto per_cpu = hot_->lookup(i);
    if (!per_cpu)
      return per_cpu.error();
    for (const bg_hot_slot &h : *per_cpu)
      if (h.hot)
        out.push_back(h);
  }
  return out;
}

Status Datapath::age_hot(uint64_t ns) {
  if (!hot_)
    return {};
  auto back = [ns](__u64 &t) { t = t > ns ? t - ns : 0; };
  for (__u32 i = 0; i < BG_HOT_SLOTS; i++) {
    auto per_cpu = hot_->lookup(i);
    if (!per_cpu)
      return per_cpu.error();
    for (bg_hot_slot &h : *per_cpu) {
      back(h.decided_ns);
      back(h.seen_ns);
      if (h.over_until_ns)
        back(h.over_until_ns);
    }
    if (auto st = hot_->update(i, *per_cpu); !st)
      return st;
  }
  return {};
}

}  // namespace bpfgate::agent
