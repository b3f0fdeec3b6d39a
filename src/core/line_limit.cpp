#include "core/line_limit.hpp"

#include <utility>

namespace bpfgate::core {

bool LineLimiter::admit(uint64_t now_ns) {
  if (gcra_.admit(tat_ns_, now_ns))
    return true;
  pending_++;
  total_++;
  return false;
}

uint64_t LineLimiter::take_left_out() {
  return std::exchange(pending_, 0);
}

}  // namespace bpfgate::core
