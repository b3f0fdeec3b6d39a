#include "features/lb/feature.hpp"

#include <algorithm>
#include <utility>
#include <filesystem>

#include "util/audit.hpp"
#include "util/log.hpp"
#include "util/netif.hpp"
#include "util/text.hpp"

namespace bpfgate::agent {

namespace {

lb::Geometry geometry_of(const core::LbConfig &c) {
  return {c.table_size, c.connections, c.idle_timeout_ns};
}

const char *health_of(const lb::Signals &s, const std::string &svc, const std::string &key,
                      core::LbCheck check) {
  if (check == core::LbCheck::none)
    return "unchecked";
  auto d = s.down.find({svc, key});
  return d != s.down.end() && d->second ? "down" : "up";
}

}  // namespace

void LbFeature::check(const core::Config &c, bool absent_interfaces_ok,
                      std::vector<std::string> &errors) const {
  if (!c.lb || absent_interfaces_ok)
    return;
  for (size_t i = 0; i < c.lb->interfaces.size(); i++)
    check_interface(c, c.lb->interface_lines[i], "lb interface", c.lb->interfaces[i], errors);
}

Status LbFeature::prepare(const core::Config &c) {
  if (auto st = prepare_signals(); !st)
    return st;
  if (c.state_dir.empty())
    return {};
  auto text = lb::read_state_file(lb::overlay_path(c.state_dir));
  if (!text)
    return text.error().context("the load balancer's runtime changes");
  if (!*text)
    return {};
  auto o = lb::overlay_from_json(**text);
  if (!o) {
    log::warn("load balancer: {}: {}; the runtime changes it held are dropped",
              lb::overlay_path(c.state_dir), o.error().what());
    return {};
  }
  overlay_ = std::move(*o);
  return {};
}

Status LbFeature::converge(const core::Config *running, const core::Config &next,
                           const std::string &by) {
  previous_ = running_;
  converged_ = true;
  if (!next.lb) {
    if (balancer_)
      remove(by);
    running_.reset();
    return {};
  }
  if (!balancer_) {
    auto b = lb::Balancer::open(bpffs_, geometry_of(*next.lb), running == nullptr);
    if (!b)
      return b.error().context("load balancer");
    balancer_.emplace(std::move(*b));
    audit::Entry(balancer_->adopted() ? "lb_adopt" : "lb_load", by)
        .set("prog_id", balancer_->prog_id())
        .set("table_size", next.lb->table_size)
        .config(next.hash)
        .write();
  } else if (geometry_of(next.lb.value()).table_size != running_->lb.table_size ||
             next.lb->connections != running_->lb.connections) {
    log::warn(
        "load balancer: table_size and connections change at the next restart of the agent "
        "(running: {}, {})",
        running_->lb.table_size, running_->lb.connections);
  }
  Running r{*next.lb, next.state_dir, next.hash};
  r.lb.table_size = running_ ? running_->lb.table_size : r.lb.table_size;
  r.lb.connections = running_ ? running_->lb.connections : r.lb.connections;
  overlay_ = lb::prune_overlay(overlay_, r.lb.services);
  if (auto st = apply_running(r, by, running ? "reload" : "start"); !st)
    return st.error().context("load balancer");
  running_ = std::move(r);
  place(by);
  set_health_targets(false);
  return {};
}

void LbFeature::reloaded(bool ok) {
  // Refused after this feature applied (a later feature failed): the
  // previous generation again.
  bool mine = std::exchange(converged_, false);
  if (ok || !mine || !previous_ || !running_ || previous_->hash == running_->hash)
    return;
  running_ = previous_;
  if (auto st = apply(audit::by_agent(), "reload refused"); !st)
    log::warn("load balancer: back to the running config: {}", st.error().what());
  set_health_targets(false);
}

Status LbFeature::apply(const std::string &by, const char *why) {
  if (!running_ || !balancer_)
    return make_error(ENOENT, "the load balancer is not configured (no lb: section)");
  return apply_running(*running_, by, why);
}

Status LbFeature::apply_running(const Running &r, const std::string &by, const char *why) {
  auto planned = lb::plan(r.lb.services, overlay_, signals_);
  if (auto st = balancer_->apply(planned); !st)
    return st;
  size_t backends = 0;
  for (const auto &s : planned)
    backends += s.backends.size();
  planned_ = planned;
  audit::Entry("lb_apply", by)
      .set("why", why)
      .set("services", planned.size())
      .set("backends", backends)
      .config(r.hash)
      .write();
  save_state(r, planned);
  return {};
}

void LbFeature::save_state(const Running &r, std::vector<lb::PlannedService> &planned) {
  lb::Catalog cat;
  for (size_t i = 0; i < planned.size(); i++) {
    const auto &cfg = r.lb.services[i];
    auto &cs = cat.emplace_back();
    cs.id = planned[i].id;
    cs.name = cfg.name;
    cs.check = cfg.health.check == core::LbCheck::tcp    ? "tcp"
               : cfg.health.check == core::LbCheck::http ? "http"
                                                         : "none";
    auto backends = lb::backends_of(cfg, overlay_);
    for (size_t j = 0; j < backends.size() && j < planned[i].backends.size(); j++) {
      const auto &b = backends[j];
      const auto &p = planned[i].backends[j];
      cs.backends.push_back({p.id, b.configured, b.weight, p.weight, b.runtime_added,
                             b.runtime_weight,
                             health_of(signals_, cfg.name, b.key(), cfg.health.check)});
    }
  }
  lb::publish_catalog(cat);
  if (r.state_dir.empty())
    return;
  std::error_code ec;
  std::filesystem::create_directories(r.state_dir, ec);
  for (const auto &[path, text] :
       {std::pair{lb::catalog_path(r.state_dir), lb::catalog_to_json(cat)},
        std::pair{lb::overlay_path(r.state_dir), lb::overlay_to_json(overlay_)}})
    if (auto st = lb::write_state_file(path, text); !st)
      log::warn("load balancer: {}", st.error().what());
}

}  // namespace bpfgate::agent
