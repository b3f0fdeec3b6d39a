// CIDR prefixes as the datapath's LPM tries key them: 128-bit, IPv4 mapped
// into ::ffff:0:0/96 (so 198.18.0.0/15 is prefix length 96 + 15).
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "bpfgate/abi/xdp.h"
#include "util/result.hpp"

namespace bpfgate::core {

struct Prefix {
  bg_lpm_key key{};
  bool v4 = false;
  bool operator==(const Prefix &o) const;
  bool operator<(const Prefix &o) const;
};

// Clears every bit of addr past the first `len` (of 128).
void mask(uint8_t addr[16], unsigned len);

// "198.18.0.0/15", "2001:db8::/32", or a bare address (a /32 or /128).
// Host bits past the prefix are an error, with the prefix meant suggested.
Result<Prefix> parse_prefix(const std::string &text);
std::string format_prefix(const Prefix &p);
// The prefix a map key holds (IPv4 when it is v4-mapped, /96 or longer).
Prefix prefix_of(const bg_lpm_key &k);
// Prefix length as the operator writes it (IPv4: 0-32).
unsigned user_prefixlen(const Prefix &p);

// The contents of an allow_file/deny_file: one prefix a line, '#' starts a
// comment, blanks and tabs (and a CR) around a prefix ignored, blank lines
// skipped. Each bad line is a problem (its 1-based line, parse_prefix's
// message); the good ones are kept in order whatever the others hold.
struct PrefixLines {
  std::vector<Prefix> prefixes;
  std::vector<std::pair<int, std::string>> problems;
};
PrefixLines parse_prefix_lines(std::string_view text);

}  // namespace bpfgate::core
