// The load balancer's agent side, continued: where it runs (filters and
// lb.interfaces), the control socket's `lb` requests, stop.
#include <sys/socket.h>

#include <algorithm>
#include <filesystem>

#include "features/lb/feature.hpp"
#include "util/audit.hpp"
#include "util/log.hpp"
#include "util/netif.hpp"
#include "util/text.hpp"

namespace bpfgate::agent {

namespace {

std::string peer_of(int fd) {
  ucred peer{};
  socklen_t len = sizeof(peer);
  if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &peer, &len) != 0)
    return "unknown";
  return audit::by_peer(peer.uid, peer.pid);
}

}  // namespace

void LbFeature::place(const std::string &by) {
  std::vector<std::string> notes;
  balancer_->hand_to_filters(notes);
  for (const auto &n : notes)
    if (std::find(told_.begin(), told_.end(), n) == told_.end()) {
      log::warn("load balancer: {}", n);
      told_.push_back(n);
    }
  const auto &wanted = running_->lb.interfaces;
  for (const auto &iface : balancer_->attached())
    if (std::find(wanted.begin(), wanted.end(), iface) == wanted.end()) {
      if (auto st = balancer_->detach(iface); !st)
        log::warn("load balancer: detach from {}: {}", iface, st.error().what());
      else
        audit::Entry("lb_detach", by).set("iface", iface).write();
    }
  auto now = balancer_->attached();
  for (const auto &iface : wanted) {
    if (std::find(now.begin(), now.end(), iface) != now.end())
      continue;
    if (util::ifindex_of(iface) == 0) {
      log::info("load balancer: {} is not here yet; attached when it comes", iface);
      continue;
    }
    std::string note;
    if (auto st = balancer_->attach(iface, bpf::XdpMode::kAuto, note); !st) {
      log::warn("load balancer: {}", st.error().what());
      continue;
    }
    if (!note.empty())
      log::info("load balancer on {}: {}", iface, note);
    audit::Entry("lb_attach", by).set("iface", iface).set("prog_id", balancer_->prog_id()).write();
  }
}

void LbFeature::remove(const std::string &by) {
  uint32_t prog = balancer_->prog_id();
  if (auto st = balancer_->remove(); !st)
    log::warn("load balancer: remove: {}", st.error().what());
  balancer_.reset();
  lb::publish_catalog({});
  audit::Entry("lb_remove", by).set("prog_id", prog).write();
}

void LbFeature::sweep(const core::Config &) {
  // A filter attached again since (a new `next` array) gets the balancer.
  if (balancer_ && running_)
    place(audit::by_agent());
}

void LbFeature::links_changed(const core::Config &, const std::string &by) {
  if (balancer_ && running_)
    place(by);
}

Status LbFeature::set_signals(lb::Signals s, const std::string &by) {
  if (s.down == signals_.down && s.weights == signals_.weights)
    return {};
  lb::Signals old = std::move(signals_);
  signals_ = std::move(s);
  auto st = apply(by, "health or weights");
  if (!st)
    signals_ = std::move(old);
  return st;
}

bool LbFeature::take_client(ControlVerb verb, bpf::UniqueFd &conn, const std::string &request) {
  if (verb != ControlVerb::lb)
    return false;
  bpf::UniqueFd c = std::move(conn);
  std::string reply = serve(request, peer_of(c.get()));
  (void)!send(c.get(), reply.data(), reply.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
  return true;
}

std::string LbFeature::serve(const std::string &request, const std::string &by) {
  if (!balancer_ || !running_)
    return "error the load balancer is not configured: the agent's config has no lb: section\n";
  auto r = lb::parse_lb_request(request);
  if (!r)
    return "error " + r.error().what() + "\n";
  std::string what;
  auto next = lb::change_overlay(overlay_, running_->lb.services, *r, what);
  if (!next)
    return "error " + next.error().what() + "; nothing changed\n";
  lb::Overlay old = std::move(overlay_);
  overlay_ = std::move(*next);
  if (auto st = apply(by, "runtime change"); !st) {
    overlay_ = std::move(old);
    return "error " + st.error().what() + "; the running generation stays\n";
  }
  auto e = audit::Entry(std::string("lb_") + lb::op_name(r->op), by);
  e.set("service", r->service).set("backend", r->address);
  if (r->weight)
    e.set("weight", *r->weight);
  e.config(running_->hash).write();
  set_health_targets(true);
  return "ok " + what + "\n";
}

void LbFeature::stop(const core::Config &, bool keep, const std::string &by) {
  if (balancer_ && !keep)
    remove(by);
}

}  // namespace bpfgate::agent
