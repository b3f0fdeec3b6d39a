// The ABI shared by BPF and C++: sizes and offsets pinned, so a change on one
// side that the other does not see fails here.
#include <gtest/gtest.h>

#include <cstddef>

#include "bpfgate/abi/xdp.h"

namespace {

static_assert(sizeof(bg_counter) == 16);
static_assert(sizeof(bg_limit) == 32);
static_assert(sizeof(bg_src_key) == 24);
static_assert(offsetof(bg_src_key, rule) == 16);
static_assert(offsetof(bg_src_key, kind) == 18);
static_assert(offsetof(bg_src_key, prefixlen) == 19);
static_assert(sizeof(bg_src_state) == 64);
static_assert(offsetof(bg_src_state, tat_ns) == 0);
static_assert(offsetof(bg_src_state, last_seen_ns) == 8);
static_assert(offsetof(bg_src_state, packets) == 16);
static_assert(offsetof(bg_src_state, bytes) == 24);
static_assert(offsetof(bg_src_state, drops) == 32);
static_assert(offsetof(bg_src_state, first_seen_ns) == 40);
static_assert(offsetof(bg_src_state, over_since_ns) == 48);
static_assert(offsetof(bg_src_state, last_drop_ns) == 56);
static_assert(sizeof(bg_lpm_key) == 20);
static_assert(offsetof(bg_lpm_key, addr) == 4);
static_assert(sizeof(bg_rule) == 40);
static_assert(offsetof(bg_rule, action) == 32);
static_assert(sizeof(bg_block) == 32);
static_assert(offsetof(bg_block, reason) == 24);
static_assert(sizeof(bg_settings) == 56);
static_assert(offsetof(bg_settings, block_after_ns) == 32);
static_assert(offsetof(bg_settings, prefix_v4) == 48);
static_assert(offsetof(bg_settings, unparsed_verdict) == 52);
static_assert(sizeof(bg_config) == 128);
static_assert(offsetof(bg_config, active) == 0);
static_assert(offsetof(bg_config, generation) == 8);
static_assert(offsetof(bg_config, gen) == 16);

TEST(Abi, CounterKeysAreDenseAndDistinct) {
  std::vector<bool> seen(BG_COUNTER_NR, false);
  for (uint32_t v = 0; v < BG_VERDICT_NR; v++)
    for (uint32_t r = 0; r < BG_REASON_NR; r++) {
      uint32_t k = bg_counter_key(v, r);
      ASSERT_LT(k, static_cast<uint32_t>(BG_COUNTER_NR));
      EXPECT_FALSE(seen[k]);
      seen[k] = true;
    }
}

}  // namespace
