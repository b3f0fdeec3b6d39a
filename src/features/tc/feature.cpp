#include "features/tc/feature.hpp"

#include "features/tc/tc.hpp"
#include "util/log.hpp"
#include "util/netif.hpp"

namespace bpfgate::agent {

std::vector<std::string> tc_environment_errors(const core::Config &c) {
  std::vector<std::string> errors;
  if (!c.tc)
    return errors;
  for (const auto &i : c.tc->interfaces)
    check_interface(c, i.line, "interface", i.name, errors);
  for (const auto &k : c.tc->classes)
    if (k.mirror)
      check_interface(c, k.mirror->line, "mirror interface", k.mirror->iface, errors);
  return errors;
}

Status tc_check_environment(const core::Config &c) {
  return refuse_config(c, tc_environment_errors(c));
}

void TcFeature::check(const core::Config &c, bool, std::vector<std::string> &errors) const {
  // The tc: section's interfaces are checked at the agent's start as well:
  // tc attaches no interface that is not there.
  for (auto &e : tc_environment_errors(c))
    errors.push_back(std::move(e));
}

Status TcFeature::converge(const core::Config *running, const core::Config &next,
                           const std::string &by) {
  return tc_converge(bpffs_, running ? running->tc : std::nullopt, next.tc, by, next.hash);
}

void TcFeature::links_changed(const core::Config &c, const std::string &by) {
  // Its clsact filters went with the interface: attached again by the same
  // convergence as at start.
  if (!c.tc)
    return;
  bool stale = false;
  for (const auto &i : c.tc->interfaces) {
    if (util::ifindex_of(i.name) == 0)
      continue;
    auto p = PinnedTc::open(bpffs_, i.name);
    auto st = p ? p->status() : Result<TcStatus>(p.error());
    stale = stale || !st || !st->attached;
  }
  if (stale)
    if (auto st = tc_converge(bpffs_, c.tc, c.tc, by, c.hash); !st)
      log::error("tc: attach again: {}", st.error().what());
}

void TcFeature::stop(const core::Config &running, bool keep, const std::string &by) {
  tc_stop(bpffs_, running.tc, keep, by);
}

}  // namespace bpfgate::agent
