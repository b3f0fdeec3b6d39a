#include "agent/daemon.hpp"

#include <signal.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <set>
#include <tuple>

#include <fmt/ranges.h>

#include "features/accel/accel.hpp"
#include "features/xdp/blocklist.hpp"
#include "features/observe/observer.hpp"
#include "features/xdp/replace.hpp"
#include "agent/seccomp.hpp"
#include "features/tc/tc.hpp"
#include "bpf/pin.hpp"
#include "core/duration.hpp"
#include "core/policy.hpp"
#include "util/audit.hpp"
#include "util/log.hpp"
#include "util/netif.hpp"
#include "util/text.hpp"

namespace bpfgate::agent {

namespace {
// The config's accel.ports; empty: every port.
Result<std::vector<uint16_t>> accel_ports(const core::AccelConfig &a) {
  if (a.ports.empty())
    return std::vector<uint16_t>{};
  return accel::parse_ports(a.ports);
}
}  // namespace

Status check_environment(const core::Config &c, bool absent_interfaces_ok) {
  std::string errors;
  int n = 0;
  for (const auto &i : c.interfaces) {
    if (!absent_interfaces_ok && util::ifindex_of(i.name) == 0) {
      errors += fmt::format(
          "\n{}:{}: unknown interface '{}' (not in this network namespace; see "
          "`ip link`)",
          c.path, i.line, i.name);
      n++;
    }
  }
  if (c.accel) {
    if (auto p = accel_ports(*c.accel); !p) {
      errors +=
          fmt::format("\n{}:{}: accel.ports: {}", c.path, c.accel->ports_line, p.error().what());
      n++;
    }
    if (auto g = accel::resolve_cgroup(c.accel->cgroup); !g) {
      errors +=
          fmt::format("\n{}:{}: accel.cgroup: {}", c.path, c.accel->cgroup_line, g.error().what());
      n++;
    }
  }
  if (n == 0)
    return tc_check_environment(c);
  return make_error(ENODEV, "{} error{} in {}; nothing was applied:{}", n, n == 1 ? "" : "s",
                    c.path, errors);
}

Result<std::unique_ptr<Daemon>> Daemon::start(const DaemonOptions &opts) {
  auto cfg = core::load_config(opts.config_path);
  if (!cfg)
    return cfg.error();
  if (auto st = check_environment(*cfg, true); !st)
    return st.error();
  std::unique_ptr<Daemon> d(new Daemon(opts));
  if (auto st = d->open_loop(); !st)
    return st.error();
  // First the control socket: a second agent on the same one stops here,
  // before it touches the datapath.
  if (auto st = d->open_control_socket(cfg->control_socket); !st)
    return st.error();
  // A metrics address that cannot be bound fails the start before anything
  // is attached, not after.
  if (cfg->metrics.enabled)
    if (auto st = MetricsServer::check_bindable(cfg->metrics.address, cfg->metrics.port); !st)
      return st.error();
  d->load_saved_blocks(*cfg);
  if (auto st = d->converge(*cfg, audit::by_agent()); !st)
    return st.error();
  d->config_ = *cfg;
  auto obs = Observer::start(opts.bpffs, *cfg, d->filters_);
  if (!obs)
    return obs.error();
  d->observer_ = std::move(*obs);
  if (auto st = d->watch(d->observer_->fd()); !st)
    return st.error();
  if (auto st = confine(*cfg); !st)
    return st.error();
  return d;
}

Status Daemon::confine(const core::Config &c) {
  if (!c.seccomp) {
    log::info("seccomp: off (agent.seccomp in {}): the agent may make any system call", c.path);
    return {};
  }
  auto r = seccomp::install();
  if (!r)
    return r.error().context(
        "confine the agent (agent.seccomp: off runs it without its seccomp filter)");
  log::info("seccomp: on: {} system calls allowed, any other fails with EPERM", r->syscalls);
  return {};
}

Daemon::~Daemon() {
  if (!control_path_.empty())
    ::unlink(control_path_.c_str());
}

Status Daemon::watch(int fd) {
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.fd = fd;
  if (epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, fd, &ev) != 0)
    return Error(errno, "epoll_ctl");
  return {};
}

Status Daemon::open_loop() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGHUP);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  if (sigprocmask(SIG_BLOCK, &set, nullptr) != 0)
    return Error(errno, "block signals");
  signals_.reset(signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK));
  if (!signals_.valid())
    return Error(errno, "signalfd");
  timer_.reset(timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK));
  if (!timer_.valid())
    return Error(errno, "timerfd_create");
  epoll_.reset(epoll_create1(EPOLL_CLOEXEC));
  if (!epoll_.valid())
    return Error(errno, "epoll_create1");
  for (int fd : {signals_.get(), timer_.get()})
    if (auto st = watch(fd); !st)
      return st;
  auto links = LinkWatch::open();
  if (!links)
    return links.error();
  links_.emplace(std::move(*links));
  return watch(links_->fd());
}

void Daemon::upgrade_adopted(const std::string &iface, const core::Config &c,
                             const std::string &by) {
  if (filters_.at(iface).attach() != XdpAttach::kDirect)
    return;  // libxdp's dispatcher replaces its programs itself
  auto r = replace_program(opts_.bpffs, iface, false);
  if (!r) {
    log::warn("{}: the running filter program stays (this version's could not replace it: {})",
              iface, r.error().what());
    return;
  }
  if (!r->replaced)
    return;
  log::info("{}: replaced the running filter program (id {}) by this version's (id {}) in place",
            iface, r->old_prog_id, r->new_prog_id);
  audit::Entry("replace", by)
      .set("iface", iface)
      .set("old_prog_id", r->old_prog_id)
      .set("prog_id", r->new_prog_id)
      .config(c.hash)
      .write();
}

Status Daemon::converge(const core::Config &c, const std::string &by) {
  core::PolicyImage image = core::compile(c);
  std::set<std::string> wanted;
  for (const auto &i : c.interfaces) {
    wanted.insert(i.name);
    if (auto st = converge_iface(i, c, image, by); !st)
      return st;
  }
  std::erase_if(absent_, [&](const std::string &n) { return !wanted.count(n); });
  // Interfaces no longer in the config are detached.
  for (auto it = filters_.begin(); it != filters_.end();) {
    if (wanted.count(it->first)) {
      ++it;
      continue;
    }
    std::string name = it->first;
    it = filters_.erase(it);
    absent_.erase(name);
    if (auto st = detach(opts_.bpffs, name); !st)
      log::warn("{}: {}", name, st.error().what());
    else
      audit::Entry("detach", by)
          .set("iface", name)
          .set("why", "no longer in the config")
          .config(c.hash)
          .write();
  }
  if (auto st = tc_converge(opts_.bpffs, config_.tc, c.tc, by, c.hash); !st)
    return st;
  if (auto st = accel_converge(c, by); !st)
    return st;
  std::string ifaces;
  for (const auto &i : c.interfaces)
    ifaces += (ifaces.empty() ? "" : ",") + i.name;
  audit::Entry("apply", by)
      .set("ifaces", ifaces)
      .set("allow", c.allow.size())
      .set("deny", c.deny.size())
      .set("rules", c.rules.size())
      .set("path", c.path)
      .config(c.hash)
      .write();
  itimerspec t{};
  t.it_interval.tv_sec = static_cast<time_t>(c.sweep_interval_ns / 1'000'000'000ULL);
  t.it_interval.tv_nsec = static_cast<long>(c.sweep_interval_ns % 1'000'000'000ULL);
  t.it_value = t.it_interval;
  timerfd_settime(timer_.get(), 0, &t, nullptr);
  return {};
}

Status Daemon::reload(const std::string &by) {
  Status st = reload_config(by);
  if (observer_)
    observer_->note_reload(st.ok());
  // The outcome, after the changes it made (audited one by one in converge).
  audit::Entry e("reload", by);
  e.set("path", opts_.config_path).set("result", st ? "ok" : "refused");
  if (!st)
    e.set("error", st.error().what());
  e.config(config_.hash).write();
  return st;
}

Status Daemon::reload_config(const std::string &by) {
  auto cfg = core::load_config(opts_.config_path);
  if (!cfg)
    return cfg.error();
  if (auto st = check_environment(*cfg, true); !st)
    return st;
  if (auto st = converge(*cfg, by); !st)
    return st;
  if (observer_)
    if (auto st = observer_->apply(*cfg, filters_, by); !st)
      return st;
  if (cfg->seccomp != config_.seccomp)
    log::warn(
        "agent.seccomp is now {}: that takes effect when the agent restarts (the filter is "
        "installed at start, and cannot be lifted)",
        cfg->seccomp ? "on" : "off");
  if (cfg->state_dir != config_.state_dir)
    log::warn(
        "agent.state_dir is now '{}': that takes effect when the agent restarts (the "
        "manual blocks stay in {})",
        cfg->state_dir.empty() ? "off" : cfg->state_dir,
        blocks_path_.empty() ? "no file" : blocks_path_);
  config_ = *cfg;
  return {};
}

Status Daemon::accel_converge(const core::Config &c, const std::string &by) {
  if (!c.accel) {
    if (!accel_managed_)
      return {};
    stop_accel(by);
    return {};
  }
  auto cur = accel::status(opts_.bpffs);
  if (!cur)
    return cur.error().context("socket acceleration");
  auto ports = accel_ports(*c.accel);
  auto cgroup = accel::resolve_cgroup(c.accel->cgroup);
  if (!ports || !cgroup)
    return (!ports ? ports.error() : cgroup.error()).context("socket acceleration");
  if (cur->state == accel::State::kEnabled) {
    if (cur->cgroup != *cgroup || cur->ports != *ports)
      log::warn(
          "socket acceleration runs on cgroup {} (ports {}); the config asks for {} "
          "(ports {}): `bpfgate accel disable` and reload to change it",
          cur->cgroup, cur->ports.empty() ? "any" : fmt::format("{}", fmt::join(cur->ports, ",")),
          *cgroup, ports->empty() ? "any" : c.accel->ports);
    else if (!accel_managed_)
      log::info("socket acceleration: adopted (cgroup {}, {} sockets)", cur->cgroup, cur->sockets);
    accel_managed_ = true;
    return {};
  }
  accel::EnableOptions o;
  o.cgroup = c.accel->cgroup;
  o.ports = *ports;
  o.addresses = c.accel->addresses;
  if (c.accel->max_sockets)
    o.max_sockets = c.accel->max_sockets;
  auto r = accel::enable(opts_.bpffs, o);
  if (!r)
    return r.error().context("socket acceleration");
  audit::Entry("accel_enable", by)
      .set("cgroup", r->cgroup)
      .set("ports", c.accel->ports.empty() ? "any" : c.accel->ports)
      .set("prog_id", r->sockops_prog_id)
      .config(c.hash)
      .write();
  accel_managed_ = true;
  return {};
}

void Daemon::stop_accel(const std::string &by) {
  housekeeper_.reset();
  accel_managed_ = false;
  accel::DisableOptions o;
  o.drain_timeout = std::chrono::milliseconds(2000);
  auto r = accel::disable(opts_.bpffs, o);
  if (!r) {
    log::warn("socket acceleration: disable: {}", r.error().what());
    return;
  }
  if (!r->note.empty())
    log::warn("socket acceleration: {}", r->note);
  audit::Entry("accel_disable", by)
      .set("released", r->released)
      .set("draining", r->remaining)
      .write();
}

void Daemon::accel_housekeeping() {
  if (!accel_managed_)
    return;
  if (!housekeeper_) {
    auto hk = accel::Housekeeper::open(opts_.bpffs);
    if (!hk) {
      if (!housekeeper_warned_)
        log::warn("socket acceleration housekeeping: {}", hk.error().what());
      housekeeper_warned_ = true;
      return;
    }
    housekeeper_ = std::make_unique<accel::Housekeeper>(std::move(*hk));
  }
  auto r = housekeeper_->check(accel::default_backlog_limit());
  if (!r) {
    log::warn("socket acceleration housekeeping: {}", r.error().what());
    housekeeper_.reset();
    return;
  }
  if (r->newly_marked)
    log::warn(
        "socket acceleration: {} socket(s) hold more than {} unread bytes; their peers "
        "fall back to TCP",
        r->newly_marked, accel::default_backlog_limit());
}

void Daemon::log_refusals(const std::string &iface, Datapath &dp) {
  auto now = dp.stats();
  if (!now)
    return;
  // What the datapath could not add to a full table: counted there (`status`,
  // /metrics), said here once a sweep; at the first sweep, all since load.
  auto it = refusals_seen_.try_emplace(iface, StatTotals{}).first;
  auto blocklist = bpf::map_info(dp.blocklist().fd());
  auto known = dp.max_known();
  const std::tuple<bg_stat, const char *, uint32_t> full[] = {
      {BG_STAT_AUTOBLOCK_FAILED, "auto-blocks refused: the blocklist is full",
       blocklist ? blocklist->max_entries : 0},
      {BG_STAT_KNOWN_FULL, "proofs refused: the known table is full", known ? *known : 0},
  };
  for (const auto &[stat, what, max] : full)
    if ((*now)[stat] > it->second[stat])
      log::warn("{}: {} {} ({} entries; {} since the filter was loaded)", iface,
                (*now)[stat] - it->second[stat], what, max, (*now)[stat]);
  it->second = *now;
}

void Daemon::sweep_now() {
  accel_housekeeping();
  for (auto &[name, f] : filters_) {
    log_refusals(name, f.datapath());
    auto r = sweep(f.datapath(), config_.source_idle_ns);
    if (!r) {
      log::warn("{}: sweep: {}", name, r.error().what());
      continue;
    }
    if (observer_)
      observer_->on_sweep(name, f.datapath(), *r);
    for (const auto &b : r->released) {
      audit::Entry("unblock", audit::by_agent())
          .set("iface", name)
          .set("prefix", core::format_prefix(b.prefix))
          .set("why", "expired")
          .set("reason", to_string(static_cast<bg_block_reason>(b.value.reason)))
          .set("drops", b.value.drops)
          .write();
      known_blocks_.erase(name + " " + core::format_prefix(b.prefix));
    }
    if (r->sources_removed || r->known_removed)
      log::debug("{}: swept {} idle per-source entries of {} and {} known of {}", name,
                 r->sources_removed, r->sources_seen, r->known_removed, r->known_seen);
    auto blocks = list_blocks(f.datapath());
    if (!blocks)
      continue;
    for (const auto &b : *blocks) {
      std::string id = name + " " + core::format_prefix(b.prefix);
      if (b.expired || !known_blocks_.emplace(id, b.value.added_ns).second)
        continue;
      // A manual block was audited by whoever made it (the CLI); an automatic
      // one is the datapath's, found here.
      if (b.value.reason == BG_BLOCK_MANUAL) {
        log::info("{}: blocked {} (manual{})", name, core::format_prefix(b.prefix),
                  b.value.expires_ns ? ", for " + core::format_duration_ns(b.remaining_ns) : "");
        continue;
      }
      audit::Entry("block", audit::by_datapath())
          .set("iface", name)
          .set("prefix", core::format_prefix(b.prefix))
          .set("reason", to_string(static_cast<bg_block_reason>(b.value.reason)))
          .set("ttl", b.value.expires_ns ? core::format_duration_ns(b.remaining_ns) : "none")
          .write();
    }
  }
  save_blocks();
}

void Daemon::stop(const signalfd_siginfo &si) {
  int sig = static_cast<int>(si.ssi_signo);
  bool keep = opts_.keep_datapath || config_.keep_datapath;
  auto by = audit::by_signal(fmt::format("SIG{}", sigabbrev_np(sig)), si.ssi_uid,
                             static_cast<int32_t>(si.ssi_pid));
  for (auto it = filters_.begin(); it != filters_.end();) {
    std::string name = it->first;
    it = filters_.erase(it);
    if (keep)
      continue;
    if (auto st = detach(opts_.bpffs, name); !st)
      log::warn("{}: {}", name, st.error().what());
    else
      audit::Entry("detach", by).set("iface", name).set("why", "agent stopping").write();
  }
  if (observer_)
    observer_->stop(keep);
  tc_stop(opts_.bpffs, config_.tc, keep, by);
  if (accel_managed_ && !keep)
    stop_accel(by);
  log::info("stopping on {}: {}", strsignal(sig),
            keep ? "the datapath keeps running from its pins" : "detached");
}

Status Daemon::run() {
  log::info("bpfgate agent running (config {}, control socket {})", opts_.config_path,
            control_path_);
  for (;;) {
    epoll_event evs[8];
    int n = epoll_wait(epoll_.get(), evs, 8, expire_control_clients());
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0)
      return Error(errno, "epoll_wait");
    for (int i = 0; i < n; i++) {
      int fd = evs[i].data.fd;
      if (fd == timer_.get()) {
        uint64_t ticks;
        (void)!read(fd, &ticks, sizeof(ticks));
        sweep_now();
      } else if (links_ && fd == links_->fd()) {
        if (links_->drain())
          on_links_changed();
      } else if (fd == control_.get()) {
        accept_control();
      } else if (control_clients_.count(fd)) {
        on_control_client(fd);
      } else if (observer_ && fd == observer_->fd()) {
        observer_->on_readable();
      } else if (fd == signals_.get()) {
        signalfd_siginfo si{};
        while (read(fd, &si, sizeof(si)) == sizeof(si)) {
          if (si.ssi_signo == SIGHUP) {
            auto by = audit::by_signal("SIGHUP", si.ssi_uid, static_cast<int32_t>(si.ssi_pid));
            if (auto st = reload(by); !st)
              log::error("reload refused, the running policy stays: {}", st.error().what());
            continue;
          }
          stop(si);
          return {};
        }
      }
    }
  }
}

}  // namespace bpfgate::agent
