// Durations as an operator writes them: "500ms", "5s", "2m", "1h", "1d".
#pragma once

#include <cstdint>
#include <string>

#include "util/result.hpp"

namespace bpfgate::core {

Result<uint64_t> parse_duration_ns(const std::string &text);
std::string format_duration_ns(uint64_t ns);  // "1m30s", "250ms"

}  // namespace bpfgate::core
