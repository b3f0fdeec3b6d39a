#include "core/addr.hpp"

#include <gtest/gtest.h>

namespace bpfgate::core {
namespace {

TEST(Addr, V4IsStoredV4MappedAndRoundTrips) {
  auto k = parse_addr("198.18.0.1");
  ASSERT_TRUE(k);
  EXPECT_TRUE(is_v4_mapped(*k));
  EXPECT_EQ(k->addr[10], 0xff);
  EXPECT_EQ(k->addr[12], 198);
  EXPECT_EQ(format_addr(*k), "198.18.0.1");
}

TEST(Addr, V6RoundTrips) {
  auto k = parse_addr("2001:db8::42");
  ASSERT_TRUE(k);
  EXPECT_FALSE(is_v4_mapped(*k));
  EXPECT_EQ(format_addr(*k), "2001:db8::42");
}

TEST(Addr, GarbageIsRejected) {
  EXPECT_FALSE(parse_addr(""));
  EXPECT_FALSE(parse_addr("198.18.0"));
  EXPECT_FALSE(parse_addr("198.18.0.1/24"));
  EXPECT_FALSE(parse_addr("2001:db8::g"));
}

}  // namespace
}  // namespace bpfgate::core
