// What readers add to an entry from the CPUs' hot slots (add_hot_counts):
// a source's own counts, and for a prefix bucket those of its sources.
#include <gtest/gtest.h>

#include <cstring>
#include <vector>

#include "core/addr.hpp"
#include "core/cidr.hpp"
#include "features/xdp/datapath.hpp"

namespace bpfgate::agent {
namespace {

bg_src_key addr_key(const char *addr, uint16_t rule) {
  auto a = core::parse_addr(addr);
  EXPECT_TRUE(a.has_value()) << addr;
  bg_src_key k{};
  if (a)
    std::memcpy(k.addr, a->addr, 16);
  k.rule = rule;
  k.kind = BG_SRC_ADDR;
  return k;
}

bg_src_key prefix_key(const char *cidr) {
  auto p = core::parse_prefix(cidr);
  EXPECT_TRUE(p.ok()) << cidr;
  bg_src_key k{};
  std::memcpy(k.addr, p->key.addr, 16);
  k.kind = BG_SRC_PREFIX;
  k.prefixlen = static_cast<uint8_t>(p->key.prefixlen);
  return k;
}

bg_hot_slot slot(const char *addr, uint16_t rule, uint64_t packets, uint64_t drops,
                 uint64_t prefix_packets) {
  bg_hot_slot h{};
  h.key = addr_key(addr, rule);
  h.hot = 1;
  h.packets = packets;
  h.bytes = packets * 100;
  h.drops = drops;
  h.prefix_packets = prefix_packets;
  h.prefix_bytes = prefix_packets * 100;
  return h;
}

TEST(HotCounts, ASourceGetsItsOwnSlotsOnEveryCpu) {
  std::vector<bg_hot_slot> slots = {slot("198.18.0.10", 0, 5, 1, 4),
                                    slot("198.18.0.10", 0, 3, 0, 3),  // another CPU
                                    slot("198.18.0.10", 2, 7, 0, 7),  // its rule 2 bucket
                                    slot("198.18.0.11", 0, 9, 9, 0)};
  bg_src_state st{};
  st.packets = 100;
  st.drops = 10;
  add_hot_counts(slots, addr_key("198.18.0.10", 0), st);
  EXPECT_EQ(st.packets, 108u);
  EXPECT_EQ(st.bytes, 800u);
  EXPECT_EQ(st.drops, 11u);
}

TEST(HotCounts, APrefixGetsWhatItsSourcesPassed) {
  std::vector<bg_hot_slot> slots = {slot("198.18.0.10", 0, 5, 1, 4),
                                    slot("198.18.0.200", 2, 7, 0, 7),
                                    slot("198.18.1.1", 0, 3, 0, 3),  // another /24
                                    slot("2001:db8::1", 0, 2, 0, 2)};
  bg_src_state st{};
  add_hot_counts(slots, prefix_key("198.18.0.0/24"), st);
  EXPECT_EQ(st.packets, 11u);
  EXPECT_EQ(st.bytes, 1100u);
  EXPECT_EQ(st.drops, 0u);
  bg_src_state v6{};
  add_hot_counts(slots, prefix_key("2001:db8::/64"), v6);
  EXPECT_EQ(v6.packets, 2u);
}

TEST(HotCounts, AnEmptySlotAddsNothing) {
  bg_hot_slot empty = slot("198.18.0.10", 0, 5, 1, 4);
  empty.hot = 0;
  bg_src_state st{};
  add_hot_counts({empty}, addr_key("198.18.0.10", 0), st);
  add_hot_counts({empty}, prefix_key("198.18.0.0/24"), st);
  EXPECT_EQ(st.packets, 0u);
}

}  // namespace
}  // namespace bpfgate::agent
