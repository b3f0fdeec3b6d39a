#include "features/observe/feature.hpp"

#include "agent/metrics.hpp"

namespace bpfgate::agent {

ObserveFeature::ObserveFeature(const FeatureContext &ctx, XdpFeature &xdp)
    : bpffs_(ctx.bpffs), xdp_(xdp) {
  xdp_.listen(this);
}

Status ObserveFeature::prepare(const core::Config &c) {
  // A metrics address that cannot be bound fails the start before anything
  // is attached, not after.
  if (c.metrics.enabled)
    return MetricsServer::check_bindable(c.metrics.address, c.metrics.port);
  return {};
}

Status ObserveFeature::converge(const core::Config *, const core::Config &c,
                                const std::string &by) {
  if (observer_)
    return observer_->apply(c, xdp_.filters(), by);
  auto obs = Observer::start(bpffs_, c, xdp_.filters());
  if (!obs)
    return obs.error();
  observer_ = std::move(*obs);
  return {};
}

void ObserveFeature::reloaded(bool ok) {
  if (observer_)
    observer_->note_reload(ok);
}

std::vector<int> ObserveFeature::fds() const {
  if (!observer_)
    return {};
  return {observer_->fd()};
}

void ObserveFeature::on_readable(int) {
  if (observer_)
    observer_->on_readable();
}

bool ObserveFeature::take_client(ControlVerb verb, bpf::UniqueFd &conn,
                                 const std::string &request) {
  if (verb != ControlVerb::events || !observer_)
    return false;
  observer_->subscribe(std::move(conn), request);
  return true;
}

void ObserveFeature::filter_back(const std::string &iface, bool new_maps) {
  if (observer_)
    observer_->interface_back(iface, new_maps);
}

void ObserveFeature::swept(const std::string &iface, const Datapath &dp, const SweepReport &r) {
  if (observer_)
    observer_->on_sweep(iface, dp, r);
}

void ObserveFeature::stop(const core::Config &, bool keep, const std::string &) {
  if (observer_)
    observer_->stop(keep);
}

}  // namespace bpfgate::agent
