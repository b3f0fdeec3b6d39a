#include "features/accel/accel.hpp"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <fcntl.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <map>
#include <memory>
#include <set>
#include <thread>

#include "accel_sockops.skel.h"
#include "features/accel/accel_host.hpp"
#include "features/accel/accel_sweep.hpp"
#include "bpf/error.hpp"
#include "bpf/features.hpp"
#include "bpf/map.hpp"
#include "bpf/object.hpp"
#include "bpf/pin.hpp"
#include "core/cidr.hpp"
#include "core/values.hpp"
#include "util/log.hpp"

namespace bpfgate::agent::accel {

namespace {

using AccelSkel = bpf::Skeleton<bpf::SkeletonTraits<accel_sockops, accel_sockops__open_opts,
                                                    accel_sockops__load, accel_sockops__destroy>>;

using ConfigMap = bpf::Map<__u32, bg_accel_config>;
using PortsMap = bpf::Map<__u32, __u32>;
using AddrMap = bpf::Map<bg_lpm_key, __u32>;
using CounterMap = bpf::PerCpuMap<__u32, bg_accel_counter>;

// Senders that ran the sk_msg program just before `disable` set the draining
// flag may still be queueing into their peer; a socket is taken out of the
// sockhash only this long after the flag.
constexpr std::chrono::milliseconds kDrainGrace{200};
constexpr std::chrono::milliseconds kSweepInterval{20};

constexpr const char *kPins[] = {BG_ACCEL_PIN_LINK,     BG_ACCEL_PIN_SOCKOPS, BG_ACCEL_PIN_MSG,
                                 BG_ACCEL_PIN_SOCKETS,  BG_ACCEL_PIN_CONFIG,  BG_ACCEL_PIN_COUNTERS,
                                 BG_ACCEL_PIN_PORTS,    BG_ACCEL_PIN_ADDRS,   BG_ACCEL_PIN_SK_STATE,
                                 BG_ACCEL_PIN_CONGESTED};

std::string pin(const std::string &dir, const char *name) {
  return dir + "/" + name;
}

Status remove_pins(const std::string &dir) {
  for (const char *name : kPins)
    if (auto st = bpf::unpin(pin(dir, name)); !st)
      return st;
  return bpf::remove_dir_if_empty(dir);
}

Status check_privileges() {
  if (bpf::has_bpf_privileges())
    return {};
  return make_error(EPERM,
                    "bpfgate accel needs root, or CAP_BPF (or CAP_SYS_ADMIN) and CAP_NET_ADMIN, "
                    "to load BPF programs and attach them to a cgroup: run it with sudo");
}

// An exclusive lock on the pin directory. `disable` removes the directory
// while holding it, so a waiter checks that the path still names the inode it
// locked, and starts over (creating it again when `create`) if not.
class PinLock {
 public:
  static Result<PinLock> acquire(const std::string &dir, bool create) {
    for (int attempt = 0; attempt < 8; attempt++) {
      if (create)
        if (auto st = bpf::make_private_dir(dir); !st)
          return st.error();
      int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
      if (fd < 0) {
        if (errno == ENOENT && !create)
          return not_enabled(dir);
        return Error(errno, "open " + dir + " for locking");
      }
      bpf::UniqueFd owner(fd);
      if (::flock(fd, LOCK_EX) != 0)
        return Error(errno, "lock " + dir);
      struct stat locked {
      }, now{};
      if (fstat(fd, &locked) == 0 && stat(dir.c_str(), &now) == 0 && locked.st_ino == now.st_ino)
        return PinLock(std::move(owner));
      if (!create && !bpf::exists(dir))
        return not_enabled(dir);
    }
    return make_error(EBUSY, "{} keeps changing under bpfgate: another bpfgate is working on it",
                      dir);
  }
  static Error not_enabled(const std::string &dir) {
    return make_error(ENOENT,
                      "socket acceleration is not enabled (nothing pinned under {}); enable it "
                      "with `bpfgate accel enable`",
                      dir);
  }

 private:
  explicit PinLock(bpf::UniqueFd fd) : fd_(std::move(fd)) {}
  bpf::UniqueFd fd_;
};

struct LinkInfo {
  uint32_t id = 0;
  uint32_t prog_id = 0;
  uint64_t cgroup_id = 0;
};

Result<LinkInfo> link_info(int fd) {
  bpf_link_info info{};
  uint32_t len = sizeof(info);
  if (int err = bpf_obj_get_info_by_fd(fd, &info, &len); err)
    return bpf::libbpf_error(err, "read the sock_ops link's info");
  LinkInfo out{info.id, info.prog_id, 0};
  if (info.type == BPF_LINK_TYPE_CGROUP)
    out.cgroup_id = info.cgroup.cgroup_id;
  return out;
}

Result<uint32_t> prog_id(int fd) {
  bpf_prog_info info{};
  uint32_t len = sizeof(info);
  if (int err = bpf_obj_get_info_by_fd(fd, &info, &len); err)
    return bpf::libbpf_error(err, "read program info");
  return info.id;
}

Result<uint64_t> count_sockets(int sockets_fd) {
  bg_accel_key cur{}, next{};
  uint64_t n = 0;
  const void *prev = nullptr;
  while (bpf_map_get_next_key(sockets_fd, prev, &next) == 0) {
    n++;
    cur = next;
    prev = &cur;
  }
  if (errno != ENOENT)
    return bpf::libbpf_error(-errno, "walk the sockhash");
  return n;
}

Status write_ports(PortsMap &ports, const std::vector<uint16_t> &list) {
  std::vector<__u32> words(BG_ACCEL_PORT_WORDS, 0);
  for (uint16_t p : list)
    words[p >> 5] |= 1U << (p & 31);
  for (__u32 i = 0; i < BG_ACCEL_PORT_WORDS; i++)
    if (auto st = ports.update(i, words[i]); !st)
      return st.error().context("write the ports map");
  return {};
}

Status write_addresses(AddrMap &addrs, const std::vector<core::Prefix> &prefixes) {
  auto old = addrs.dump();
  if (!old)
    return old.error();
  for (const auto &[k, v] : *old)
    (void)addrs.erase(k);
  for (const auto &p : prefixes)
    if (auto st = addrs.update(p.key, 1); !st)
      return st.error().context("write the address map");
  return {};
}

Status write_config(ConfigMap &config, uint64_t netns, uint64_t cgid, bool any_port) {
  __u32 zero = 0;
  auto cur = config.lookup(zero);
  if (!cur)
    return cur.error();
  bg_accel_config cfg = cur->value_or(bg_accel_config{});
  cfg.netns_cookie = netns;
  cfg.cgroup_id = cgid;
  cfg.flags = any_port ? BG_ACCEL_F_ANY_PORT : 0;
  cfg.generation++;
  return config.update(zero, cfg);
}

Status set_draining(ConfigMap &config) {
  __u32 zero = 0;
  auto cur = config.lookup(zero);
  if (!cur)
    return cur.error();
  bg_accel_config cfg = cur->value_or(bg_accel_config{});
  cfg.flags |= BG_ACCEL_F_DRAINING;
  cfg.generation++;
  return config.update(zero, cfg);
}

// The operator's prefixes, or this namespace's addresses.
Result<std::vector<core::Prefix>> wanted_prefixes(const std::vector<std::string> &list) {
  if (list.empty())
    return local_prefixes();
  std::set<core::Prefix> out;
  for (const auto &text : list) {
    auto p = core::parse_prefix(text);
    if (!p)
      return p.error().context("--addresses");
    out.insert(*p);
  }
  if (out.size() > BG_ACCEL_MAX_ADDRS)
    return make_error(E2BIG, "--addresses: at most {} prefixes", BG_ACCEL_MAX_ADDRS);
  return std::vector<core::Prefix>(out.begin(), out.end());
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

Result<bpf::UniqueFd> attach_cgroup(int prog_fd, const std::string &cgroup) {
  int cg = ::open(cgroup.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (cg < 0)
    return Error(errno, "open cgroup " + cgroup);
  bpf::UniqueFd cg_fd(cg);
  int link = bpf_link_create(prog_fd, cg_fd.get(), BPF_CGROUP_SOCK_OPS, nullptr);
  if (link < 0)
    return bpf::libbpf_error(link, "attach the sock_ops program to cgroup " + cgroup);
  return bpf::UniqueFd(link);
}

// Attaches the sock_ops program again to a hierarchy that still holds the
// sockhash of an unfinished disable: its sockets stay where they are.
Result<EnableReport> resume(const std::string &dir, const std::string &cgroup, uint64_t netns,
                            uint64_t cgid, const EnableOptions &o,
                            const std::vector<core::Prefix> &prefixes) {
  auto config = ConfigMap::open_pinned(pin(dir, BG_ACCEL_PIN_CONFIG));
  if (!config)
    return config.error();
  auto ports = PortsMap::open_pinned(pin(dir, BG_ACCEL_PIN_PORTS));
  if (!ports)
    return ports.error();
  auto addrs = AddrMap::open_pinned(pin(dir, BG_ACCEL_PIN_ADDRS));
  if (!addrs)
    return addrs.error();
  auto prog = bpf::open_pinned(pin(dir, BG_ACCEL_PIN_SOCKOPS));
  if (!prog)
    return prog.error();
  if (auto st = write_ports(*ports, o.ports); !st)
    return st.error();
  if (auto st = write_addresses(*addrs, prefixes); !st)
    return st.error();
  if (auto st = write_config(*config, netns, cgid, o.ports.empty()); !st)
    return st.error();
  auto link = attach_cgroup(prog->get(), cgroup);
  if (!link)
    return link.error();
  if (auto st = bpf::pin_fd(link->get(), pin(dir, BG_ACCEL_PIN_LINK)); !st) {
    bpf_link_detach(link->get());
    return st.error();
  }
  EnableReport r;
  r.resumed_draining = true;
  if (auto info = link_info(link->get()); info) {
    r.link_id = info->id;
    r.sockops_prog_id = info->prog_id;
  }
  if (auto msg = bpf::open_pinned(pin(dir, BG_ACCEL_PIN_MSG)); msg)
    if (auto id = prog_id(msg->get()); id)
      r.msg_prog_id = *id;
  return r;
}

Result<EnableReport> load_and_attach(const std::string &dir, const std::string &cgroup,
                                     uint64_t netns, uint64_t cgid, const EnableOptions &o,
                                     const std::vector<core::Prefix> &prefixes) {
  auto skel = AccelSkel::open("accel_sockops");
  if (!skel)
    return skel.error();
  bpf_map__set_max_entries((*skel)->maps.bg_accel_sockets, o.max_sockets);
  if (auto st = skel->load(); !st)
    return st.error();

  ConfigMap config(bpf_map__fd((*skel)->maps.bg_accel_config));
  PortsMap ports(bpf_map__fd((*skel)->maps.bg_accel_ports));
  AddrMap addrs(bpf_map__fd((*skel)->maps.bg_accel_addrs));
  if (auto st = write_ports(ports, o.ports); !st)
    return st.error();
  if (auto st = write_addresses(addrs, prefixes); !st)
    return st.error();
  if (auto st = write_config(config, netns, cgid, o.ports.empty()); !st)
    return st.error();

  int sockets_fd = bpf_map__fd((*skel)->maps.bg_accel_sockets);
  int msg_fd = bpf_program__fd((*skel)->progs.bg_accel_msg);
  int sockops_fd = bpf_program__fd((*skel)->progs.bg_accel_sockops);
  if (int err = bpf_prog_attach(msg_fd, sockets_fd, BPF_SK_MSG_VERDICT, 0); err)
    return bpf::libbpf_error(err, "attach the sk_msg program to the sockhash");
  if (!o.ignore_fionread_check) {
    auto visible =
        fionread_counts_redirects(sockets_fd, bpf_map__fd((*skel)->maps.bg_accel_sk_state),
                                  bpf_map__fd((*skel)->maps.bg_accel_counters), netns);
    if (!visible)
      return visible.error();
    if (!*visible)
      return make_error(EOPNOTSUPP,
                        "this kernel ({}) does not count redirected bytes in FIONREAD/SIOCINQ "
                        "(sockmap's TCP code has no ioctl before late-2025 kernels): nginx and "
                        "other programs that size their reads with FIONREAD stall reading from "
                        "accelerated sockets. Use a newer kernel, or pass "
                        "--ignore-fionread-check if no such program runs in the cgroup",
                        bpf::kernel_release());
  }

  // Pin everything, the cgroup link last: a failure before it leaves nothing
  // running, since the sockhash (and the sk_msg program it holds) goes with
  // its last reference.
  if (auto st = bpf::make_private_dir(dir); !st)
    return st.error();
  const std::pair<const char *, int> pins[] = {
      {BG_ACCEL_PIN_SOCKETS, sockets_fd},
      {BG_ACCEL_PIN_SK_STATE, bpf_map__fd((*skel)->maps.bg_accel_sk_state)},
      {BG_ACCEL_PIN_CONGESTED, bpf_map__fd((*skel)->maps.bg_accel_congested)},
      {BG_ACCEL_PIN_CONFIG, config.fd()},
      {BG_ACCEL_PIN_COUNTERS, bpf_map__fd((*skel)->maps.bg_accel_counters)},
      {BG_ACCEL_PIN_PORTS, ports.fd()},
      {BG_ACCEL_PIN_ADDRS, addrs.fd()},
      {BG_ACCEL_PIN_SOCKOPS, sockops_fd},
      {BG_ACCEL_PIN_MSG, msg_fd},
  };
  for (const auto &[name, fd] : pins)
    if (auto st = bpf::pin_fd(fd, pin(dir, name)); !st) {
      (void)remove_pins(dir);
      return st.error();
    }
  auto link = attach_cgroup(sockops_fd, cgroup);
  if (!link) {
    (void)remove_pins(dir);
    return link.error();
  }
  if (auto st = bpf::pin_fd(link->get(), pin(dir, BG_ACCEL_PIN_LINK)); !st) {
    bpf_link_detach(link->get());
    (void)remove_pins(dir);
    return st.error();
  }
  EnableReport r;
  if (auto info = link_info(link->get()); info) {
    r.link_id = info->id;
    r.sockops_prog_id = info->prog_id;
  }
  if (auto id = prog_id(msg_fd); id)
    r.msg_prog_id = *id;
  return r;
}

uint64_t sum_fallback(const Counters &c, bool bytes) {
  uint64_t n = 0;
  for (auto e : {BG_ACCEL_MSG_NO_PEER, BG_ACCEL_MSG_FALLBACK, BG_ACCEL_MSG_DRAINING,
                 BG_ACCEL_MSG_NO_STATE, BG_ACCEL_MSG_BACKLOG})
    n += bytes ? c[e].bytes : c[e].count;
  return n;
}

}  // namespace

std::string to_string(State s) {
  switch (s) {
    case State::kOff:
      return "off";
    case State::kEnabled:
      return "enabled";
    case State::kDraining:
      return "draining";
  }
  return "unknown";
}

std::string event_name(bg_accel_event e) {
  switch (e) {
    case BG_ACCEL_SOCK_ADDED:
      return "sockets_added";
    case BG_ACCEL_SOCK_ADD_FAILED:
      return "sockets_add_failed";
    case BG_ACCEL_SOCK_SKIPPED:
      return "sockets_skipped";
    case BG_ACCEL_MSG_REDIRECTED:
      return "redirected";
    case BG_ACCEL_MSG_NO_PEER:
      return "fallback_no_peer";
    case BG_ACCEL_MSG_FALLBACK:
      return "fallback_earlier";
    case BG_ACCEL_MSG_DRAINING:
      return "fallback_draining";
    case BG_ACCEL_MSG_NO_STATE:
      return "fallback_no_state";
    case BG_ACCEL_MSG_BACKLOG:
      return "fallback_backlog";
    case BG_ACCEL_EVENT_NR:
      break;
  }
  return "unknown";
}

uint64_t AccelStatus::fallback_messages() const {
  return sum_fallback(counters, false);
}
uint64_t AccelStatus::fallback_bytes() const {
  return sum_fallback(counters, true);
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

Result<std::vector<uint16_t>> parse_ports(const std::string &list) {
  return core::parse_port_list(list);
}

std::string pin_dir(const std::string &bpffs) {
  return bpffs + "/" + BG_ACCEL_PIN_DIR;
}

Result<EnableReport> enable(const std::string &bpffs, const EnableOptions &o) {
  if (o.max_sockets == 0 || o.max_sockets > BG_ACCEL_MAX_SOCKETS_MAX)
    return make_error(EINVAL, "max sockets must be 1 to {}, not {}", BG_ACCEL_MAX_SOCKETS_MAX,
                      o.max_sockets);
  auto prefixes = wanted_prefixes(o.addresses);
  if (!prefixes)
    return prefixes.error();
  auto cgroup = resolve_cgroup(o.cgroup);
  if (!cgroup)
    return cgroup.error();
  if (auto st = check_privileges(); !st)
    return st.error();
  for (auto [type, name] :
       {std::pair{BPF_PROG_TYPE_SOCK_OPS, "sock_ops"}, std::pair{BPF_PROG_TYPE_SK_MSG, "sk_msg"}})
    if (!bpf::has_prog_type(type))
      return make_error(EOPNOTSUPP, "this kernel ({}) cannot load {} programs",
                        bpf::kernel_release(), name);
  auto netns = netns_cookie();
  if (!netns)
    return netns.error();
  auto cgid = cgroup_id(*cgroup);
  if (!cgid)
    return cgid.error();
  if (auto st = bpf::ensure_bpffs(bpffs); !st)
    return st.error();

  std::string dir = pin_dir(bpffs);
  auto lock = PinLock::acquire(dir, true);
  if (!lock)
    return lock.error();
  if (bpf::exists(pin(dir, BG_ACCEL_PIN_LINK))) {
    std::string where = "another cgroup";
    if (auto link = bpf::open_pinned(pin(dir, BG_ACCEL_PIN_LINK)); link)
      if (auto info = link_info(link->get()); info)
        if (auto root = unified_hierarchy(); root) {
          std::string p = cgroup_path_of(*root, info->cgroup_id);
          if (!p.empty())
            where = p;
        }
    return make_error(EEXIST,
                      "socket acceleration is already enabled (cgroup {}); run `bpfgate accel "
                      "disable` first to change it",
                      where);
  }
  Result<EnableReport> r = bpf::exists(pin(dir, BG_ACCEL_PIN_SOCKETS))
                               ? resume(dir, *cgroup, *netns, *cgid, o, *prefixes)
                               : load_and_attach(dir, *cgroup, *netns, *cgid, o, *prefixes);
  if (!r) {
    (void)bpf::remove_dir_if_empty(dir);
    return r;
  }
  r->cgroup = *cgroup;
  for (const auto &p : *prefixes)
    r->addresses.push_back(core::format_prefix(p));
  return r;
}

Result<DisableReport> disable(const std::string &bpffs, const DisableOptions &o) {
  if (auto st = check_privileges(); !st)
    return st.error();
  if (auto st = bpf::ensure_bpffs(bpffs); !st)
    return st.error();
  std::string dir = pin_dir(bpffs);
  if (!bpf::exists(dir))
    return PinLock::not_enabled(dir);
  auto lock = PinLock::acquire(dir, false);
  if (!lock)
    return lock.error();
  if (!bpf::exists(pin(dir, BG_ACCEL_PIN_SOCKETS))) {
    // A half-made directory (an enable that died): nothing runs from it.
    if (auto st = remove_pins(dir); !st)
      return st.error();
    DisableReport r;
    r.removed = true;
    return r;
  }

  // 1. Stop redirecting: each socket's next send takes the normal path, for good.
  auto config = ConfigMap::open_pinned(pin(dir, BG_ACCEL_PIN_CONFIG));
  if (!config)
    return config.error();
  if (auto st = set_draining(*config); !st)
    return st.error().context("set the draining flag");
  // 2. No new sockets.
  if (auto link = bpf::open_pinned(pin(dir, BG_ACCEL_PIN_LINK)); link) {
    if (int err = bpf_link_detach(link->get()); err && errno != ENOLINK && errno != EINVAL)
      return bpf::libbpf_error(err, "detach the sock_ops program from its cgroup");
  }
  if (auto st = bpf::unpin(pin(dir, BG_ACCEL_PIN_LINK)); !st)
    return st.error();

  // 3. Take sockets out of the sockhash once they hold no unread bytes.
  auto sockets = bpf::open_pinned(pin(dir, BG_ACCEL_PIN_SOCKETS));
  if (!sockets)
    return sockets.error();
  auto sk_state = bpf::open_pinned(pin(dir, BG_ACCEL_PIN_SK_STATE));
  if (!sk_state)
    return sk_state.error();
  DisableReport report;
  auto n = count_sockets(sockets->get());
  if (!n)
    return n.error();
  // Sockets whose psock still holds redirected messages: key bytes -> unread bytes.
  std::map<std::string, uint32_t> last_unread;
  if (*n > 0) {
    auto sweeper = Sweeper::open(sockets->get(), sk_state->get());
    if (!sweeper) {
      report.note = fmt::format(
          "cannot check which sockets still hold unread bytes ({}); they stay until they close",
          sweeper.error().what());
      log::warn("{}", report.note);
    } else {
      std::this_thread::sleep_for(kDrainGrace);
      auto deadline = std::chrono::steady_clock::now() + o.drain_timeout;
      for (;;) {
        auto recs = sweeper->scan();
        if (!recs)
          return recs.error();
        last_unread.clear();
        for (const auto &rec : *recs) {
          if (rec.ingress_pending != 0) {
            last_unread[std::string(reinterpret_cast<const char *>(&rec.key), sizeof(rec.key))] =
                rec.rmem_alloc;
            continue;
          }
          if (bpf_map_delete_elem(sockets->get(), &rec.key) == 0)
            report.released++;
        }
        if (last_unread.empty() || std::chrono::steady_clock::now() >= deadline)
          break;
        std::this_thread::sleep_for(kSweepInterval);
      }
    }
  }
  if (o.force) {
    for (const auto &[k, rmem] : last_unread) {
      if (bpf_map_delete_elem(sockets->get(), k.data()) == 0) {
        report.dropped++;
        report.dropped_bytes += rmem;
      }
    }
    // Sockets the sweeper could not look at.
    for (;;) {
      bg_accel_key key{};
      if (bpf_map_get_next_key(sockets->get(), nullptr, &key) != 0)
        break;
      if (bpf_map_delete_elem(sockets->get(), &key) == 0)
        report.dropped++;
    }
  }
  auto left = count_sockets(sockets->get());
  if (!left)
    return left.error();
  report.remaining = *left;
  if (report.remaining == 0) {
    if (auto st = remove_pins(dir); !st)
      return st.error();
    report.removed = true;
  }
  return report;
}

Result<AccelStatus> status(const std::string &bpffs) {
  AccelStatus s;
  if (auto st = bpf::ensure_bpffs(bpffs); !st)
    return st.error();
  std::string dir = pin_dir(bpffs);
  if (!bpf::exists(pin(dir, BG_ACCEL_PIN_SOCKETS)))
    return s;
  auto sockets = bpf::open_pinned(pin(dir, BG_ACCEL_PIN_SOCKETS));
  if (!sockets) {
    if (sockets.error().err() == ENOENT)  // disabled while we looked
      return s;
    return sockets.error();
  }
  auto minfo = bpf::map_info(sockets->get());
  if (!minfo)
    return minfo.error();
  s.max_sockets = minfo->max_entries;
  auto n = count_sockets(sockets->get());
  if (!n)
    return n.error();
  s.sockets = *n;
  if (auto congested = bpf::open_pinned(pin(dir, BG_ACCEL_PIN_CONGESTED)); congested) {
    bg_accel_key cur{}, next{};
    const void *prev = nullptr;
    while (bpf_map_get_next_key(congested->get(), prev, &next) == 0) {
      s.congested++;
      cur = next;
      prev = &cur;
    }
  }

  auto config = ConfigMap::open_pinned(pin(dir, BG_ACCEL_PIN_CONFIG));
  if (!config)
    return config.error();
  __u32 zero = 0;
  auto cfg = config->lookup(zero);
  if (!cfg)
    return cfg.error();
  bg_accel_config c = cfg->value_or(bg_accel_config{});
  s.state = (c.flags & BG_ACCEL_F_DRAINING) ? State::kDraining : State::kEnabled;
  s.cgroup_id = c.cgroup_id;
  if (s.state == State::kEnabled) {
    if (auto link = bpf::open_pinned(pin(dir, BG_ACCEL_PIN_LINK)); link) {
      if (auto info = link_info(link->get()); info) {
        s.link_id = info->id;
        s.sockops_prog_id = info->prog_id;
        s.cgroup_id = info->cgroup_id;
      }
    }
    if (auto root = unified_hierarchy(); root)
      s.cgroup = cgroup_path_of(*root, s.cgroup_id);
  }
  if (auto msg = bpf::open_pinned(pin(dir, BG_ACCEL_PIN_MSG)); msg)
    if (auto id = prog_id(msg->get()); id)
      s.msg_prog_id = *id;

  if (!(c.flags & BG_ACCEL_F_ANY_PORT)) {
    auto ports = PortsMap::open_pinned(pin(dir, BG_ACCEL_PIN_PORTS));
    if (!ports)
      return ports.error();
    for (__u32 w = 0; w < BG_ACCEL_PORT_WORDS; w++) {
      auto bits = ports->lookup(w);
      if (!bits)
        return bits.error();
      __u32 v = bits->value_or(0);
      for (unsigned b = 0; v && b < 32; b++)
        if (v & (1U << b))
          s.ports.push_back(static_cast<uint16_t>(w * 32 + b));
    }
  }
  auto addrs = AddrMap::open_pinned(pin(dir, BG_ACCEL_PIN_ADDRS));
  if (!addrs)
    return addrs.error();
  auto entries = addrs->dump();
  if (!entries)
    return entries.error();
  std::vector<core::Prefix> prefixes;
  for (const auto &[k, v] : *entries) {
    static const uint8_t kMapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    core::Prefix p;
    p.key = k;
    p.v4 = k.prefixlen >= 96 && std::memcmp(k.addr, kMapped, sizeof(kMapped)) == 0;
    prefixes.push_back(p);
  }
  std::sort(prefixes.begin(), prefixes.end());
  for (const auto &p : prefixes)
    s.addresses.push_back(core::format_prefix(p));

  auto counters = CounterMap::open_pinned(pin(dir, BG_ACCEL_PIN_COUNTERS));
  if (!counters)
    return counters.error();
  for (__u32 e = 0; e < BG_ACCEL_EVENT_NR; e++) {
    auto per_cpu = counters->lookup(e);
    if (!per_cpu)
      return per_cpu.error();
    for (const auto &v : *per_cpu) {
      s.counters[e].count += v.count;
      s.counters[e].bytes += v.bytes;
    }
  }
  return s;
}

}  // namespace bpfgate::agent::accel
