// Disabling socket acceleration: stop redirecting, stop taking new sockets,
// take the sockets out of the sockhash once they hold no unread bytes, unpin.
#include <bpf/bpf.h>

#include <cerrno>
#include <map>
#include <thread>

#include "bpf/error.hpp"
#include "bpf/features.hpp"
#include "bpf/pin.hpp"
#include "features/accel/accel.hpp"
#include "features/accel/accel_pins.hpp"
#include "features/accel/accel_sweep.hpp"
#include "util/log.hpp"

namespace bpfgate::agent::accel {

namespace {

// Senders that ran the sk_msg program just before `disable` set the draining
// flag may still be queueing into their peer; a socket is taken out of the
// sockhash only this long after the flag.
constexpr std::chrono::milliseconds kDrainGrace{200};
constexpr std::chrono::milliseconds kSweepInterval{20};

// Sockets whose psock still holds redirected messages: key bytes -> unread bytes.
using Unread = std::map<std::string, uint32_t>;

Status set_draining(ConfigMap &config) {
  __u32 zero = 0;
  auto cur = config.lookup(zero);
  if (!cur)
    return cur.error();
  bg_accel_config cfg = cur->value_or(bg_accel_config{});
  cfg.flags |= BG_ACCEL_F_DRAINING;
  cfg.generation++;
  return config.update(zero, cfg);
}

// 1. Stop redirecting: each socket's next send takes the normal path, for
// good. 2. No new sockets: the cgroup link goes.
Status stop_redirecting(const bpf::PinSet &set) {
  auto config = ConfigMap::open_pinned(set.path(BG_ACCEL_PIN_CONFIG));
  if (!config)
    return config.error();
  if (auto st = set_draining(*config); !st)
    return st.error().context("set the draining flag");
  if (auto link = bpf::open_pinned(set.path(BG_ACCEL_PIN_LINK)); link) {
    if (int err = bpf_link_detach(link->get()); err && errno != ENOLINK && errno != EINVAL)
      return bpf::libbpf_error(err, "detach the sock_ops program from its cgroup");
  }
  return bpf::unpin(set.path(BG_ACCEL_PIN_LINK));
}

// 3. Takes sockets out of the sockhash once they hold no unread bytes, until
// none is left or the timeout; returns those left with unread bytes.
Result<Unread> drain(int sockets_fd, int sk_state_fd, const DisableOptions &o,
                     DisableReport &report) {
  Unread last_unread;
  auto sweeper = Sweeper::open(sockets_fd, sk_state_fd);
  if (!sweeper) {
    report.note = fmt::format(
        "cannot check which sockets still hold unread bytes ({}); they stay until they close",
        sweeper.error().what());
    log::warn("{}", report.note);
    return last_unread;
  }
  std::this_thread::sleep_for(kDrainGrace);
  auto deadline = std::chrono::steady_clock::now() + o.drain_timeout;
  for (;;) {
    auto recs = sweeper->scan();
    if (!recs)
      return recs.error();
    last_unread.clear();
    for (const auto &rec : *recs) {
      if (rec.ingress_pending != 0) {
        last_unread[std::string(reinterpret_cast<const char *>(&rec.key), sizeof(rec.key))] =
            rec.rmem_alloc;
        continue;
      }
      if (bpf_map_delete_elem(sockets_fd, &rec.key) == 0)
        report.released++;
    }
    if (last_unread.empty() || std::chrono::steady_clock::now() >= deadline)
      return last_unread;
    std::this_thread::sleep_for(kSweepInterval);
  }
}

// With force: takes out what is left, unread bytes and all.
void drop_the_rest(int sockets_fd, const Unread &last_unread, DisableReport &report) {
  for (const auto &[k, rmem] : last_unread) {
    if (bpf_map_delete_elem(sockets_fd, k.data()) == 0) {
      report.dropped++;
      report.dropped_bytes += rmem;
    }
  }
  // Sockets the sweeper could not look at.
  for (;;) {
    bg_accel_key key{};
    if (bpf_map_get_next_key(sockets_fd, nullptr, &key) != 0)
      break;
    if (bpf_map_delete_elem(sockets_fd, &key) == 0)
      report.dropped++;
  }
}

Result<DisableReport> release_sockets(const bpf::PinSet &set, const DisableOptions &o) {
  auto sockets = bpf::open_pinned(set.path(BG_ACCEL_PIN_SOCKETS));
  if (!sockets)
    return sockets.error();
  auto sk_state = bpf::open_pinned(set.path(BG_ACCEL_PIN_SK_STATE));
  if (!sk_state)
    return sk_state.error();
  DisableReport report;
  auto n = count_sockets(sockets->get());
  if (!n)
    return n.error();
  Unread last_unread;
  if (*n > 0) {
    auto left = drain(sockets->get(), sk_state->get(), o, report);
    if (!left)
      return left.error();
    last_unread = std::move(*left);
  }
  if (o.force)
    drop_the_rest(sockets->get(), last_unread, report);
  auto left = count_sockets(sockets->get());
  if (!left)
    return left.error();
  report.remaining = *left;
  return report;
}

}  // namespace

Result<DisableReport> disable(const std::string &bpffs, const DisableOptions &o) {
  if (auto st =
          bpf::require_privileges("bpfgate accel", "load BPF programs and attach them to a cgroup");
      !st)
    return st.error();
  if (auto st = bpf::ensure_bpffs(bpffs); !st)
    return st.error();
  bpf::PinSet set = pins(bpffs);
  if (!bpf::exists(set.dir()))
    return not_enabled(set.dir());
  auto held = lock(set, false);
  if (!held)
    return held.error();
  if (!bpf::exists(set.path(BG_ACCEL_PIN_SOCKETS))) {
    // A half-made directory (an enable that died): nothing runs from it.
    if (auto st = set.remove(); !st)
      return st.error();
    DisableReport r;
    r.removed = true;
    return r;
  }
  if (auto st = stop_redirecting(set); !st)
    return st.error();
  auto report = release_sockets(set, o);
  if (!report)
    return report.error();
  if (report->remaining == 0) {
    if (auto st = set.remove(); !st)
      return st.error();
    report->removed = true;
  }
  return report;
}

}  // namespace bpfgate::agent::accel
