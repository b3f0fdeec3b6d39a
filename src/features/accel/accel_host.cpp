#include "features/accel/accel_host.hpp"

#include <ifaddrs.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>

#include "bpf/fd.hpp"

namespace bpfgate::agent::accel {

namespace fs = std::filesystem;

namespace {
constexpr long kCgroup2Magic = 0x63677270;
constexpr int kSoNetnsCookie = 71;  // SO_NETNS_COOKIE, Linux 5.14; absent from older headers
constexpr int kMaxCgroupDepth = 32;
}  // namespace

bool is_cgroup2_dir(const std::string &path) {
  struct statfs st {};
  struct stat sb {};
  return statfs(path.c_str(), &st) == 0 && st.f_type == kCgroup2Magic &&
         stat(path.c_str(), &sb) == 0 && S_ISDIR(sb.st_mode);
}

Result<uint64_t> cgroup_id(const std::string &dir) {
  struct stat sb {};
  if (stat(dir.c_str(), &sb) != 0)
    return Error(errno, "stat " + dir);
  return static_cast<uint64_t>(sb.st_ino);
}

std::string cgroup_path_of(const std::string &root, uint64_t id) {
  std::error_code ec;
  if (auto rid = cgroup_id(root); rid && *rid == id)
    return root;
  fs::recursive_directory_iterator it(root, fs::directory_options::skip_permission_denied, ec);
  for (; !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    if (it.depth() >= kMaxCgroupDepth) {
      it.disable_recursion_pending();
      continue;
    }
    if (!it->is_directory(ec))
      continue;
    struct stat sb {};
    if (stat(it->path().c_str(), &sb) == 0 && static_cast<uint64_t>(sb.st_ino) == id)
      return it->path();
  }
  return "";
}

Result<uint64_t> netns_cookie() {
  bpf::UniqueFd fd(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  if (!fd.valid())
    fd.reset(::socket(AF_INET6, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  if (!fd.valid())
    return Error(errno, "open a socket to read the network namespace cookie");
  uint64_t cookie = 0;
  socklen_t len = sizeof(cookie);
  if (getsockopt(fd.get(), SOL_SOCKET, kSoNetnsCookie, &cookie, &len) != 0)
    return Error(errno,
                 "read the network namespace cookie (SO_NETNS_COOKIE needs Linux 5.14 or newer)");
  return cookie;
}

Result<std::vector<core::Prefix>> local_prefixes() {
  std::vector<core::Prefix> out;
  for (const char *p : {"127.0.0.0/8", "::1/128"}) {
    auto pre = core::parse_prefix(p);
    if (!pre)
      return pre.error();
    out.push_back(*pre);
  }
  ifaddrs *list = nullptr;
  if (getifaddrs(&list) != 0)
    return Error(errno, "list the addresses of this network namespace");
  for (ifaddrs *a = list; a; a = a->ifa_next) {
    if (!a->ifa_addr)
      continue;
    core::Prefix p;
    if (a->ifa_addr->sa_family == AF_INET) {
      const auto *sin = reinterpret_cast<const sockaddr_in *>(a->ifa_addr);
      p.v4 = true;
      p.key.addr[10] = p.key.addr[11] = 0xff;
      std::memcpy(p.key.addr + 12, &sin->sin_addr, 4);
      p.key.prefixlen = 128;
    } else if (a->ifa_addr->sa_family == AF_INET6) {
      const auto *sin6 = reinterpret_cast<const sockaddr_in6 *>(a->ifa_addr);
      std::memcpy(p.key.addr, &sin6->sin6_addr, 16);
      p.key.prefixlen = 128;
    } else {
      continue;
    }
    out.push_back(p);
  }
  freeifaddrs(list);
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

}  // namespace bpfgate::agent::accel
