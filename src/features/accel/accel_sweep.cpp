#include "features/accel/accel_sweep.hpp"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <map>
#include <set>
#include <string>

#include "accel_sweep.skel.h"
#include "features/accel/accel.hpp"
#include "features/accel/accel_pins.hpp"
#include "bpf/error.hpp"
#include "bpf/fd.hpp"
#include "bpf/iter.hpp"
#include "bpf/map.hpp"
#include "bpf/object.hpp"
#include "bpf/pin.hpp"
#include "util/log.hpp"

namespace bpfgate::agent::accel {

namespace {
using SweepSkel = bpf::Skeleton<bpf::SkeletonTraits<accel_sweep, accel_sweep__open_opts,
                                                    accel_sweep__load, accel_sweep__destroy>>;
}  // namespace

struct Sweeper::Impl {
  SweepSkel skel;
  bpf::IterLink link;
  int sockets_fd;  // borrowed from the caller, who outlives the sweeper
  bool by_tcp;     // iter/tcp: the records include sockets no longer in the sockhash
};

Sweeper::Sweeper(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Sweeper::Sweeper(Sweeper &&) noexcept = default;
Sweeper &Sweeper::operator=(Sweeper &&) noexcept = default;
Sweeper::~Sweeper() = default;

namespace {
// Loads one of the two iterators of accel_sweep.bpf.c.
Result<SweepSkel> load_sweeper(int sk_state_fd, bool by_tcp) {
  auto skel = SweepSkel::open("accel_sweep");
  if (!skel)
    return skel.error();
  if (int err = bpf_map__reuse_fd((*skel)->maps.bg_accel_sk_state, sk_state_fd); err)
    return bpf::libbpf_error(err, "reuse the socket state map");
  bpf_program__set_autoload((*skel)->progs.bg_accel_sweep, !by_tcp);
  bpf_program__set_autoload((*skel)->progs.bg_accel_sweep_tcp, by_tcp);
  if (auto st = skel->load(); !st)
    return st.error();
  return skel;
}
}  // namespace

Result<Sweeper> Sweeper::open(int sockets_fd, int sk_state_fd) {
  // iter/sockmap walks exactly the sockhash; some kernels refuse it (EPERM
  // before verifying anything) and take iter/tcp. libbpf's complaint about
  // the first try is only worth a debug line.
  auto prev = log::level();
  if (prev < log::Level::kError)
    log::set_level(log::Level::kError);
  auto skel = load_sweeper(sk_state_fd, false);
  log::set_level(prev);
  bool by_tcp = false;
  if (!skel) {
    log::debug(
        "the kernel refused the sockmap iterator ({}); walking this namespace's TCP "
        "sockets instead (iter/tcp)",
        skel.error().what());
    skel = load_sweeper(sk_state_fd, true);
    if (!skel)
      return skel.error();
    by_tcp = true;
  }
  auto link = by_tcp ? bpf::IterLink::attach((*skel)->progs.bg_accel_sweep_tcp, -1,
                                             "the drain iterator over the TCP sockets")
                     : bpf::IterLink::attach((*skel)->progs.bg_accel_sweep, sockets_fd,
                                             "the drain iterator to the sockhash");
  if (!link)
    return link.error();
  return Sweeper(
      std::unique_ptr<Impl>(new Impl{std::move(*skel), std::move(*link), sockets_fd, by_tcp}));
}

Result<std::vector<bg_accel_sweep_rec>> Sweeper::scan() {
  auto bytes = impl_->link.read_all();
  if (!bytes)
    return bytes.error();
  const std::vector<uint8_t> &buf = *bytes;
  std::vector<bg_accel_sweep_rec> recs(buf.size() / sizeof(bg_accel_sweep_rec));
  std::memcpy(recs.data(), buf.data(), recs.size() * sizeof(bg_accel_sweep_rec));
  if (impl_->by_tcp) {
    // A socket keeps its state after it left the sockhash.
    std::erase_if(recs, [&](const bg_accel_sweep_rec &r) {
      __u64 cookie = 0;
      return bpf_map_lookup_elem(impl_->sockets_fd, &r.key, &cookie) != 0;
    });
  }
  return recs;
}

struct Housekeeper::Impl {
  bpf::UniqueFd sockets;
  bpf::Map<bg_accel_key, __u64> congested;
  Sweeper sweeper;
  // Fallen-back sockets found releasable by the previous check.
  std::set<std::string> release_candidates;
};

Housekeeper::Housekeeper(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Housekeeper::Housekeeper(Housekeeper &&) noexcept = default;
Housekeeper &Housekeeper::operator=(Housekeeper &&) noexcept = default;
Housekeeper::~Housekeeper() = default;

Result<Housekeeper> Housekeeper::open(const std::string &bpffs) {
  bpf::PinSet set = pins(bpffs);
  auto pin = [&](const char *name) { return set.path(name); };
  if (!bpf::exists(pin(BG_ACCEL_PIN_SOCKETS)))
    return make_error(ENOENT, "socket acceleration is not enabled (nothing pinned under {})",
                      set.dir());
  auto sockets = bpf::open_pinned(pin(BG_ACCEL_PIN_SOCKETS));
  if (!sockets)
    return sockets.error();
  auto sk_state = bpf::open_pinned(pin(BG_ACCEL_PIN_SK_STATE));
  if (!sk_state)
    return sk_state.error();
  auto congested = bpf::Map<bg_accel_key, __u64>::open_pinned(pin(BG_ACCEL_PIN_CONGESTED));
  if (!congested)
    return congested.error();
  auto sweeper = Sweeper::open(sockets->get(), sk_state->get());
  if (!sweeper)
    return sweeper.error().context("socket acceleration housekeeping");
  return Housekeeper(std::unique_ptr<Impl>(
      new Impl{std::move(*sockets), std::move(*congested), std::move(*sweeper), {}}));
}

namespace {
std::string key_bytes(const bg_accel_key &k) {
  return std::string(reinterpret_cast<const char *>(&k), sizeof(k));
}
bg_accel_key peer_of(const bg_accel_key &k) {
  bg_accel_key p = k;
  std::memcpy(p.local_ip, k.remote_ip, sizeof(p.local_ip));
  std::memcpy(p.remote_ip, k.local_ip, sizeof(p.remote_ip));
  p.local_port = k.remote_port;
  p.remote_port = k.local_port;
  return p;
}
}  // namespace

Result<HousekeepingReport> Housekeeper::check(uint64_t limit) {
  auto recs = impl_->sweeper.scan();
  if (!recs)
    return recs.error();
  HousekeepingReport r;
  r.sockets = recs->size();
  std::map<std::string, const bg_accel_sweep_rec *> live;
  for (const auto &rec : *recs)
    live[key_bytes(rec.key)] = &rec;
  std::set<std::string> candidates;
  for (const auto &rec : *recs) {
    r.max_unread = std::max<uint64_t>(r.max_unread, rec.rmem_alloc);
    if (rec.rmem_alloc > limit) {
      r.over_limit++;
      auto old = impl_->congested.lookup(rec.key);
      if (!old)
        return old.error();
      if (!*old)
        r.newly_marked++;
      if (auto st = impl_->congested.update(rec.key, rec.rmem_alloc); !st)
        return st.error().context("mark a congested socket");
    }
    // Nothing can be redirected into a socket whose peer is not in the
    // sockhash, or fell back for good itself.
    if (!(rec.sk_flags & BG_ACCEL_SK_FALLBACK) || rec.ingress_pending != 0)
      continue;
    auto peer = live.find(key_bytes(peer_of(rec.key)));
    if (peer != live.end() && !(peer->second->sk_flags & BG_ACCEL_SK_FALLBACK))
      continue;
    std::string k = key_bytes(rec.key);
    candidates.insert(k);
    // Twice in a row: a peer that had not made it into the sockhash at the
    // first look would have by now (sockets only enter when established).
    if (impl_->release_candidates.count(k) &&
        bpf_map_delete_elem(impl_->sockets.get(), &rec.key) == 0)
      r.released++;
  }
  impl_->release_candidates = std::move(candidates);
  // Forget congested sockets that left the sockhash.
  auto marked = impl_->congested.dump();
  if (!marked)
    return marked.error();
  for (const auto &[k, v] : *marked)
    if (!live.count(key_bytes(k)))
      (void)impl_->congested.erase(k);
  return r;
}

uint64_t default_backlog_limit() {
  uint64_t min = 0, def = 0, max = 0;
  if (FILE *f = std::fopen("/proc/sys/net/ipv4/tcp_rmem", "re")) {
    if (std::fscanf(f, "%lu %lu %lu", &min, &def, &max) != 3)
      max = 0;
    std::fclose(f);
  }
  return max ? max : 6U << 20;
}

}  // namespace bpfgate::agent::accel
