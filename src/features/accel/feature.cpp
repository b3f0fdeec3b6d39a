#include "features/accel/feature.hpp"

#include <fmt/ranges.h>

#include "util/audit.hpp"
#include "util/log.hpp"

namespace bpfgate::agent {

void AccelFeature::check(const core::Config &c, bool, std::vector<std::string> &errors) const {
  if (!c.accel)
    return;
  if (auto g = accel::resolve_cgroup(c.accel->cgroup); !g)
    errors.push_back(
        fmt::format("{}:{}: accel.cgroup: {}", c.path, c.accel->cgroup_line, g.error().what()));
}

AccelStep accel_step(bool wanted, bool managed, bool enabled, bool same) {
  if (!wanted)
    return managed ? AccelStep::kDisable : AccelStep::kNothing;
  if (!enabled)
    return AccelStep::kEnable;
  if (!same)
    return AccelStep::kDiffers;
  return managed ? AccelStep::kKeep : AccelStep::kAdopt;
}

Status AccelFeature::converge(const core::Config *, const core::Config &c, const std::string &by) {
  if (!c.accel) {
    if (accel_step(false, managed_, false, false) == AccelStep::kDisable)
      disable(by);
    return {};
  }
  auto cur = accel::status(bpffs_);
  if (!cur)
    return cur.error().context("socket acceleration");
  const auto &ports = c.accel->port_list;  // parsed with the config; empty: every port
  auto cgroup = accel::resolve_cgroup(c.accel->cgroup);
  if (!cgroup)
    return cgroup.error().context("socket acceleration");
  bool enabled = cur->state == accel::State::kEnabled;
  switch (accel_step(true, managed_, enabled, cur->cgroup == *cgroup && cur->ports == ports)) {
    case AccelStep::kEnable:
      return enable(c, ports, by);
    case AccelStep::kDiffers:
      log::warn(
          "socket acceleration runs on cgroup {} (ports {}); the config asks for {} "
          "(ports {}): `bpfgate accel disable` and reload to change it",
          cur->cgroup, cur->ports.empty() ? "any" : fmt::format("{}", fmt::join(cur->ports, ",")),
          *cgroup, ports.empty() ? "any" : c.accel->ports);
      break;
    case AccelStep::kAdopt:
      log::info("socket acceleration: adopted (cgroup {}, {} sockets)", cur->cgroup, cur->sockets);
      break;
    default:
      break;
  }
  managed_ = true;
  return {};
}

Status AccelFeature::enable(const core::Config &c, const std::vector<uint16_t> &ports,
                            const std::string &by) {
  accel::EnableOptions o;
  o.cgroup = c.accel->cgroup;
  o.ports = ports;
  o.addresses = c.accel->addresses;
  if (c.accel->max_sockets)
    o.max_sockets = c.accel->max_sockets;
  auto r = accel::enable(bpffs_, o);
  if (!r)
    return r.error().context("socket acceleration");
  audit::Entry("accel_enable", by)
      .set("cgroup", r->cgroup)
      .set("ports", c.accel->ports.empty() ? "any" : c.accel->ports)
      .set("prog_id", r->sockops_prog_id)
      .config(c.hash)
      .write();
  managed_ = true;
  return {};
}

void AccelFeature::disable(const std::string &by) {
  housekeeper_.reset();
  managed_ = false;
  accel::DisableOptions o;
  o.drain_timeout = std::chrono::milliseconds(2000);
  auto r = accel::disable(bpffs_, o);
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

void AccelFeature::sweep(const core::Config &) {
  if (!managed_)
    return;
  if (!housekeeper_) {
    auto hk = accel::Housekeeper::open(bpffs_);
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

void AccelFeature::stop(const core::Config &, bool keep, const std::string &by) {
  if (managed_ && !keep)
    disable(by);
}

}  // namespace bpfgate::agent
