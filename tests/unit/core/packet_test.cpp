#include "core/packet.hpp"

#include <gtest/gtest.h>

namespace bpfgate::core {
namespace {

TEST(PacketBuilder, Ipv4UdpHasValidLengthsAndChecksums) {
  auto f = PacketBuilder().ipv4("198.18.0.2", "198.18.0.1").udp(1000, 53).payload(10).build();
  ASSERT_EQ(f.size(), 14u + 20 + 8 + 10);
  EXPECT_EQ(f[12], 0x08);
  EXPECT_EQ(f[13], 0x00);
  EXPECT_EQ((f[16] << 8) | f[17], 38);             // IP total length
  EXPECT_EQ(inet_checksum(f.data() + 14, 20), 0);  // header checksum verifies
  EXPECT_EQ((f[14 + 24] << 8) | f[14 + 25], 18);   // UDP length
}

TEST(PacketBuilder, VlanTagsAreOutermostFirst) {
  auto f = PacketBuilder().vlan(100, 0x88a8).vlan(7).ipv6("2001:db8::1", "2001:db8::2").build();
  EXPECT_EQ((f[12] << 8) | f[13], 0x88a8);
  EXPECT_EQ((f[14] << 8) | f[15], 100);
  EXPECT_EQ((f[16] << 8) | f[17], 0x8100);
  EXPECT_EQ((f[18] << 8) | f[19], 7);
  EXPECT_EQ((f[20] << 8) | f[21], 0x86dd);
}

TEST(PacketBuilder, FrameSizePads) {
  auto f = PacketBuilder().ipv4("198.18.0.2", "198.18.0.1").tcp(1, 2).frame_size(128).build();
  EXPECT_EQ(f.size(), 128u);
}

TEST(PacketBuilder, ParseMacRejectsGarbage) {
  Mac m{};
  EXPECT_TRUE(parse_mac("02:00:00:00:00:0a", m));
  EXPECT_EQ(m[5], 0x0a);
  EXPECT_FALSE(parse_mac("02:00:00:00:00", m));
  EXPECT_FALSE(parse_mac("02:00:00:00:00:100", m));
}

}  // namespace
}  // namespace bpfgate::core
