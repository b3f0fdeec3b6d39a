#include "core/values.hpp"

#include <netinet/in.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <map>
#include <set>

namespace bpfgate::core {

namespace {
std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  return s;
}
}  // namespace

std::optional<uint64_t> parse_whole(std::string_view s) {
  uint64_t v = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || end != s.data() + s.size() || s.empty())
    return std::nullopt;
  return v;
}

std::optional<PortRange> parse_port_range(std::string_view s) {
  auto dash = s.find('-');
  auto lo = parse_whole(s.substr(0, dash));
  auto hi = dash == std::string_view::npos ? lo : parse_whole(s.substr(dash + 1));
  if (!lo || !hi || *lo > 65535 || *hi > 65535)
    return std::nullopt;
  return PortRange{static_cast<uint16_t>(*lo), static_cast<uint16_t>(*hi)};
}

Result<std::vector<uint16_t>> parse_port_list(const std::string &list) {
  std::set<uint16_t> out;
  size_t pos = 0;
  while (pos <= list.size()) {
    size_t comma = list.find(',', pos);
    std::string item =
        list.substr(pos, comma == std::string::npos ? std::string::npos : comma - pos);
    auto r = parse_port_range(item);
    if (!r || r->lo == 0 || r->hi == 0)
      return make_error(EINVAL, "'{}' in port list '{}' is not a port (1-65535)", item, list);
    if (r->hi < r->lo)
      return make_error(EINVAL, "'{}' in port list '{}' is a range that ends before it starts",
                        item, list);
    for (unsigned p = r->lo; p <= r->hi; p++)
      out.insert(static_cast<uint16_t>(p));
    if (comma == std::string::npos)
      break;
    pos = comma + 1;
  }
  return std::vector<uint16_t>(out.begin(), out.end());
}

std::optional<uint8_t> parse_protocol(std::string_view s) {
  static const std::map<std::string_view, uint8_t> kProtos = {
      {"tcp", IPPROTO_TCP},       {"udp", IPPROTO_UDP}, {"icmp", IPPROTO_ICMP},
      {"icmpv6", IPPROTO_ICMPV6}, {"gre", IPPROTO_GRE}, {"esp", IPPROTO_ESP},
      {"sctp", IPPROTO_SCTP}};
  if (auto it = kProtos.find(s); it != kProtos.end())
    return it->second;
  auto v = parse_whole(s);
  if (!v || *v > 255)
    return std::nullopt;
  return static_cast<uint8_t>(*v);
}

Result<uint64_t> parse_rate_bps(const std::string &text) {
  std::string s = lower(text);
  size_t i = 0;
  while (i < s.size() && (std::isdigit(static_cast<unsigned char>(s[i])) || s[i] == '.'))
    i++;
  std::string num = s.substr(0, i), unit = s.substr(i);
  double v = 0;
  auto [end, ec] = std::from_chars(num.data(), num.data() + num.size(), v);
  static const std::map<std::string, double> kUnits = {
      {"", 1}, {"bit", 1}, {"kbit", 1e3}, {"mbit", 1e6}, {"gbit", 1e9}, {"tbit", 1e12}};
  auto u = kUnits.find(unit);
  if (num.empty() || ec != std::errc() || end != num.data() + num.size() || u == kUnits.end())
    return make_error(EINVAL,
                      "rate '{}' is not a rate in bits per second: give e.g. 800kbit, 10mbit, "
                      "1.5gbit or a number of bits per second",
                      text);
  double bps = std::round(v * u->second);
  if (bps < static_cast<double>(kRateMinBps) || bps > static_cast<double>(kRateMaxBps))
    return make_error(ERANGE, "rate '{}' is out of range: give 8kbit to 400gbit", text);
  return static_cast<uint64_t>(bps);
}

Result<uint64_t> parse_size_bytes(const std::string &text) {
  std::string s = lower(text);
  size_t i = 0;
  while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i])))
    i++;
  auto v = parse_whole(std::string_view(s).substr(0, i));
  std::string unit = s.substr(i);
  static const std::map<std::string, uint64_t> kUnits = {{"", 1},
                                                         {"b", 1},
                                                         {"k", 1ULL << 10},
                                                         {"kb", 1ULL << 10},
                                                         {"kib", 1ULL << 10},
                                                         {"m", 1ULL << 20},
                                                         {"mb", 1ULL << 20},
                                                         {"mib", 1ULL << 20}};
  auto u = kUnits.find(unit);
  if (!v || u == kUnits.end() || *v > (1ULL << 40))
    return make_error(EINVAL, "size '{}' is not a number of bytes: give e.g. 1500, 64kb or 1mb",
                      text);
  return *v * u->second;
}

}  // namespace bpfgate::core
