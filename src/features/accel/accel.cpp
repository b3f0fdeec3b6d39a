// Socket acceleration: enable (load, pin, attach to a cgroup), the pins every
// part shares (accel_pins.hpp), the port list. Disable is in accel_disable.cpp,
// status in accel_status.cpp, the host checks in accel_host.cpp.
#include "features/accel/accel.hpp"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <set>

#include "accel_sockops.skel.h"
#include "bpf/error.hpp"
#include "bpf/features.hpp"
#include "bpf/object.hpp"
#include "bpf/pin.hpp"
#include "core/cidr.hpp"
#include "core/values.hpp"
#include "features/accel/accel_host.hpp"
#include "features/accel/accel_pins.hpp"
#include "util/log.hpp"

namespace bpfgate::agent::accel {

bpf::PinSet pins(const std::string &bpffs) {
  return bpf::PinSet(
      pin_dir(bpffs),
      {bpf::map_pin(BG_ACCEL_PIN_SOCKETS, "bg_accel_sockets"),
       bpf::map_pin(BG_ACCEL_PIN_SK_STATE, "bg_accel_sk_state"),
       bpf::map_pin<bg_accel_key, __u64>(BG_ACCEL_PIN_CONGESTED, "bg_accel_congested"),
       bpf::map_pin<__u32, bg_accel_config>(BG_ACCEL_PIN_CONFIG, "bg_accel_config"),
       bpf::map_pin<__u32, bg_accel_counter>(BG_ACCEL_PIN_COUNTERS, "bg_accel_counters"),
       bpf::map_pin<__u32, __u32>(BG_ACCEL_PIN_PORTS, "bg_accel_ports"),
       bpf::map_pin<bg_lpm_key, __u32>(BG_ACCEL_PIN_ADDRS, "bg_accel_addrs"),
       bpf::prog_pin(BG_ACCEL_PIN_SOCKOPS, "bg_accel_sockops"),
       bpf::prog_pin(BG_ACCEL_PIN_MSG, "bg_accel_msg"), bpf::link_pin(BG_ACCEL_PIN_LINK)});
}

Error not_enabled(const std::string &dir) {
  return make_error(ENOENT,
                    "socket acceleration is not enabled (nothing pinned under {}); enable it "
                    "with `bpfgate accel enable`",
                    dir);
}

Result<bpf::DirLock> lock(const bpf::PinSet &set, bool create) {
  auto l = set.lock(create);
  if (!l && l.error().err() == ENOENT && !create)
    return not_enabled(set.dir());
  return l;
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

namespace {

using AccelSkel = bpf::Skeleton<bpf::SkeletonTraits<accel_sockops, accel_sockops__open_opts,
                                                    accel_sockops__load, accel_sockops__destroy>>;

// Where and for whom acceleration is enabled.
struct Target {
  std::string cgroup;  // absolute path
  uint64_t netns = 0;  // this network namespace's cookie
  uint64_t cgid = 0;
};

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

// Writes what is asked into the ports, address and config maps.
Status write_maps(const bpf::PinSet &set, const Target &t, const EnableOptions &o,
                  const std::vector<core::Prefix> &prefixes) {
  ConfigMap config(set.fd(BG_ACCEL_PIN_CONFIG));
  PortsMap ports(set.fd(BG_ACCEL_PIN_PORTS));
  AddrMap addrs(set.fd(BG_ACCEL_PIN_ADDRS));
  if (auto st = write_ports(ports, o.ports); !st)
    return st;
  if (auto st = write_addresses(addrs, prefixes); !st)
    return st;
  return write_config(config, t.netns, t.cgid, o.ports.empty());
}

// Attaches the sock_ops program to the cgroup and pins the link; on failure
// nothing stays attached.
Status attach_link(bpf::PinSet &set, const std::string &cgroup) {
  auto link = attach_cgroup(set.fd(BG_ACCEL_PIN_SOCKOPS), cgroup);
  if (!link)
    return link.error();
  if (auto st = set.pin(BG_ACCEL_PIN_LINK, std::move(*link)); !st) {
    bpf_link_detach(set.fd(BG_ACCEL_PIN_LINK));
    return st;
  }
  return {};
}

EnableReport report_of(const bpf::PinSet &set) {
  EnableReport r;
  if (auto info = bpf::link_info(set.fd(BG_ACCEL_PIN_LINK)); info) {
    r.link_id = info->id;
    r.sockops_prog_id = info->prog_id;
  }
  if (auto id = bpf::prog_id_of(set.fd(BG_ACCEL_PIN_MSG)); id)
    r.msg_prog_id = *id;
  return r;
}

// Attaches the sock_ops program again to a hierarchy that still holds the
// sockhash of an unfinished disable: its sockets stay where they are.
Result<EnableReport> resume(const bpf::PinSet &pinned, const Target &t, const EnableOptions &o,
                            const std::vector<core::Prefix> &prefixes) {
  auto set = bpf::PinSet::adopt(pinned.dir(), pinned.specs());
  if (!set)
    return set.error();
  if (auto st = write_maps(*set, t, o, prefixes); !st)
    return st.error();
  if (auto st = attach_link(*set, t.cgroup); !st)
    return st.error();
  EnableReport r = report_of(*set);
  r.resumed_draining = true;
  return r;
}

// Refuses a kernel that does not count redirected bytes in FIONREAD, unless told not to check.
Status check_fionread(const bpf::PinSet &set, uint64_t netns, const EnableOptions &o) {
  if (o.ignore_fionread_check)
    return {};
  auto visible =
      fionread_counts_redirects(set.fd(BG_ACCEL_PIN_SOCKETS), set.fd(BG_ACCEL_PIN_SK_STATE),
                                set.fd(BG_ACCEL_PIN_COUNTERS), netns);
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
  return {};
}

Result<EnableReport> load_and_attach(const bpf::PinSet &empty, const Target &t,
                                     const EnableOptions &o,
                                     const std::vector<core::Prefix> &prefixes) {
  auto skel = AccelSkel::open("accel_sockops");
  if (!skel)
    return skel.error();
  bpf_map__set_max_entries((*skel)->maps.bg_accel_sockets, o.max_sockets);
  if (auto st = skel->load(); !st)
    return st.error();
  auto set = bpf::PinSet::from_object(empty.dir(), empty.specs(), (*skel)->obj);
  if (!set)
    return set.error();
  if (auto st = write_maps(*set, t, o, prefixes); !st)
    return st.error();
  if (int err = bpf_prog_attach(set->fd(BG_ACCEL_PIN_MSG), set->fd(BG_ACCEL_PIN_SOCKETS),
                                BPF_SK_MSG_VERDICT, 0);
      err)
    return bpf::libbpf_error(err, "attach the sk_msg program to the sockhash");
  if (auto st = check_fionread(*set, t.netns, o); !st)
    return st.error();
  // Pin everything, the cgroup link last: a failure before it leaves nothing
  // running, since the sockhash (and the sk_msg program it holds) goes with
  // its last reference.
  if (auto st = set->pin(); !st)
    return st.error();
  if (auto st = attach_link(*set, t.cgroup); !st) {
    (void)set->remove();
    return st.error();
  }
  return report_of(*set);
}

Status check_host() {
  if (auto st =
          bpf::require_privileges("bpfgate accel", "load BPF programs and attach them to a cgroup");
      !st)
    return st;
  for (auto [type, name] :
       {std::pair{BPF_PROG_TYPE_SOCK_OPS, "sock_ops"}, std::pair{BPF_PROG_TYPE_SK_MSG, "sk_msg"}})
    if (!bpf::has_prog_type(type))
      return make_error(EOPNOTSUPP, "this kernel ({}) cannot load {} programs",
                        bpf::kernel_release(), name);
  return {};
}

// Refuses to enable twice, naming the cgroup it runs for.
Status check_not_enabled(const bpf::PinSet &set) {
  if (!bpf::exists(set.path(BG_ACCEL_PIN_LINK)))
    return {};
  std::string where = "another cgroup";
  if (auto link = bpf::open_pinned(set.path(BG_ACCEL_PIN_LINK)); link)
    if (auto info = bpf::link_info(link->get()); info)
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

// What enable is asked to do, checked: the cgroup, this namespace, the addresses.
Result<Target> target_of(const EnableOptions &o) {
  auto cgroup = resolve_cgroup(o.cgroup);
  if (!cgroup)
    return cgroup.error();
  if (auto st = check_host(); !st)
    return st.error();
  auto netns = netns_cookie();
  if (!netns)
    return netns.error();
  auto cgid = cgroup_id(*cgroup);
  if (!cgid)
    return cgid.error();
  return Target{*cgroup, *netns, *cgid};
}

}  // namespace

Result<std::vector<uint16_t>> parse_ports(const std::string &list) {
  return core::parse_port_list(list);
}

std::string pin_dir(const std::string &bpffs) {
  return bpf::feature_dir(bpffs, BG_ACCEL_PIN_DIR);
}

Result<EnableReport> enable(const std::string &bpffs, const EnableOptions &o) {
  if (o.max_sockets == 0 || o.max_sockets > BG_ACCEL_MAX_SOCKETS_MAX)
    return make_error(EINVAL, "max sockets must be 1 to {}, not {}", BG_ACCEL_MAX_SOCKETS_MAX,
                      o.max_sockets);
  auto prefixes = wanted_prefixes(o.addresses);
  if (!prefixes)
    return prefixes.error();
  auto target = target_of(o);
  if (!target)
    return target.error();
  if (auto st = bpf::ensure_bpffs(bpffs); !st)
    return st.error();
  bpf::PinSet set = pins(bpffs);
  auto held = lock(set, true);
  if (!held)
    return held.error();
  if (auto st = check_not_enabled(set); !st)
    return st.error();
  Result<EnableReport> r = bpf::exists(set.path(BG_ACCEL_PIN_SOCKETS))
                               ? resume(set, *target, o, *prefixes)
                               : load_and_attach(set, *target, o, *prefixes);
  if (!r) {
    (void)bpf::remove_dir_if_empty(set.dir());
    return r;
  }
  r->cgroup = target->cgroup;
  for (const auto &p : *prefixes)
    r->addresses.push_back(core::format_prefix(p));
  return r;
}

}  // namespace bpfgate::agent::accel
