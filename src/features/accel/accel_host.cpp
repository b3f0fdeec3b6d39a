#include "features/accel/accel_host.hpp"

#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include "bpf/error.hpp"
#include "bpf/fd.hpp"
#include "bpf/map.hpp"
#include "bpf/pin.hpp"
#include "bpfgate/abi/accel.h"
#include "features/accel/accel.hpp"

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

Result<std::string> unified_hierarchy() {
  for (const char *p : {"/sys/fs/cgroup", "/sys/fs/cgroup/unified"})
    if (is_cgroup2_dir(p))
      return std::string(p);
  // Anywhere else cgroup2 is mounted.
  if (FILE *f = ::fopen("/proc/self/mounts", "re")) {
    char dev[256], dir[4096], type[64];
    while (std::fscanf(f, "%255s %4095s %63s %*[^\n]", dev, dir, type) == 3)
      if (std::strcmp(type, "cgroup2") == 0 && is_cgroup2_dir(dir)) {
        std::fclose(f);
        return std::string(dir);
      }
    std::fclose(f);
  }
  return make_error(
      ENOENT,
      "no cgroup v2 hierarchy is mounted (looked at /sys/fs/cgroup, "
      "/sys/fs/cgroup/unified and /proc/self/mounts); socket acceleration attaches "
      "to a cgroup v2: mount one with `mount -t cgroup2 none /sys/fs/cgroup/unified`");
}

Result<std::string> resolve_cgroup(const std::string &cgroup) {
  auto root = unified_hierarchy();
  if (!root)
    return root.error();
  if (cgroup.empty())
    return *root;
  // An absolute path that exists is taken as it is (and must be cgroup v2);
  // anything else is a path inside the unified hierarchy (/app, app).
  std::string path = cgroup;
  if (path.front() != '/' || !bpf::exists(path))
    path =
        *root + "/" +
        path.substr(path.find_first_not_of('/') == std::string::npos ? path.size()
                                                                     : path.find_first_not_of('/'));
  while (path.size() > 1 && path.back() == '/')
    path.pop_back();
  if (!bpf::exists(path))
    return make_error(ENOENT,
                      "cgroup {} does not exist; give a directory of the cgroup v2 hierarchy "
                      "mounted at {} (create one with `mkdir {}`)",
                      path, *root, path);
  if (!is_cgroup2_dir(path))
    return make_error(ENOTDIR,
                      "{} is not a cgroup v2 directory; socket acceleration attaches to the "
                      "unified hierarchy, mounted at {}",
                      path, *root);
  return path;
}

// Whether FIONREAD on a socket in the sockhash counts the bytes redirected to
// it: a loopback pair goes into the (not yet attached) sockhash from user
// space, one byte is sent, and the receiver is asked. The counters are zeroed
// afterwards; closing the pair takes it out of the sockhash.
Result<bool> fionread_counts_redirects(int sockets_fd, int sk_state_fd, int counters_fd,
                                       uint64_t netns) {
  bpf::UniqueFd listener(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(a);
  if (!listener.valid() || ::bind(listener.get(), reinterpret_cast<sockaddr *>(&a), len) != 0 ||
      ::listen(listener.get(), 1) != 0 ||
      ::getsockname(listener.get(), reinterpret_cast<sockaddr *>(&a), &len) != 0)
    return Error(errno, "probe FIONREAD: listen on 127.0.0.1 (is lo up?)");
  bpf::UniqueFd client(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!client.valid() || ::connect(client.get(), reinterpret_cast<sockaddr *>(&a), len) != 0)
    return Error(errno, "probe FIONREAD: connect over loopback");
  bpf::UniqueFd server(::accept4(listener.get(), nullptr, nullptr, SOCK_CLOEXEC));
  if (!server.valid())
    return Error(errno, "probe FIONREAD: accept");
  auto key_of = [&](int fd) {
    sockaddr_in l{}, r{};
    socklen_t ll = sizeof(l), rl = sizeof(r);
    ::getsockname(fd, reinterpret_cast<sockaddr *>(&l), &ll);
    ::getpeername(fd, reinterpret_cast<sockaddr *>(&r), &rl);
    bg_accel_key k{};
    k.local_ip[2] = k.remote_ip[2] = htonl(0x0000ffff);
    k.local_ip[3] = l.sin_addr.s_addr;
    k.remote_ip[3] = r.sin_addr.s_addr;
    k.local_port = ntohs(l.sin_port);
    k.remote_port = ntohs(r.sin_port);
    k.netns_cookie = netns;
    return k;
  };
  for (int fd : {client.get(), server.get()}) {
    bg_accel_key k = key_of(fd);
    bg_accel_sk_state st{.flags = 0, ._pad = 0, .key = k};
    uint64_t value = static_cast<uint64_t>(fd);
    if (int err = bpf_map_update_elem(sk_state_fd, &fd, &st, BPF_NOEXIST); err)
      return bpf::libbpf_error(err, "probe FIONREAD: socket state");
    if (int err = bpf_map_update_elem(sockets_fd, &k, &value, BPF_NOEXIST); err)
      return bpf::libbpf_error(err, "probe FIONREAD: put a loopback pair into the sockhash");
  }
  char byte = 'x';
  if (::send(client.get(), &byte, 1, MSG_NOSIGNAL) != 1)
    return Error(errno, "probe FIONREAD: send");
  int inq = -1;
  if (::ioctl(server.get(), FIONREAD, &inq) != 0)
    return Error(errno, "probe FIONREAD: ioctl");
  (void)::recv(server.get(), &byte, 1, MSG_DONTWAIT);
  bpf::PerCpuMap<__u32, bg_accel_counter> counters(counters_fd);
  for (__u32 e = 0; e < BG_ACCEL_EVENT_NR; e++)
    if (auto st = counters.update_all(e, bg_accel_counter{}); !st)
      return st.error();
  return inq == 1;
}

}  // namespace bpfgate::agent::accel
