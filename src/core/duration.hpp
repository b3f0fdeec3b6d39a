// Durations as an operator writes them: "500ms", "5s", "2m", "1h", "1d".
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "util/result.hpp"

namespace bpfgate::core {

Result<uint64_t> parse_duration_ns(const std::string &text);
std::string format_duration_ns(uint64_t ns);  // "1m30s", "250ms"

// A switch as configs write it: on, true, yes (true) or off, false, no
// (false); nullopt for anything else.
std::optional<bool> parse_switch(const std::string &text);

}  // namespace bpfgate::core
