// Facts about a network interface of this namespace that the tools need.
#pragma once

#include <array>
#include <cstdint>
#include <string>

namespace bpfgate::util {

// The interface's hardware address (SIOCGIFHWADDR); false if there is no such interface.
bool read_mac(const std::string &iface, std::array<uint8_t, 6> &mac);

}  // namespace bpfgate::util
