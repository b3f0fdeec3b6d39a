// Socket acceleration without a kernel: the ABI shared with the BPF side
// (sizes and offsets pinned) and the parsing of operator input.
#include <gtest/gtest.h>

#include <cstddef>
#include <set>

#include "features/accel/accel.hpp"
#include "bpfgate/abi/accel.h"

namespace bpfgate {
namespace {

static_assert(sizeof(bg_accel_key) == 48);
static_assert(offsetof(bg_accel_key, local_ip) == 0);
static_assert(offsetof(bg_accel_key, remote_ip) == 16);
static_assert(offsetof(bg_accel_key, netns_cookie) == 32);
static_assert(offsetof(bg_accel_key, local_port) == 40);
static_assert(offsetof(bg_accel_key, remote_port) == 42);
static_assert(sizeof(bg_accel_sk_state) == 56);
static_assert(offsetof(bg_accel_sk_state, key) == 8);
static_assert(sizeof(bg_accel_config) == 24);
static_assert(offsetof(bg_accel_config, cgroup_id) == 8);
static_assert(offsetof(bg_accel_config, flags) == 16);
static_assert(offsetof(bg_accel_config, generation) == 20);
static_assert(sizeof(bg_accel_counter) == 16);
static_assert(sizeof(bg_accel_sweep_rec) == 64);
static_assert(offsetof(bg_accel_sweep_rec, rmem_alloc) == 48);
static_assert(offsetof(bg_accel_sweep_rec, sk_flags) == 52);
static_assert(offsetof(bg_accel_sweep_rec, ingress_pending) == 56);
static_assert(BG_ACCEL_PORT_WORDS * 32 == 65536);

using agent::accel::parse_ports;

TEST(AccelPorts, ListsAndRanges) {
  auto p = parse_ports("8080,443,9000-9002,443");
  ASSERT_TRUE(p.ok()) << p.error().what();
  EXPECT_EQ(*p, (std::vector<uint16_t>{443, 8080, 9000, 9001, 9002}));
  auto all = parse_ports("1-65535");
  ASSERT_TRUE(all.ok());
  EXPECT_EQ(all->size(), 65535u);
  EXPECT_EQ(parse_ports("65535")->front(), 65535);
}

TEST(AccelPorts, BadItemsAreNamed) {
  for (const auto &[text, msg] : std::vector<std::pair<std::string, std::string>>{
           {"0", "'0' in port list '0' is not a port (1-65535)"},
           {"65536", "'65536'"},
           {"80,", "'' in port list '80,'"},
           {"80,,81", "'' in port list"},
           {"-5", "'-5'"},
           {"5-", "'5-'"},
           {"9-3", "'9-3' in port list '9-3' is a range that ends before it starts"},
           {"8o", "'8o'"},
           {"", "''"},
       }) {
    auto p = parse_ports(text);
    ASSERT_FALSE(p.ok()) << text;
    EXPECT_NE(p.error().message().find(msg), std::string::npos) << p.error().message();
  }
}

TEST(AccelEvents, NamesAreDistinct) {
  std::set<std::string> names;
  for (uint32_t e = 0; e < BG_ACCEL_EVENT_NR; e++) {
    auto n = agent::accel::event_name(static_cast<bg_accel_event>(e));
    EXPECT_NE(n, "unknown") << e;
    EXPECT_TRUE(names.insert(n).second) << n;
  }
}

}  // namespace
}  // namespace bpfgate
