#include "core/limits.hpp"

#include <algorithm>

#include <cerrno>

namespace bpfgate::core {

Status validate(const Limits &l) {
  if (l.rate_pps == 0 || l.rate_pps > BG_RATE_MAX_PPS)
    return make_error(EINVAL, "rate {} pps is out of range: give 1 to {} packets per second",
                      l.rate_pps, BG_RATE_MAX_PPS);
  if (l.burst == 0 || l.burst > BG_BURST_MAX)
    return make_error(EINVAL, "burst {} is out of range: give 1 to {} packets", l.burst,
                      BG_BURST_MAX);
  return {};
}

Status validate_max_sources(uint64_t n) {
  if (n < 16 || n > BG_SOURCES_MAX)
    return make_error(EINVAL, "max-sources {} is out of range: give 16 to {} entries", n,
                      BG_SOURCES_MAX);
  return {};
}

namespace {
uint64_t emission_of(uint64_t rate) {
  return (1000000000ULL + rate / 2) / rate;
}
}  // namespace

void apply_limits(const Limits &l, bg_limit &out) {
  out = bg_limit{};
  if (l.rate_pps == 0)
    return;
  out.rate_pps = l.rate_pps;
  out.burst = l.burst ? l.burst : 1;
  out.emission_ns = emission_of(l.rate_pps);
  out.tolerance_ns = out.emission_ns * (out.burst - 1);
}

void share_per_cpu(bg_limit &l, unsigned cpus) {
  if (l.rate_pps == 0 || cpus == 0)
    return;
  l.emission_ns = emission_of(l.rate_pps) * cpus;
  uint64_t burst = std::max<uint64_t>(l.burst / cpus, 1);
  l.tolerance_ns = l.emission_ns * (burst - 1);
}

bool coarse_clock_ok(const bg_limit &l, uint64_t tick_ns) {
  if (l.rate_pps == 0)
    return true;
  // The bucket spans emission * burst (tolerance plus the token itself).
  const unsigned __int128 span = static_cast<unsigned __int128>(l.tolerance_ns) + l.emission_ns;
  return tick_ns != 0 && span >= static_cast<unsigned __int128>(tick_ns) * 2;
}

Limits limits_of(const bg_limit &l) {
  return Limits{l.rate_pps, l.burst};
}

Gcra::Gcra(const Limits &l)
    : emission_ns_(emission_of(l.rate_pps)), tolerance_ns_(emission_ns_ * (l.burst - 1)) {}

bool Gcra::admit(uint64_t &tat_ns, uint64_t now_ns) const {
  uint64_t tat = tat_ns > now_ns ? tat_ns : now_ns;
  if (tat - now_ns > tolerance_ns_)
    return false;
  tat_ns = tat + emission_ns_;
  return true;
}

}  // namespace bpfgate::core
