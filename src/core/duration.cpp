#include "core/duration.hpp"

#include <charconv>

#include <fmt/format.h>

namespace bpfgate::core {

Result<uint64_t> parse_duration_ns(const std::string &text) {
  uint64_t n = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), n);
  std::string unit(end, text.data() + text.size());
  if (ec != std::errc() || end == text.data())
    return make_error(EINVAL, "'{}' is not a duration: write e.g. 500ms, 30s, 5m, 1h", text);
  uint64_t mul;
  if (unit == "ms")
    mul = 1'000'000ULL;
  else if (unit == "s" || unit.empty())
    mul = 1'000'000'000ULL;
  else if (unit == "m")
    mul = 60'000'000'000ULL;
  else if (unit == "h")
    mul = 3'600'000'000'000ULL;
  else if (unit == "d")
    mul = 86'400'000'000'000ULL;
  else
    return make_error(EINVAL, "'{}' has an unknown unit '{}': use ms, s, m, h or d", text, unit);
  if (n > UINT64_MAX / mul)
    return make_error(ERANGE, "'{}' is too long", text);
  return n * mul;
}

std::string format_duration_ns(uint64_t ns) {
  if (ns < 1'000'000'000ULL)
    return fmt::format("{}ms", ns / 1'000'000ULL);
  uint64_t s = ns / 1'000'000'000ULL;
  std::string out;
  if (s >= 3600)
    out += fmt::format("{}h", s / 3600), s %= 3600;
  if (s >= 60)
    out += fmt::format("{}m", s / 60), s %= 60;
  if (s || out.empty())
    out += fmt::format("{}s", s);
  return out;
}

std::optional<bool> parse_switch(const std::string &text) {
  if (text == "on" || text == "true" || text == "yes")
    return true;
  if (text == "off" || text == "false" || text == "no")
    return false;
  return std::nullopt;
}

}  // namespace bpfgate::core
