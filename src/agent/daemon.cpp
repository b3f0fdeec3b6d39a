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

#include "agent/seccomp.hpp"
#include "util/audit.hpp"
#include "util/log.hpp"
#include "util/text.hpp"

namespace bpfgate::agent {

Status check_environment(const core::Config &c, bool absent_interfaces_ok) {
  return check_features(make_features({}), c, absent_interfaces_ok);
}

Result<std::unique_ptr<Daemon>> Daemon::start(const DaemonOptions &opts) {
  auto cfg = core::load_config(opts.config_path);
  if (!cfg)
    return cfg.error();
  Features features = make_features({.bpffs = opts.bpffs});
  if (auto st = check_features(features, *cfg, true); !st)
    return st.error();
  std::unique_ptr<Daemon> d(new Daemon(opts));
  d->features_ = std::move(features);
  if (auto st = d->open_loop(); !st)
    return st.error();
  // First the control socket: a second agent on the same one stops here,
  // before it touches the datapath.
  if (auto st = d->open_control_socket(cfg->control_socket); !st)
    return st.error();
  for (auto &f : d->features_)
    if (auto st = f->prepare(*cfg); !st)
      return st.error();
  if (auto st = d->converge(*cfg, audit::by_agent()); !st)
    return st.error();
  d->config_ = *cfg;
  d->started_ = true;
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

Status Daemon::converge(const core::Config &c, const std::string &by) {
  for (auto &f : features_)
    if (auto st = f->converge(started_ ? &config_ : nullptr, c, by); !st)
      return st;
  if (auto st = watch_features(); !st)
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
  for (auto &f : features_)
    f->reloaded(st.ok());
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
  if (auto st = check_features(features_, *cfg, true); !st)
    return st;
  if (auto st = converge(*cfg, by); !st)
    return st;
  if (cfg->seccomp != config_.seccomp)
    log::warn(
        "agent.seccomp is now {}: that takes effect when the agent restarts (the filter is "
        "installed at start, and cannot be lifted)",
        cfg->seccomp ? "on" : "off");
  config_ = *cfg;
  return {};
}

Status Daemon::watch_features() {
  for (auto &f : features_)
    for (int fd : f->fds())
      if (feature_fds_.emplace(fd, f.get()).second)
        if (auto st = watch(fd); !st)
          return st;
  return {};
}

void Daemon::on_links_changed() {
  for (auto &f : features_)
    f->links_changed(config_, audit::by_agent());
}

void Daemon::sweep_now() {
  for (auto &f : features_)
    f->sweep(config_);
}

void Daemon::stop(const signalfd_siginfo &si) {
  int sig = static_cast<int>(si.ssi_signo);
  bool keep = opts_.keep_datapath || config_.keep_datapath;
  auto by = audit::by_signal(fmt::format("SIG{}", sigabbrev_np(sig)), si.ssi_uid,
                             static_cast<int32_t>(si.ssi_pid));
  for (auto f = features_.rbegin(); f != features_.rend(); ++f)
    (*f)->stop(config_, keep, by);
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
      } else if (auto f = feature_fds_.find(fd); f != feature_fds_.end()) {
        f->second->on_readable(fd);
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
