#include "util/netif.hpp"

#include <net/if.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>

namespace bpfgate::util {

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
