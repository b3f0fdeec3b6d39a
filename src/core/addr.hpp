// Source addresses as the datapath keys them: IPv6, IPv4 v4-mapped.
#pragma once

#include <optional>
#include <string>

#include "bpfgate/abi/xdp.h"

namespace bpfgate::core {

std::string format_addr(const bg_src_key &key);  // "198.18.0.1" or "2001:db8::1"
std::optional<bg_src_key> parse_addr(const std::string &text);
bool is_v4_mapped(const bg_src_key &key);

}  // namespace bpfgate::core
