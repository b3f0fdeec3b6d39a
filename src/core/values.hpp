// Values as the operator writes them, in the config and on the command line:
// ports, protocols, rates and sizes, each parsed here once (durations and
// switches: core/duration.hpp; prefixes: core/cidr.hpp). Pure functions.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "util/result.hpp"

namespace bpfgate::core {

struct PortRange {
  uint16_t lo = 0, hi = 0;
  bool operator==(const PortRange &) const = default;
};

// A whole number, digits only ("", "+1", "1.0" and "1k" are not).
std::optional<uint64_t> parse_whole(std::string_view text);
// "80" or "8000-8099", each end 0-65535. A range that ends before it starts
// is returned as written: callers word that error their way.
std::optional<PortRange> parse_port_range(std::string_view text);
// "443,8080,9000-9003": ports 1-65535, sorted and unique; the error names the
// bad item ("'0' in port list '0' is not a port (1-65535)").
Result<std::vector<uint16_t>> parse_port_list(const std::string &list);
// An IP protocol: one of kProtocolNames, or its number 0-255.
std::optional<uint8_t> parse_protocol(std::string_view text);
inline constexpr const char *kProtocolNames = "tcp, udp, icmp, icmpv6, gre, esp, sctp";

// Bits per second: "10mbit", "1.5gbit", "800kbit", "2000000"; from 8kbit to
// 400gbit.
inline constexpr uint64_t kRateMinBps = 8000;
inline constexpr uint64_t kRateMaxBps = 400'000'000'000ULL;
Result<uint64_t> parse_rate_bps(const std::string &text);
// Bytes: "64kb", "1mb", "1500" (k = 1024, as tc counts); the number at most 2^40.
Result<uint64_t> parse_size_bytes(const std::string &text);

}  // namespace bpfgate::core
