// The ABI shared by BPF and C++: sizes and offsets pinned, so a change on one
// side that the other does not see fails here.
#include <gtest/gtest.h>

#include <cstddef>

#include "bpfgate/abi/xdp.h"

namespace {

static_assert(sizeof(bg_counter) == 16);
static_assert(sizeof(bg_src_key) == 16);
static_assert(sizeof(bg_src_state) == 48);
static_assert(offsetof(bg_src_state, tat_ns) == 0);
static_assert(offsetof(bg_src_state, last_seen_ns) == 8);
static_assert(offsetof(bg_src_state, packets) == 16);
static_assert(offsetof(bg_src_state, bytes) == 24);
static_assert(offsetof(bg_src_state, drops) == 32);
static_assert(offsetof(bg_src_state, first_seen_ns) == 40);
static_assert(sizeof(bg_config) == 48);
static_assert(offsetof(bg_config, emission_ns) == 16);
static_assert(offsetof(bg_config, tolerance_ns) == 24);
static_assert(offsetof(bg_config, unparsed_verdict) == 32);
static_assert(offsetof(bg_config, generation) == 40);

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
