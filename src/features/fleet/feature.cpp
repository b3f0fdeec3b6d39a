#include "features/fleet/feature.hpp"

#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include <filesystem>

#include "features/fleet/metrics.hpp"
#include "features/xdp/blocklist.hpp"
#include "util/log.hpp"

namespace bpfgate::agent {

namespace {
// The publishing scan (fleet.hpp): looked for every kTickNs; made when the
// blocklists changed, at most every kBusyFactor times its cost (a fifth of
// the loop's time while blocks keep coming one by one), kStormFactor times
// after a scan that found more than kStormChanges changes (an auto-block
// storm: scanning a growing table that often took the CPU etcd and the
// publisher needed, and the publish rate holds most of it back anyway), and
// otherwise every kReconcileNs (10 times its cost when more), to reconcile.
constexpr uint64_t kTickNs = 25'000'000;
constexpr uint64_t kBusyFactor = 4;
constexpr uint64_t kStormFactor = 10;
constexpr size_t kStormChanges = 64;
constexpr uint64_t kReconcileNs = 2'000'000'000;

bool same_join(const core::FleetConfig &a, const core::FleetConfig &b) {
  auto tls = [](const core::FleetConfig &c) {
    return c.tls ? c.tls->ca + "|" + c.tls->cert + "|" + c.tls->key : "";
  };
  auto auth = [](const core::FleetConfig &c) {
    return c.auth ? c.auth->user + "|" + c.auth->password_file : "";
  };
  return a.endpoints == b.endpoints && a.prefix == b.prefix && a.node == b.node &&
         tls(a) == tls(b) && auth(a) == auth(b);
}
}  // namespace

FleetFeature::FleetFeature(const FeatureContext &ctx, XdpFeature &xdp)
    : bpffs_(ctx.bpffs),
      xdp_(xdp),
      reports_(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)),
      timer_(timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK)) {}

void FleetFeature::check(const core::Config &c, bool, std::vector<std::string> &errors) const {
  if (!c.fleet)
    return;
  auto readable = [&](const std::string &path, const char *what) {
    if (!path.empty() && access(path.c_str(), R_OK) != 0)
      errors.push_back(
          fmt::format("{}:{}: {} {}: cannot be read", c.path, c.fleet->line, what, path));
  };
  if (c.fleet->tls) {
    readable(c.fleet->tls->ca, "fleet.tls.ca");
    readable(c.fleet->tls->cert, "fleet.tls.cert");
    readable(c.fleet->tls->key, "fleet.tls.key");
  }
  if (c.fleet->auth)
    readable(c.fleet->auth->password_file, "fleet.auth.password_file");
}

Status FleetFeature::converge(const core::Config *running, const core::Config &next,
                              const std::string &) {
  (void)running;
  if (!next.fleet) {
    if (fleet_)
      log::info(
          "fleet: off (no fleet: section); the fleet entries in force stay until they expire");
    fleet_.reset();
    arm(false);
    return {};
  }
  if (fleet_ && same_join(fleet_->config(), *next.fleet)) {
    fleet_->reconfigure(*next.fleet, next.deny);  // what to share and how fast: in place
    return {};
  }
  fleet_.reset();
  std::string state = next.state_dir.empty() ? "" : next.state_dir + "/fleet";
  if (!state.empty()) {
    std::error_code ec;
    std::filesystem::create_directories(next.state_dir, ec);
  }
  auto f = std::make_unique<fleet::Fleet>(*next.fleet, next.deny, bpffs_, state, xdp_.filters(),
                                          reports_.get());
  if (auto st = f->start(); !st)
    return st;
  fleet_ = std::move(f);
  arm(true);
  return {};
}

void FleetFeature::arm(bool on) {
  itimerspec its{};
  if (on)
    its.it_interval.tv_nsec = its.it_value.tv_nsec = static_cast<long>(kTickNs);
  timerfd_settime(timer_.get(), 0, &its, nullptr);
}

std::vector<int> FleetFeature::fds() const {
  return {reports_.get(), timer_.get()};
}

uint64_t FleetFeature::busy_gap_ns() const {
  uint64_t factor = last_scan_changes_ > kStormChanges ? kStormFactor : kBusyFactor;
  return std::max(kTickNs, factor * scan_cost_ns_);
}

void FleetFeature::scan_when_due() {
  uint64_t now = monotonic_ns();
  uint64_t gap = fleet_->wants_scan() ? busy_gap_ns() : std::max(kReconcileNs, 10 * scan_cost_ns_);
  if (now - last_scan_ns_ < gap)
    return;
  last_scan_changes_ = fleet_->scan();
  last_scan_ns_ = monotonic_ns();
  scan_cost_ns_ = last_scan_ns_ - now;
  fleet::update_stats([&](fleet::FleetStats &s) {
    s.scans++;
    s.scan_s = static_cast<double>(scan_cost_ns_) * 1e-9;
    s.scan_every_s = static_cast<double>(busy_gap_ns()) * 1e-9;
  });
}

void FleetFeature::on_readable(int fd) {
  uint64_t n;
  (void)!read(fd, &n, sizeof(n));  // both an eventfd and a timerfd: a count
  if (!fleet_)
    return;
  if (fd == timer_.get())
    scan_when_due();
  else
    fleet_->on_reports();
}

void FleetFeature::sweep(const core::Config &) {
  if (fleet_)
    fleet_->save();
}

bool FleetFeature::take_client(ControlVerb, bpf::UniqueFd &conn, const std::string &request) {
  if (request != "fleet status")
    return false;
  std::string reply = fleet_ ? "ok " + fleet::status_json(fleet::stats()) + "\n"
                             : "error the fleet is off: the agent's config has no fleet: section\n";
  (void)!send(conn.get(), reply.data(), reply.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
  return true;
}

void FleetFeature::stop(const core::Config &, bool, const std::string &) {
  fleet_.reset();  // the entries applied stay in the maps, as the rest of the datapath
  arm(false);
}

}  // namespace bpfgate::agent
