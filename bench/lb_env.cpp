#include "lb_env.hpp"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sched.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <utility>

#include <fmt/format.h>

#include "bpf/pin_set.hpp"
#include "bpfgate/abi/xdp.h"
#include "features/lb/lb_config.hpp"
#include "lb.skel.h"
#include "lb_bench.skel.h"
#include "util/log.hpp"

namespace bpfgate::bench {

namespace {

Status sh(const std::string &cmd) {
  log::debug("+ {}", cmd);
  int rc = std::system(cmd.c_str());
  if (rc != 0)
    return make_error(EIO, "`{}` failed (status {})", cmd, rc);
  return {};
}

}  // namespace

int remove_leftovers() {
  int removed = 0;
  std::error_code ec;
  for (const char *root : {"/run/netns", "/sys/fs/bpf"}) {
    for (const auto &e : std::filesystem::directory_iterator(root, ec)) {
      std::string name = e.path().filename();
      if (name.rfind("bglbn-", 0) != 0)
        continue;
      int pid = std::atoi(name.c_str() + 6);
      if (pid <= 0 || ::kill(pid, 0) == 0 || errno != ESRCH)
        continue;  // alive
      if (std::string(root) == "/run/netns")
        (void)sh("ip netns del " + name);
      else
        std::filesystem::remove_all(e.path(), ec);
      removed++;
    }
  }
  return removed;
}

Result<BenchNetns> BenchNetns::make(const std::string &name) {
  BenchNetns n;
  n.name_ = name;
  n.home_ = ::open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
  if (n.home_ < 0)
    return Error(errno, "open this process's network namespace");
  if (auto st = sh(fmt::format("ip netns add {}", name)); !st)
    return st.error();
  n.made_ = true;
  int fd = ::open(("/run/netns/" + name).c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0 || setns(fd, CLONE_NEWNET) != 0) {
    int e = errno;
    if (fd >= 0)
      ::close(fd);
    return Error(e, "enter namespace " + name);
  }
  ::close(fd);
  return n;
}

BenchNetns::BenchNetns(BenchNetns &&o) noexcept
    : name_(std::move(o.name_)),
      home_(std::exchange(o.home_, -1)),
      made_(std::exchange(o.made_, false)) {}

BenchNetns::~BenchNetns() {
  if (home_ >= 0) {
    (void)setns(home_, CLONE_NEWNET);
    ::close(home_);
  }
  if (made_)
    (void)sh(fmt::format("ip netns del {}", name_));
}

Status wire() {
  const char *cmds[] = {
      "ip link set lo up",
      "ip link add lbc0 type veth peer name lbc1",
      "ip link add lbb0 type veth peer name lbb1",
      "sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1",
      "ip link set lbc0 up",
      "ip link set lbc1 up",
      "ip link set lbb0 up",
      "ip link set lbb1 up",
      "ip addr add 198.18.0.1/24 dev lbc0",
      "ip addr add 2001:db8::1/64 dev lbc0 nodad",
      "ip addr add 198.18.1.1/24 dev lbb0",
      "ip addr add 2001:db8:1::1/64 dev lbb0 nodad",
  };
  for (const char *c : cmds)
    if (auto st = sh(c); !st)
      return st;
  for (int i = 0; i < 3; i++)
    for (const char *a : {kBackends4[i], kBackends6[i]})
      if (auto st = sh(fmt::format("ip neigh replace {} lladdr 02:00:00:01:00:{:02x} dev lbb0 "
                                   "nud permanent",
                                   a, 0x10 + i));
          !st)
        return st;
  return {};
}

Result<PinnedBalancer> PinnedBalancer::open(const std::string &dir) {
  if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST)
    return Error(errno, "mkdir " + dir);
  PinnedBalancer p;
  p.dir_ = dir;
  auto b = agent::lb::Balancer::open(dir, agent::lb::Geometry{}, false);
  if (!b)
    return b.error();
  p.b_.emplace(std::move(*b));
  std::vector<agent::lb::PlannedService> services;
  for (bool v6 : {false, true}) {
    agent::lb::PlannedService s;
    s.name = v6 ? "web6" : "web4";
    auto vip = core::parse_lb_endpoint(
        v6 ? fmt::format("[{}]:80", kVip6) : fmt::format("{}:80", kVip4), true);
    if (!vip)
      return vip.error();
    s.vip = *vip;
    s.proto = IPPROTO_TCP;
    for (int i = 0; i < 3; i++) {
      auto at = core::parse_lb_endpoint(v6 ? kBackends6[i] : kBackends4[i], false);
      if (!at)
        return at.error();
      at->port = 80;
      s.backends.push_back({.at = *at, .weight = 100});
    }
    services.push_back(std::move(s));
  }
  if (auto st = p.b_->apply(services); !st)
    return st.error().context("apply the bench's services");
  return p;
}

PinnedBalancer::PinnedBalancer(PinnedBalancer &&o) noexcept
    : dir_(std::exchange(o.dir_, "")), b_(std::move(o.b_)) {
  o.b_.reset();
}

PinnedBalancer::~PinnedBalancer() {
  if (b_)
    (void)b_->remove();
  if (!dir_.empty())
    (void)::rmdir(dir_.c_str());
}

Result<std::vector<uint64_t>> lb_counters(int fd) {
  std::vector<uint64_t> out(BG_LB_COUNTER_NR);
  std::vector<bg_counter> v(static_cast<size_t>(libbpf_num_possible_cpus()));
  for (uint32_t k = 0; k < BG_LB_COUNTER_NR; k++) {
    if (bpf_map_lookup_elem(fd, &k, v.data()) != 0)
      return Error(errno, "read the balancer's counters");
    for (const auto &c : v)
      out[k] += c.packets;
  }
  return out;
}

Result<std::unique_ptr<Dispatched>> Dispatched::make(const bpf_object *bench,
                                                     const PinnedBalancer &lb, int ifindex,
                                                     const std::string &iface) {
  auto d = std::unique_ptr<Dispatched>(new Dispatched(ifindex, iface));
  d->filter_ = lb_bench__open();
  d->lb_ = lb__open();
  if (!d->filter_ || !d->lb_)
    return make_error(errno, "open the objects for the dispatcher");
  bpf_map *m;
  bpf_object__for_each_map(m, d->filter_->obj) {
    const bpf_map *own = bpf_object__find_map_by_name(bench, bpf_map__name(m));
    if (!own || bpf_map__reuse_fd(m, bpf_map__fd(own)))
      return make_error(EINVAL, "share the bench's map {} with the dispatched filter",
                        bpf_map__name(m));
  }
  bpf_program *p;
  bpf_object__for_each_program(p, d->filter_->obj)
      bpf_program__set_autoload(p, p == d->filter_->progs.bg_lbb_filter_ext);
  const auto set = agent::lb::pins(lb.dir());
  for (const auto &spec : set.specs()) {
    if (spec.kind != bpf::PinSpec::kMap)
      continue;
    bpf_map *lm = bpf_object__find_map_by_name(d->lb_->obj, spec.object.c_str());
    if (!lm || bpf_map__reuse_fd(lm, lb.fd(spec.pin)))
      return make_error(EINVAL, "share the balancer's map {} with the dispatched one", spec.object);
  }
  auto a = bpf::attach_dispatched(d->filter_->obj, "bg_lbb_filter_ext", ifindex, iface,
                                  bpf::XdpMode::kNative, 10);
  if (!a)
    return a.error().context("the filter in the dispatcher");
  d->attached_.push_back(std::move(*a));
  auto b =
      bpf::attach_dispatched(d->lb_->obj, "bg_xdp_lb", ifindex, iface, bpf::XdpMode::kNative, 20);
  if (!b)
    return b.error().context("the balancer in the dispatcher");
  d->attached_.push_back(std::move(*b));
  auto q = bpf::query_dispatcher(ifindex);
  if (!q || !q->dispatcher || q->progs.size() != 2)
    return make_error(EPROTO, "{} does not run a dispatcher of two programs", iface);
  d->main_ = bpf_prog_get_fd_by_id(q->main_id);
  if (d->main_ < 0)
    return Error(errno, "open the dispatcher");
  return d;
}
Dispatched::~Dispatched() {
  if (main_ >= 0)
    ::close(main_);
  for (auto it = attached_.rbegin(); it != attached_.rend(); ++it)
    if (auto st = bpf::detach_dispatched(it->prog.get(), ifindex_, iface_); !st)
      log::warn("take {} out of the dispatcher: {}", it->prog_id, st.error().what());
  lb_bench__destroy(filter_);
  lb__destroy(lb_);
}

}  // namespace bpfgate::bench
