#include "core/cidr.hpp"

#include <arpa/inet.h>

#include <charconv>
#include <cstring>
#include <sstream>

#include <fmt/format.h>

namespace bpfgate::core {

bool Prefix::operator==(const Prefix &o) const {
  return key.prefixlen == o.key.prefixlen && std::memcmp(key.addr, o.key.addr, 16) == 0;
}
bool Prefix::operator<(const Prefix &o) const {
  int c = std::memcmp(key.addr, o.key.addr, 16);
  return c != 0 ? c < 0 : key.prefixlen < o.key.prefixlen;
}

void mask(uint8_t addr[16], unsigned len) {
  for (unsigned i = 0; i < 16; i++) {
    unsigned bits = len > i * 8 ? len - i * 8 : 0;
    addr[i] &= bits >= 8 ? 0xff : static_cast<uint8_t>(0xff << (8 - bits));
  }
}

Result<Prefix> parse_prefix(const std::string &text) {
  auto slash = text.find('/');
  std::string host = text.substr(0, slash);
  Prefix p;
  in_addr v4{};
  unsigned max_len;
  if (inet_pton(AF_INET, host.c_str(), &v4) == 1) {
    p.v4 = true;
    p.key.addr[10] = p.key.addr[11] = 0xff;
    std::memcpy(p.key.addr + 12, &v4, 4);
    max_len = 32;
  } else if (inet_pton(AF_INET6, host.c_str(), p.key.addr) == 1) {
    max_len = 128;
  } else {
    return make_error(EINVAL, "'{}' is not an IPv4 or IPv6 address or prefix", text);
  }
  unsigned len = max_len;
  if (slash != std::string::npos) {
    std::string l = text.substr(slash + 1);
    auto [end, ec] = std::from_chars(l.data(), l.data() + l.size(), len);
    if (ec != std::errc() || end != l.data() + l.size() || l.empty() || len > max_len)
      return make_error(EINVAL, "'{}' has a bad prefix length: give 0 to {}", text, max_len);
  }
  p.key.prefixlen = (p.v4 ? 96 : 0) + len;
  Prefix masked = p;
  mask(masked.key.addr, masked.key.prefixlen);
  if (!(masked == p))
    return make_error(EINVAL, "'{}' has host bits set past /{}; did you mean {}?", text, len,
                      format_prefix(masked));
  return p;
}

unsigned user_prefixlen(const Prefix &p) {
  return p.v4 ? p.key.prefixlen - 96 : p.key.prefixlen;
}

Prefix prefix_of(const bg_lpm_key &k) {
  Prefix p;
  p.key = k;
  static const uint8_t kMapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  p.v4 = k.prefixlen >= 96 && std::equal(kMapped, kMapped + 12, k.addr);
  return p;
}

std::string format_prefix(const Prefix &p) {
  char buf[INET6_ADDRSTRLEN] = {};
  if (p.v4)
    inet_ntop(AF_INET, p.key.addr + 12, buf, sizeof(buf));
  else
    inet_ntop(AF_INET6, p.key.addr, buf, sizeof(buf));
  return fmt::format("{}/{}", buf, user_prefixlen(p));
}

PrefixLines parse_prefix_lines(std::string_view text) {
  PrefixLines out;
  std::istringstream in{std::string(text)};
  int lineno = 0;
  for (std::string line; std::getline(in, line);) {
    lineno++;
    if (auto hash = line.find('#'); hash != std::string::npos)
      line.resize(hash);
    line.erase(0, line.find_first_not_of(" \t\r"));
    line.erase(line.find_last_not_of(" \t\r") + 1);
    if (line.empty())
      continue;
    auto p = parse_prefix(line);
    if (!p)
      out.problems.emplace_back(lineno, p.error().message());
    else
      out.prefixes.push_back(*p);
  }
  return out;
}

}  // namespace bpfgate::core
