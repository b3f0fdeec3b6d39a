#include "util/netif.hpp"

#include <net/if.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cctype>
#include <cstring>

#include <fmt/format.h>

#include "util/text.hpp"

namespace bpfgate::util {

uint32_t ifindex_of(const std::string &name) {
  return if_nametoindex(name.c_str());
}

bool read_mac(const std::string &iface, std::array<uint8_t, 6> &mac) {
  int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  ifreq ifr{};
  std::strncpy(ifr.ifr_name, iface.c_str(), IFNAMSIZ - 1);
  bool ok = fd >= 0 && ioctl(fd, SIOCGIFHWADDR, &ifr) == 0;
  if (ok)
    std::memcpy(mac.data(), ifr.ifr_hwaddr.sa_data, 6);
  if (fd >= 0)
    close(fd);
  return ok;
}

}  // namespace bpfgate::util

namespace bpfgate::util {

std::optional<std::string> interface_name_problem(std::string_view name) {
  if (name.empty())
    return "an interface name cannot be empty";
  if (name.size() >= IFNAMSIZ)
    return fmt::format("'{}' is not a valid interface name: longer than {} bytes", excerpt(name),
                       IFNAMSIZ - 1);
  if (name == "." || name == "..")
    return fmt::format("'{}' is not a valid interface name", name);
  for (unsigned char c : name)
    if (c == '/' || c == ':' || std::isspace(c) || c < 0x20 || c == 0x7f)
      return fmt::format(
          "'{}' is not a valid interface name: no '/', ':', spaces or control characters",
          excerpt(name));
  return std::nullopt;
}

}  // namespace bpfgate::util
