#include "core/addr.hpp"

#include <arpa/inet.h>

#include <cstring>

namespace bpfgate::core {

bool is_v4_mapped(const bg_src_key &key) {
  static const uint8_t kPrefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  return std::memcmp(key.addr, kPrefix, sizeof(kPrefix)) == 0;
}

std::string format_addr(const bg_src_key &key) {
  char buf[INET6_ADDRSTRLEN] = {};
  if (is_v4_mapped(key))
    inet_ntop(AF_INET, key.addr + 12, buf, sizeof(buf));
  else
    inet_ntop(AF_INET6, key.addr, buf, sizeof(buf));
  return buf;
}

std::optional<bg_src_key> parse_addr(const std::string &text) {
  bg_src_key key{};
  in_addr v4{};
  if (inet_pton(AF_INET, text.c_str(), &v4) == 1) {
    key.addr[10] = key.addr[11] = 0xff;
    std::memcpy(key.addr + 12, &v4, 4);
    return key;
  }
  if (inet_pton(AF_INET6, text.c_str(), key.addr) == 1)
    return key;
  return std::nullopt;
}

}  // namespace bpfgate::core
