#include "features/observe/observer.hpp"

#include <net/if.h>
#include <sys/epoll.h>
#include <sys/socket.h>

#include <algorithm>
#include <chrono>
#include <cstring>

#include "agent/control_request.hpp"
#include "bpf/map.hpp"
#include "bpf/pin.hpp"
#include "core/cidr.hpp"
#include "util/audit.hpp"
#include "util/log.hpp"

namespace bpfgate::agent {

namespace {
double unix_now() {
  using namespace std::chrono;
  return duration<double>(system_clock::now().time_since_epoch()).count();
}
}  // namespace

Result<std::unique_ptr<Observer>> Observer::start(const std::string &bpffs, const core::Config &c,
                                                  const std::map<std::string, PinnedFilter> &f) {
  std::unique_ptr<Observer> o(new Observer());
  o->bpffs_ = bpffs;
  o->epoll_.reset(epoll_create1(EPOLL_CLOEXEC));
  if (!o->epoll_.valid())
    return Error(errno, "epoll_create1");
  o->state_.update([](AgentSnapshot &s) {
    s.version = BPFGATE_VERSION;
    s.start_time_s = unix_now();
  });
  if (auto st = o->apply(c, f, audit::by_agent()); !st)
    return st.error();
  return o;
}

Observer::~Observer() = default;

Status Observer::watch(const std::string &iface, uint64_t sample_interval_ns) {
  std::string dir = bpf::pin_dir(bpffs_, iface);
  if (!bpf::exists(bpf::pin_path(dir, BG_PIN_EVENTS))) {
    log::warn(
        "{}: the running filter has no event buffer (attached by an older bpfgate): no events "
        "from it until it is detached and attached again",
        iface);
    state_.update([&](AgentSnapshot &s) { s.event_buffers[iface] = "none"; });
    return {};
  }
  auto cfg = bpf::open_pinned(bpf::pin_path(dir, BG_PIN_EVENT_CONFIG));
  if (!cfg)
    return cfg.error();
  if (auto st = set_sample_interval(cfg->get(), sample_interval_ns); !st)
    return st.error().context(iface + ": set the drop sample interval");
  if (sources_.count(iface))
    return {};
  auto map = bpf::open_pinned(bpf::pin_path(dir, BG_PIN_EVENTS));
  if (!map)
    return map.error();
  auto buf = bpf::EventBuffer::open(map->get(), [this, iface](std::string_view rec) {
    auto e = decode_event(iface, rec);
    if (!e) {
      log::warn("{}: {}", iface, e.error().what());
      return;
    }
    publish(std::move(*e));
  });
  if (!buf)
    return buf.error().context(iface + ": open the event buffer");
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.fd = buf->fd();
  if (epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, buf->fd(), &ev) != 0)
    return Error(errno, "epoll_ctl");
  log::info("{}: events through a {}", iface,
            buf->is_ring() ? "ring buffer"
                           : "perf buffer (the kernel has no ring buffers, or "
                             "events.buffer asked for one)");
  state_.update([&](AgentSnapshot &s) { s.event_buffers[iface] = buf->kind(); });
  sources_.emplace(iface, Source{std::move(*buf), 0});
  return {};
}

Status Observer::serve_metrics(const core::MetricsConfig &m) {
  bool same =
      metrics_ && m.enabled && metrics_->address() == m.address && metrics_->port() == m.port;
  if (same)
    return {};
  if (!m.enabled) {
    metrics_.reset();
    metrics_config_ = m;
    log::info("metrics are off (metrics.listen: off)");
    return {};
  }
  // The new listener binds before the old one stops, so a scrape finds one
  // of them; where the two cannot both be bound (the same port on an
  // overlapping address), the old one goes first.
  auto render = [this] { return render_metrics(bpffs_, state_.get()); };
  auto srv = MetricsServer::start(m.address, m.port, render);
  if (!srv && metrics_) {
    metrics_.reset();
    srv = MetricsServer::start(m.address, m.port, render);
  }
  if (!srv)
    return srv.error();
  metrics_config_ = m;
  metrics_ = std::move(*srv);
  log::info("metrics on http://{}/metrics", MetricsServer::host_port(m.address, m.port));
  return {};
}

Status Observer::apply(const core::Config &c, const std::map<std::string, PinnedFilter> &filters,
                       const std::string &by) {
  for (auto it = sources_.begin(); it != sources_.end();) {
    if (filters.count(it->first)) {
      ++it;
      continue;
    }
    epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, it->second.buffer.fd(), nullptr);
    it = sources_.erase(it);
  }
  sample_interval_ns_ = c.events.drop_sample_interval_ns;
  for (const auto &[iface, _] : filters)
    if (auto st = watch(iface, c.events.drop_sample_interval_ns); !st)
      return st;
  rule_names_.clear();
  for (const auto &i : c.interfaces)  // also those whose filter is attached later
    for (const auto &r : c.rules)
      rule_names_[i.name].push_back(r.match);

  if (!c.services.empty() && !probes_) {
    auto p = ServiceProbes::load(bpffs_, c.tcp_probes);
    if (!p)
      return p.error();
    probes_ = std::move(*p);
    if (!probes_->tcp_note().empty())
      log::warn("TCP probes: {}", probes_->tcp_note());
    audit::Entry("load", by)
        .set("what", "service probes")
        .set("tcp_probes", probes_->tcp_mode())
        .config(c.hash)
        .write();
  }
  if (probes_) {
    if (auto st = probes_->set_services(c.services); !st)
      return st.error().context("set the services");
    std::set<std::string> wanted;
    if (!c.services.empty())
      for (const auto &i : c.interfaces)
        wanted.insert(i.name);
    if (auto st = attach_probes(wanted, by, c.hash); !st)
      return st;
  }
  sync_snapshot(c);
  return serve_metrics(c.metrics);
}

Status Observer::attach_probes(const std::set<std::string> &wanted, const std::string &by,
                               const std::string &config_hash) {
  probe_ifaces_ = wanted;
  auto before = probes_->attached();
  for (const auto &name : before)
    if (!wanted.count(name)) {
      probes_->detach(name);
      audit::Entry("probes_detach", by).set("iface", name).config(config_hash).write();
    }
  for (const auto &name : wanted) {
    if (std::find(before.begin(), before.end(), name) != before.end())
      continue;
    if (if_nametoindex(name.c_str()) == 0)
      continue;  // absent: attached when it appears (interface_back)
    if (auto st = probes_->attach(name); !st)
      return st;
    audit::Entry("probes_attach", by).set("iface", name).config(config_hash).write();
  }
  return {};
}

void Observer::interface_back(const std::string &iface, bool new_maps) {
  if (new_maps) {
    if (auto it = sources_.find(iface); it != sources_.end()) {
      epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, it->second.buffer.fd(), nullptr);
      sources_.erase(it);
    }
    if (auto st = watch(iface, sample_interval_ns_); !st)
      log::warn("{}: events: {}", iface, st.error().what());
  }
  if (!probes_ || !probe_ifaces_.count(iface))
    return;
  probes_->detach(iface);  // the old interface's, gone with it
  if (auto st = probes_->attach(iface); !st) {
    log::warn("{}: service probes: {}", iface, st.error().what());
    return;
  }
  audit::Entry("probes_attach", audit::by_agent())
      .set("iface", iface)
      .set("why", "interface back")
      .write();
}

void Observer::sync_snapshot(const core::Config &c) {
  state_.update([&](AgentSnapshot &s) {
    s.config_hash = c.hash;
    s.interfaces.clear();
    for (const auto &i : c.interfaces)
      s.interfaces.push_back(i.name);
    s.rule_names = rule_names_;
    s.tc_interfaces.clear();
    if (c.tc)
      for (const auto &i : c.tc->interfaces)
        s.tc_interfaces.push_back(i.name);
    s.services = probes_ != nullptr && !c.services.empty();
    s.tcp_probes = probes_ ? probes_->tcp_mode() : "off";
  });
}

void Observer::note_reload(bool ok) {
  double now =
      std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
  state_.update([&](AgentSnapshot &s) {
    (ok ? s.reloads_ok : s.reloads_failed)++;
    s.last_reload_s = now;
    s.last_reload_ok = ok;
  });
}

void Observer::on_readable() {
  for (auto &[iface, src] : sources_) {
    if (auto n = src.buffer.consume(); !n)
      log::warn("{}: {}", iface, n.error().what());
    uint64_t lost = src.buffer.lost();
    if (lost != src.lost_seen) {
      log::warn("{}: the kernel dropped {} events (the agent read too slowly)", iface,
                lost - src.lost_seen);
      state_.update([&](AgentSnapshot &s) { s.events_lost += lost - src.lost_seen; });
      src.lost_seen = lost;
    }
  }
}

void Observer::log_event(const std::string &text) {
  if (!event_log_.admit(monotonic_ns())) {
    state_.update([&](AgentSnapshot &s) { s.event_lines_left_out = event_log_.left_out_total(); });
    return;
  }
  log_left_out();
  log::info("event: {}", text);
}

void Observer::log_left_out() {
  if (uint64_t n = event_log_.take_left_out())
    log::info("event: {} events not logged (over {} lines a second); `bpfgate events` streams all",
              n, event_log_.limits().rate_pps);
}

void Observer::on_sweep(const std::string &iface, const Datapath &dp, const SweepReport &r) {
  log_left_out();
  for (const auto &b : r.released)
    publish(agent_event(iface, BG_EVENT_RELEASED, b.prefix.key, b.value.reason, 0));
  if (r.sources_seen || r.known_seen)
    state_.update([&](AgentSnapshot &s) {
      s.sources_after_sweep[iface] = r.sources_seen - r.sources_removed;
    });
  // The blocklist as last read (its version has not moved): no block is new.
  uint64_t version = dp.block_version();
  auto known = manual_versions_.find(iface);
  if (known != manual_versions_.end() && known->second == version)
    return;
  auto blocks = list_blocks(dp);
  if (!blocks)
    return;
  manual_versions_[iface] = version;
  std::set<std::string> now;
  auto &seen = manual_blocks_[iface];
  for (const auto &b : *blocks) {
    if (b.value.reason != BG_BLOCK_MANUAL || b.expired)
      continue;
    std::string p = core::format_prefix(b.prefix);
    now.insert(p);
    if (!seen.count(p))
      publish(
          agent_event(iface, BG_EVENT_MANUAL_BLOCK, b.prefix.key, b.value.reason, b.remaining_ns));
  }
  seen = std::move(now);
}

void Observer::publish(Event e) {
  if (e.raw.rule) {
    auto it = rule_names_.find(e.iface);
    if (it != rule_names_.end() && e.raw.rule - 1 < it->second.size())
      e.rule_match = it->second[e.raw.rule - 1];
  }
  std::string text = event_text(e);
  log_event(text);
  std::string json = event_json(e) + "\n";
  text += "\n";
  for (auto it = subscribers_.begin(); it != subscribers_.end();) {
    if (!it->iface.empty() && it->iface != e.iface) {
      ++it;
      continue;
    }
    const std::string &line = it->json ? json : text;
    ssize_t n = send(it->fd.get(), line.data(), line.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n == static_cast<ssize_t>(line.size())) {
      ++it;
      continue;
    }
    // Gone, or too slow to keep up: a follower must never hold up the agent.
    log::info("an events client {}", n < 0 && errno != EAGAIN ? "left" : "fell behind: dropped");
    it = subscribers_.erase(it);
  }
  state_.update([&](AgentSnapshot &s) {
    s.events[event_type_name(e.raw.type)]++;
    s.event_subscribers = subscribers_.size();
  });
}

void Observer::subscribe(bpf::UniqueFd conn, const std::string &request) {
  auto req = parse_events_request(request);
  Subscriber sub{std::move(conn), req.json, std::move(req.iface)};
  std::string names;
  for (const auto &[iface, src] : sources_)
    if (sub.iface.empty() || sub.iface == iface)
      names += fmt::format("{}{} ({})", names.empty() ? "" : ", ", iface, src.buffer.kind());
  std::string hello = names.empty() ? "error the agent reads no events of " +
                                          (sub.iface.empty() ? "any interface" : sub.iface) + "\n"
                                    : "ok events of " + names + "\n";
  if (send(sub.fd.get(), hello.data(), hello.size(), MSG_NOSIGNAL | MSG_DONTWAIT) !=
          static_cast<ssize_t>(hello.size()) ||
      names.empty())
    return;
  int size = 1 << 20;  // room for a burst while the client is scheduled out
  setsockopt(sub.fd.get(), SOL_SOCKET, SO_SNDBUF, &size, sizeof(size));
  subscribers_.push_back(std::move(sub));
  state_.update([&](AgentSnapshot &s) { s.event_subscribers = subscribers_.size(); });
}

void Observer::stop(bool keep) {
  subscribers_.clear();
  metrics_.reset();
  if (!probes_)
    return;
  if (keep) {
    probes_->release_all();
    probes_.reset();
    return;
  }
  probes_.reset();  // detaches the tc programs
  remove_observe_pins(bpffs_);
}

}  // namespace bpfgate::agent
