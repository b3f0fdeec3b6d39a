// Guards for input bpfgate does not control: config and prefix files, names
// that become paths, and text that is quoted back in an error. Each refuses
// with a reason, in bounded time and memory.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "util/netif.hpp"
#include "util/result.hpp"
#include "util/text.hpp"

namespace bpfgate::core {

using util::excerpt;
using util::interface_name_problem;

// The most bytes a config file may have (it is read whole).
inline constexpr uint64_t kConfigMaxBytes = 16ull << 20;
// The default cap of an allow_file/deny_file (`prefix_file_max` in the config).
inline constexpr uint64_t kPrefixFileMaxBytes = 64ull << 20;
// The most nodes a config may expand to through YAML aliases.
inline constexpr uint64_t kConfigMaxNodes = 100'000;

// The contents of `path`, which must be a regular file of at most `max_bytes`
// (a directory, FIFO or device is refused without reading it: /dev/zero never
// ends). `what` names the file in messages ("config", "allow_file").
Result<std::string> read_bounded_file(const std::string &path, uint64_t max_bytes,
                                      const std::string &what);

// What the YAML of a config must not do, found before it is loaded: a second
// document, a key twice in one mapping, aliases that expand it past
// `max_nodes` nodes. Each problem as (line, reason); empty when none. A YAML
// syntax error is left to the loader, which reports it with its line.
std::vector<std::pair<int, std::string>> yaml_problems(const std::string &text,
                                                       uint64_t max_nodes = kConfigMaxNodes);

}  // namespace bpfgate::core
