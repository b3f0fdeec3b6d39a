#include "features/tc/tc.hpp"

// The tc datapath on interfaces: attach, detach, the pinned one, the agent's hooks.
#include "features/tc/tc.hpp"

#include <net/if.h>

#include <cerrno>
#include <set>

#include "bpf/features.hpp"
#include "bpf/pin.hpp"
#include "bpf/tc_attach.hpp"
#include "bpf/xdp.hpp"
#include "features/tc/tc_qdisc.hpp"
#include "util/audit.hpp"
#include "util/log.hpp"

namespace bpfgate::agent {

namespace {

std::string tc_root(const std::string &bpffs) {
  return bpf::feature_dir(bpffs, BG_TC_PIN_DIR);
}

Status check_privileges() {
  return bpf::require_privileges("bpfgate", "load and attach tc programs");
}

// Prepares <bpffs>/bpfgate-tc and takes its lock.
Result<bpf::DirLock> lock_root(const std::string &bpffs) {
  if (auto st = bpf::ensure_bpffs(bpffs); !st)
    return st.error();
  return bpf::DirLock::acquire(tc_root(bpffs), true);
}

// The program our filter runs (0: no filter of ours).
uint32_t filter_prog_id(int ifindex, bool egress) {
  auto id = bpf::tc_query(ifindex, bpf::tc_direction(egress), BG_TC_PRIORITY);
  return id ? *id : 0;
}

Status filter_detach(int ifindex, bool egress) {
  return bpf::tc_detach(ifindex, bpf::tc_direction(egress), BG_TC_PRIORITY);
}

Status remove_pins(const std::string &dir) {
  return TcDatapath::unpin(dir);
}

// Undoes what was set up on the interface: our filters (if they still run
// our programs), HTB and clsact if bpfgate created them.
void undo_interface(int ifindex, const std::string &iface, uint32_t owned,
                    const std::array<uint32_t, 2> &our_ids) {
  for (bool egress : {false, true}) {
    uint32_t id = filter_prog_id(ifindex, egress);
    if (id && id == our_ids[egress])
      if (auto st = filter_detach(ifindex, egress); !st)
        log::warn("{}: {}", iface, st.error().what());
  }
  if (owned & BG_TC_OWN_HTB)
    if (auto st = qdisc::htb_remove(iface); !st)
      log::warn("{}: remove the HTB root: {}", iface, st.error().what());
  if (owned & BG_TC_OWN_CLSACT) {
    auto busy = qdisc::clsact_has_filters(iface);
    if (!busy)
      log::warn("{}: {}; the clsact qdisc stays", iface, busy.error().what());
    else if (*busy)
      log::info("{}: other filters use the clsact qdisc bpfgate created; it stays", iface);
    else if (auto st = bpf::clsact_destroy(ifindex); !st)
      log::warn("{}: {}", iface, st.error().what());
  }
}

// Reconciles the HTB root with what is asked; returns the new owned flags.
Result<uint32_t> reconcile_htb(const std::string &iface, uint32_t owned,
                               const std::optional<core::TcHtbConfig> &htb) {
  if (htb) {
    // Created now, or found with our handle: ours either way.
    if (auto created = qdisc::htb_apply(iface, *htb); !created)
      return created.error();
    return owned | BG_TC_OWN_HTB;
  }
  if (owned & BG_TC_OWN_HTB) {
    if (auto st = qdisc::htb_remove(iface); !st)
      return st.error();
    return owned & ~static_cast<uint32_t>(BG_TC_OWN_HTB);
  }
  return owned;
}

}  // namespace

// ---- attach, detach, pinned ----

std::string tc_pin_dir(const std::string &bpffs, const std::string &iface) {
  return bpf::feature_dir(bpffs, BG_TC_PIN_DIR, iface);
}

Result<std::vector<std::string>> tc_pinned_interfaces(const std::string &bpffs) {
  return bpf::pinned_dirs(tc_root(bpffs));
}

Result<PinnedTc> PinnedTc::open(const std::string &bpffs, const std::string &iface) {
  if (auto st = bpf::ensure_bpffs(bpffs); !st)
    return st.error();
  std::string dir = tc_pin_dir(bpffs, iface);
  if (!bpf::exists(dir))
    return make_error(ENOENT,
                      "bpfgate's tc datapath is not attached to {} (nothing pinned under {}); "
                      "attach it with `bpfgate tc attach {}`",
                      iface, dir, iface);
  auto dp = TcDatapath::from_pins(dir);
  if (!dp)
    return dp.error().context("open the tc datapath of " + iface);
  return PinnedTc(iface, dir, std::move(*dp));
}

Result<TcStatus> PinnedTc::status() const {
  TcStatus s;
  s.iface = iface_;
  auto cfg = dp_.config();
  if (!cfg)
    return cfg.error();
  s.config = *cfg;
  auto stages = dp_.stages();
  if (!stages)
    return stages.error();
  s.stages = *stages;
  auto classes = dp_.active_classes();
  if (!classes)
    return classes.error();
  s.classes = classes->size();
  uint32_t live = if_nametoindex(iface_.c_str());
  if (live && live == cfg->ifindex) {
    s.ifindex = live;
    s.ingress_prog_id = filter_prog_id(static_cast<int>(live), false);
    s.egress_prog_id = filter_prog_id(static_cast<int>(live), true);
    auto in = bpf::prog_id_of(dp_.prog_fd(false));
    auto out = bpf::prog_id_of(dp_.prog_fd(true));
    s.attached = in && out && *in == s.ingress_prog_id && *out == s.egress_prog_id;
  }
  return s;
}

Status PinnedTc::apply(const TcSetup &setup) {
  auto lock = bpf::DirLock::acquire(dir_);
  if (!lock)
    return lock.error();
  auto cfg = dp_.config();
  if (!cfg)
    return cfg.error();
  auto owned = reconcile_htb(iface_, cfg->owned, setup.htb);
  if (!owned)
    return owned.error();
  bg_tc_config c = *cfg;
  c.owned = *owned;
  c.htb_rate_bps = setup.htb ? setup.htb->rate_bps : 0;
  c.htb_default = setup.htb ? setup.htb->default_priority : 0;
  if (auto st = dp_.write_config(c); !st)
    return st;
  return dp_.apply(setup.image);
}

Status PinnedTc::set_stage(uint32_t stage, bool on) {
  auto lock = bpf::DirLock::acquire(dir_);
  if (!lock)
    return lock.error();
  return dp_.set_stage(stage, on);
}

namespace {

// Pins found for iface: an error when they run on it, otherwise stale (their
// interface is gone or was changed) and removed.
Status check_not_attached(const std::string &bpffs, const std::string &iface,
                          const std::string &dir) {
  if (!bpf::exists(dir))
    return {};
  if (auto pinned = PinnedTc::open(bpffs, iface)) {
    auto st = pinned->status();
    if (st && st->attached)
      return make_error(EEXIST,
                        "bpfgate's tc datapath is already attached to {} (programs {} and {}); "
                        "see `bpfgate tc status {}`, or run `bpfgate tc detach {}` first",
                        iface, st->ingress_prog_id, st->egress_prog_id, iface, iface);
  }
  log::warn("removing stale tc pins under {} (their interface is gone or was changed)", dir);
  return remove_pins(dir);
}

// Sets up HTB (if asked) and clsact on the interface, pins the datapath and
// attaches its filters; on failure undoes what it did.
Status set_up_interface(TcDatapath &dp, int ifindex, const std::string &iface,
                        const std::string &dir, const std::optional<core::TcHtbConfig> &htb) {
  auto in_id = bpf::prog_id_of(dp.prog_fd(false));
  auto out_id = bpf::prog_id_of(dp.prog_fd(true));
  if (!in_id)
    return in_id.error();
  if (!out_id)
    return out_id.error();
  bg_tc_config cfg{};
  if (auto c = dp.config(); c)
    cfg = *c;
  cfg.ifindex = static_cast<uint32_t>(ifindex);
  cfg.owned = 0;
  auto undo = [&](const Error &e) -> Error {
    undo_interface(ifindex, iface, cfg.owned, {*in_id, *out_id});
    (void)remove_pins(dir);
    return e;
  };
  if (htb) {
    if (auto created = qdisc::htb_apply(iface, *htb); !created)
      return created.error();
    cfg.owned |= BG_TC_OWN_HTB;  // created now, or found with our handle
    cfg.htb_rate_bps = htb->rate_bps;
    cfg.htb_default = htb->default_priority;
  }
  auto created = bpf::clsact_create(ifindex, iface);
  if (!created)
    return undo(created.error());
  if (*created)
    cfg.owned |= BG_TC_OWN_CLSACT;
  // Pinned before attached: a pinned datapath that is not attached is stale
  // and cleaned up by the next attach, an attached one is never unpinned.
  if (auto st = dp.write_config(cfg); !st)
    return undo(st.error());
  if (auto st = dp.pin(dir); !st)
    return undo(st.error());
  for (bool egress : {false, true}) {
    auto f = bpf::TcFilter::attach(dp.prog_fd(egress), ifindex, iface, bpf::tc_direction(egress),
                                   BG_TC_PRIORITY);
    if (!f)
      return undo(f.error());
    f->release();  // tc filters outlive the process, like the pins
  }
  return {};
}

}  // namespace

Result<TcStatus> tc_attach(const std::string &bpffs, const std::string &iface,
                           const TcSetup &setup) {
  auto ifindex = bpf::ifindex_of(iface);
  if (!ifindex)
    return ifindex.error();
  if (auto st = check_privileges(); !st)
    return st.error();
  auto lock = lock_root(bpffs);
  if (!lock)
    return lock.error();
  std::string dir = tc_pin_dir(bpffs, iface);
  if (auto st = check_not_attached(bpffs, iface, dir); !st)
    return st.error();
  auto dp = TcDatapath::load();
  if (!dp)
    return dp.error();
  if (auto st = dp->apply(setup.image); !st)
    return st.error().context("write the initial classes");
  if (auto st = set_up_interface(*dp, *ifindex, iface, dir, setup.htb); !st)
    return st.error();
  auto pinned = PinnedTc::open(bpffs, iface);
  if (!pinned)
    return pinned.error();
  return pinned->status();
}

Status tc_detach(const std::string &bpffs, const std::string &iface) {
  if (auto st = check_privileges(); !st)
    return st;
  if (auto st = bpf::ensure_bpffs(bpffs); !st)
    return st;
  std::string dir = tc_pin_dir(bpffs, iface);
  if (!bpf::exists(dir))
    return make_error(ENOENT,
                      "bpfgate's tc datapath is not attached to {} (nothing pinned under {}); see "
                      "`bpfgate tc status`",
                      iface, dir);
  auto lock = lock_root(bpffs);
  if (!lock)
    return lock.error();
  auto dp = TcDatapath::from_pins(dir);
  if (dp) {
    auto cfg = dp->config();
    uint32_t live = if_nametoindex(iface.c_str());
    auto in = bpf::prog_id_of(dp->prog_fd(false));
    auto out = bpf::prog_id_of(dp->prog_fd(true));
    if (cfg && live && live == cfg->ifindex && in && out)
      undo_interface(static_cast<int>(live), iface, cfg->owned, {*in, *out});
  } else {
    log::warn("{}: {}; removing what is pinned", iface, dp.error().what());
  }
  return remove_pins(dir);
}

// ---- the agent's hooks ----

Result<TcSetup> tc_setup_of(const core::TcConfig &tc) {
  auto image = core::compile_tc(tc, [](const std::string &n) -> Result<uint32_t> {
    auto i = bpf::ifindex_of(n);
    if (!i)
      return i.error();
    return static_cast<uint32_t>(*i);
  });
  if (!image)
    return image.error();
  return TcSetup{*image, tc.htb};
}

Status tc_converge(const std::string &bpffs, const std::optional<core::TcConfig> &running,
                   const std::optional<core::TcConfig> &wanted, const std::string &by,
                   const std::string &config_hash) {
  std::set<std::string> keep;
  if (wanted) {
    auto compiled = tc_setup_of(*wanted);
    if (!compiled)
      return compiled.error();
    const TcSetup &setup = *compiled;
    std::set<std::string> before;
    if (running)
      for (const auto &i : running->interfaces)
        before.insert(i.name);
    for (const auto &i : wanted->interfaces) {
      keep.insert(i.name);
      auto pinned = PinnedTc::open(bpffs, i.name);
      if (pinned) {
        auto st = pinned->status();
        if (st && st->attached) {
          if (auto a = pinned->apply(setup); !a)
            return a.error().context("apply the tc classes to " + i.name);
          if (!before.count(i.name))
            log::info("{}: adopted the running tc datapath ({} classes)", i.name,
                      setup.image.classes.size());
          continue;
        }
      }
      auto r = tc_attach(bpffs, i.name, setup);
      if (!r)
        return r.error();
      audit::Entry("tc_attach", by)
          .set("iface", i.name)
          .set("ingress_prog_id", r->ingress_prog_id)
          .set("egress_prog_id", r->egress_prog_id)
          .set("classes", setup.image.classes.size())
          .config(config_hash)
          .write();
    }
  }
  if (running)
    for (const auto &i : running->interfaces) {
      if (keep.count(i.name) || !bpf::exists(tc_pin_dir(bpffs, i.name)))
        continue;
      if (auto st = tc_detach(bpffs, i.name); !st)
        log::warn("{}: {}", i.name, st.error().what());
      else
        audit::Entry("tc_detach", by)
            .set("iface", i.name)
            .set("why", "no longer in the config")
            .config(config_hash)
            .write();
    }
  return {};
}

void tc_stop(const std::string &bpffs, const std::optional<core::TcConfig> &running, bool keep,
             const std::string &by) {
  if (!running || keep)
    return;
  for (const auto &i : running->interfaces) {
    if (!bpf::exists(tc_pin_dir(bpffs, i.name)))
      continue;
    if (auto st = tc_detach(bpffs, i.name); !st)
      log::warn("{}: {}", i.name, st.error().what());
    else
      audit::Entry("tc_detach", by).set("iface", i.name).set("why", "agent stopping").write();
  }
}

}  // namespace bpfgate::agent
