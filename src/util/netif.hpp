// Facts about a network interface of this namespace that the tools need.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace bpfgate::util {

// The interface's hardware address (SIOCGIFHWADDR); false if there is no such interface.
bool read_mac(const std::string &iface, std::array<uint8_t, 6> &mac);

// The index of the interface named `name` in this namespace, 0 if there is none.
uint32_t ifindex_of(const std::string &name);

// Why `name` cannot be a Linux interface name (the kernel's dev_valid_name:
// 1-15 bytes, not "." or "..", no '/', ':', whitespace or control bytes), or
// nullopt when it can. Checked wherever a name becomes a path or a request.
std::optional<std::string> interface_name_problem(std::string_view name);

}  // namespace bpfgate::util
