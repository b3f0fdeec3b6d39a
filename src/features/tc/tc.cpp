#include "features/tc/tc.hpp"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <fcntl.h>
#include <net/if.h>
#include <time.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <set>

#include "features/tc/tc_qdisc.hpp"
#include "bpf/error.hpp"
#include "bpf/features.hpp"
#include "bpf/object.hpp"
#include "bpf/pin.hpp"
#include "bpf/xdp.hpp"
#include "tc_datapath.skel.h"
#include "util/audit.hpp"
#include "util/log.hpp"

namespace bpfgate::agent {

namespace fs = std::filesystem;

namespace {

using TcSkel = bpf::Skeleton<bpf::SkeletonTraits<tc_datapath, tc_datapath__open_opts,
                                                 tc_datapath__load, tc_datapath__destroy>>;

constexpr const char *kStageProgs[BG_TC_STAGE_NR] = {"bg_tc_parse", "bg_tc_classify",
                                                     "bg_tc_police", "bg_tc_mirror", "bg_tc_count"};

std::string stage_pin(uint32_t stage) {
  return std::string(BG_TC_PIN_STAGE_PREFIX) + core::stage_name(stage);
}

std::string path_of(const std::string &dir, const std::string &name) {
  return dir + "/" + name;
}

uint64_t monotonic_now_ns() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1'000'000'000ULL + static_cast<uint64_t>(ts.tv_nsec);
}

Result<bpf::UniqueFd> dup_fd(int fd, const char *what) {
  if (fd < 0)
    return make_error(ENOENT, "the tc object has no {}", what);
  int d = fcntl(fd, F_DUPFD_CLOEXEC, 3);
  if (d < 0)
    return Error(errno, std::string("duplicate the fd of ") + what);
  return bpf::UniqueFd(d);
}

Result<uint32_t> prog_id_of(int fd) {
  bpf_prog_info info{};
  uint32_t len = sizeof(info);
  int err = bpf_obj_get_info_by_fd(fd, &info, &len);
  if (err)
    return bpf::libbpf_error(err, "read program info");
  return info.id;
}

Status check_privileges() {
  if (bpf::has_bpf_privileges())
    return {};
  return make_error(EPERM,
                    "bpfgate needs root, or CAP_BPF (or CAP_SYS_ADMIN) and CAP_NET_ADMIN, to "
                    "load and attach tc programs: run it with sudo");
}

std::string tc_root(const std::string &bpffs) {
  return bpffs + "/" + BG_TC_PIN_DIR;
}

Result<bpf::DirLock> lock_root(const std::string &bpffs) {
  if (auto st = bpf::ensure_bpffs(bpffs); !st)
    return st.error();
  if (auto st = bpf::make_private_dir(tc_root(bpffs)); !st)
    return st.error();
  return bpf::DirLock::acquire(tc_root(bpffs));
}

// ---- clsact and our filters on it (libbpf's bpf_tc_* API) ----

bpf_tc_attach_point point(bool egress) {
  return egress ? BPF_TC_EGRESS : BPF_TC_INGRESS;
}
const char *dir_name(bool egress) {
  return egress ? "egress" : "ingress";
}

// True when it created the clsact qdisc.
Result<bool> clsact_create(int ifindex, const std::string &iface) {
  LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = ifindex, .attach_point = BPF_TC_INGRESS);
  int err = bpf_tc_hook_create(&hook);
  if (err == -EEXIST)
    return false;
  if (err)
    return bpf::libbpf_error(err, fmt::format("create the clsact qdisc on {} (`tc qdisc add dev "
                                              "{} clsact` shows what the kernel says)",
                                              iface, iface));
  return true;
}

Status clsact_destroy(int ifindex) {
  LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = ifindex,
              .attach_point = static_cast<bpf_tc_attach_point>(BPF_TC_INGRESS | BPF_TC_EGRESS));
  int err = bpf_tc_hook_destroy(&hook);
  if (err && err != -ENOENT && err != -EINVAL && err != -ENODEV)
    return bpf::libbpf_error(err, "remove the clsact qdisc");
  return {};
}

Status filter_attach(int ifindex, const std::string &iface, bool egress, int prog_fd) {
  LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = ifindex, .attach_point = point(egress));
  LIBBPF_OPTS(bpf_tc_opts, opts, .prog_fd = prog_fd, .flags = BPF_TC_F_REPLACE,
              .handle = BG_TC_PRIORITY, .priority = BG_TC_PRIORITY);
  int err = bpf_tc_attach(&hook, &opts);
  if (err)
    return bpf::libbpf_error(err, fmt::format("attach the tc {} program to {} (direct-action on "
                                              "clsact, priority {:#x})",
                                              dir_name(egress), iface, BG_TC_PRIORITY));
  return {};
}

Status filter_detach(int ifindex, bool egress) {
  LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = ifindex, .attach_point = point(egress));
  LIBBPF_OPTS(bpf_tc_opts, opts, .handle = BG_TC_PRIORITY, .priority = BG_TC_PRIORITY);
  int err = bpf_tc_detach(&hook, &opts);
  if (err && err != -ENOENT && err != -EINVAL && err != -ENODEV)
    return bpf::libbpf_error(err, fmt::format("detach the tc {} program", dir_name(egress)));
  return {};
}

// The program our filter runs (0: no filter of ours).
uint32_t filter_prog_id(int ifindex, bool egress) {
  LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = ifindex, .attach_point = point(egress));
  LIBBPF_OPTS(bpf_tc_opts, opts, .handle = BG_TC_PRIORITY, .priority = BG_TC_PRIORITY);
  if (bpf_tc_query(&hook, &opts) != 0)
    return 0;
  return opts.prog_id;
}

Status remove_pins(const std::string &dir) {
  for (const auto &name : TcDatapath::pin_names())
    if (auto st = bpf::unpin(path_of(dir, name)); !st)
      return st;
  return bpf::remove_dir_if_empty(dir);
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
    else if (auto st = clsact_destroy(ifindex); !st)
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

// ---- TcDatapath ----

std::vector<std::string> TcDatapath::pin_names() {
  std::vector<std::string> n = {BG_TC_PIN_PROG_INGRESS, BG_TC_PIN_PROG_EGRESS, BG_TC_PIN_STAGES,
                                BG_TC_PIN_CONFIG,       BG_TC_PIN_CLASSES,     BG_TC_PIN_BUCKETS,
                                BG_TC_PIN_STATS};
  for (uint32_t s = 0; s < BG_TC_STAGE_NR; s++)
    n.push_back(stage_pin(s));
  return n;
}

Result<TcDatapath> TcDatapath::load() {
  auto skel = TcSkel::open("tc_datapath");
  if (!skel)
    return skel.error();
  if (auto st = skel->load(); !st)
    return st.error();
  auto dp = from_object((*skel)->obj);
  if (!dp)
    return dp.error();
  // Every stage in its slot; the fds we hold keep everything alive once the
  // skeleton goes.
  for (uint32_t s = 0; s < BG_TC_STAGE_NR; s++)
    if (auto st = dp->set_stage(s, true); !st)
      return st.error();
  return dp;
}

Result<TcDatapath> TcDatapath::from_object(const bpf_object *obj) {
  auto prog = [&](const char *name) {
    const bpf_program *p = bpf_object__find_program_by_name(obj, name);
    return dup_fd(p ? bpf_program__fd(p) : -1, name);
  };
  auto map = [&](const char *name) {
    const bpf_map *m = bpf_object__find_map_by_name(obj, name);
    return dup_fd(m ? bpf_map__fd(m) : -1, name);
  };
  auto in = prog("bg_tc_ingress");
  auto out = prog("bg_tc_egress");
  if (!in)
    return in.error();
  if (!out)
    return out.error();
  std::array<bpf::UniqueFd, BG_TC_STAGE_NR> stages;
  for (uint32_t s = 0; s < BG_TC_STAGE_NR; s++) {
    auto fd = prog(kStageProgs[s]);
    if (!fd)
      return fd.error();
    stages[s] = std::move(*fd);
  }
  auto slots = map("bg_tc_stages");
  auto config = map("bg_tc_config");
  auto classes = map("bg_tc_classes");
  auto buckets = map("bg_tc_buckets");
  auto stats = map("bg_tc_stats");
  for (auto *r : {&slots, &config, &classes, &buckets, &stats})
    if (!*r)
      return r->error();
  return TcDatapath(std::move(*in), std::move(*out), std::move(stages),
                    bpf::Map<__u32, __u32>(std::move(*slots)),
                    bpf::Map<__u32, bg_tc_config>(std::move(*config)),
                    bpf::Map<__u32, bg_tc_class>(std::move(*classes)),
                    bpf::Map<__u32, bg_tc_bucket>(std::move(*buckets)),
                    bpf::PerCpuMap<__u32, bg_tc_stats>(std::move(*stats)));
}

Result<TcDatapath> TcDatapath::from_pins(const std::string &dir) {
  auto in = bpf::open_pinned(path_of(dir, BG_TC_PIN_PROG_INGRESS));
  auto out = bpf::open_pinned(path_of(dir, BG_TC_PIN_PROG_EGRESS));
  if (!in)
    return in.error();
  if (!out)
    return out.error();
  std::array<bpf::UniqueFd, BG_TC_STAGE_NR> stages;
  for (uint32_t s = 0; s < BG_TC_STAGE_NR; s++) {
    auto fd = bpf::open_pinned(path_of(dir, stage_pin(s)));
    if (!fd)
      return fd.error();
    stages[s] = std::move(*fd);
  }
  auto slots = bpf::Map<__u32, __u32>::open_pinned(path_of(dir, BG_TC_PIN_STAGES));
  auto config = bpf::Map<__u32, bg_tc_config>::open_pinned(path_of(dir, BG_TC_PIN_CONFIG));
  auto classes = bpf::Map<__u32, bg_tc_class>::open_pinned(path_of(dir, BG_TC_PIN_CLASSES));
  auto buckets = bpf::Map<__u32, bg_tc_bucket>::open_pinned(path_of(dir, BG_TC_PIN_BUCKETS));
  auto stats = bpf::PerCpuMap<__u32, bg_tc_stats>::open_pinned(path_of(dir, BG_TC_PIN_STATS));
  if (!slots)
    return slots.error();
  if (!config)
    return config.error();
  if (!classes)
    return classes.error();
  if (!buckets)
    return buckets.error();
  if (!stats)
    return stats.error();
  return TcDatapath(std::move(*in), std::move(*out), std::move(stages), std::move(*slots),
                    std::move(*config), std::move(*classes), std::move(*buckets),
                    std::move(*stats));
}

Status TcDatapath::pin(const std::string &dir) const {
  std::vector<std::pair<int, std::string>> what = {{ingress_.get(), BG_TC_PIN_PROG_INGRESS},
                                                   {egress_.get(), BG_TC_PIN_PROG_EGRESS},
                                                   {slots_.fd(), BG_TC_PIN_STAGES},
                                                   {config_.fd(), BG_TC_PIN_CONFIG},
                                                   {classes_.fd(), BG_TC_PIN_CLASSES},
                                                   {buckets_.fd(), BG_TC_PIN_BUCKETS},
                                                   {stats_.fd(), BG_TC_PIN_STATS}};
  for (uint32_t s = 0; s < BG_TC_STAGE_NR; s++)
    what.emplace_back(stage_progs_[s].get(), stage_pin(s));
  for (const auto &[fd, name] : what)
    if (auto st = bpf::pin_fd(fd, path_of(dir, name)); !st)
      return st;
  return {};
}

Status TcDatapath::set_stage(uint32_t stage, bool on) {
  if (stage >= BG_TC_STAGE_NR)
    return make_error(EINVAL, "no stage {}", stage);
  if (on) {
    __u32 fd = static_cast<__u32>(stage_progs_[stage].get());
    if (auto st = slots_.update(stage, fd); !st)
      return st.error().context(fmt::format("enable the {} stage", core::stage_name(stage)));
    return {};
  }
  auto gone = slots_.erase(stage);
  if (!gone)
    return gone.error().context(fmt::format("disable the {} stage", core::stage_name(stage)));
  return {};
}

Result<core::TcStages> TcDatapath::stages() const {
  core::TcStages out{};
  for (uint32_t s = 0; s < BG_TC_STAGE_NR; s++) {
    auto id = slots_.lookup(s);  // a program array reads back program ids
    if (!id)
      return id.error();
    out[s] = id->has_value();
  }
  return out;
}

Result<bg_tc_config> TcDatapath::config() const {
  auto c = config_.lookup(0);
  if (!c)
    return c.error();
  return c->value_or(bg_tc_config{});
}

Status TcDatapath::write_config(const bg_tc_config &c) {
  return config_.update(0, c);
}

Result<std::vector<bg_tc_class>> TcDatapath::active_classes() const {
  auto cfg = config();
  if (!cfg)
    return cfg.error();
  std::vector<bg_tc_class> out;
  uint32_t gen = cfg->active & 1;
  for (uint32_t i = 0; i < BG_TC_CLASSES_MAX; i++) {
    auto c = classes_.lookup(gen * BG_TC_CLASSES_MAX + i);
    if (!c)
      return c.error();
    if (!*c || !((*c)->flags & BG_TC_CLASS_VALID))
      break;
    out.push_back(**c);
  }
  return out;
}

Status TcDatapath::apply(const core::TcImage &image) {
  if (image.classes.size() > BG_TC_CLASSES_MAX)
    return make_error(E2BIG, "{} classes: at most {}", image.classes.size(), BG_TC_CLASSES_MAX);
  auto cfg = config();
  if (!cfg)
    return cfg.error();
  auto old = active_classes();
  if (!old)
    return old.error();
  uint32_t next = (cfg->active & 1) ^ 1;
  for (uint32_t i = 0; i < BG_TC_CLASSES_MAX; i++) {
    bg_tc_class c = i < image.classes.size() ? image.classes[i] : bg_tc_class{};
    if (auto st = classes_.update(next * BG_TC_CLASSES_MAX + i, c); !st)
      return st.error().context("write the classes");
    if (i >= image.classes.size())
      break;  // the first invalid entry ends the generation
  }
  // The switch: one write of the config, whose other fields stay as they are.
  bg_tc_config c = *cfg;
  c.active = next;
  c.generation++;
  if (auto st = write_config(c); !st)
    return st.error().context("switch to the new classes");
  for (uint32_t s = 0; s < BG_TC_STAGE_NR; s++)
    if (auto st = set_stage(s, image.stages[s]); !st)
      return st;
  // A position whose class changed starts over: a new name, new counters; a
  // new rate or burst, a full bucket.
  for (uint32_t i = 0; i < image.classes.size(); i++) {
    const bg_tc_class &now = image.classes[i];
    const bg_tc_class *was = i < old->size() ? &(*old)[i] : nullptr;
    bool renamed = !was || std::strncmp(was->name, now.name, BG_TC_NAME_MAX) != 0;
    if (renamed || was->rate_bps != now.rate_bps || was->burst_ns != now.burst_ns)
      if (auto st = buckets_.update(i, bg_tc_bucket{}); !st)
        return st;
    if (renamed)
      if (auto st = stats_.update_all(i, bg_tc_stats{}); !st)
        return st;
  }
  return {};
}

Result<std::vector<TcClassStats>> TcDatapath::class_stats() const {
  auto classes = active_classes();
  if (!classes)
    return classes.error();
  std::vector<TcClassStats> out;
  uint64_t now = monotonic_now_ns();
  auto read = [&](uint32_t pos, TcClassStats &s) -> Status {
    auto per_cpu = stats_.lookup(pos);
    if (!per_cpu)
      return per_cpu.error();
    for (const auto &v : *per_cpu) {
      s.packets += v.packets;
      s.bytes += v.bytes;
      s.drops += v.drops;
      s.marked += v.marked;
      s.mirrored += v.mirrored;
      if (!v.win_start_ns || now < v.win_start_ns)
        continue;
      uint64_t age = now - v.win_start_ns;
      if (age >= BG_TC_RATE_WINDOW_NS)  // the window is over but not yet rolled: no packet since
        s.rate_bps += static_cast<double>(v.win_bytes) * 8e9 / static_cast<double>(age);
      else if (v.prev_ns)
        s.rate_bps += static_cast<double>(v.prev_bytes) * 8e9 / static_cast<double>(v.prev_ns);
    }
    return {};
  };
  for (uint32_t i = 0; i < classes->size(); i++) {
    TcClassStats s;
    s.name = (*classes)[i].name;
    s.position = i;
    s.def = (*classes)[i];
    if (auto st = read(i, s); !st)
      return st.error();
    out.push_back(s);
  }
  TcClassStats none;
  none.unclassified = true;
  none.position = BG_TC_STATS_UNCLASSIFIED;
  if (auto st = read(BG_TC_STATS_UNCLASSIFIED, none); !st)
    return st.error();
  out.push_back(none);
  return out;
}

// ---- attach, detach, pinned ----

std::string tc_pin_dir(const std::string &bpffs, const std::string &iface) {
  return tc_root(bpffs) + "/" + iface;
}

Result<std::vector<std::string>> tc_pinned_interfaces(const std::string &bpffs) {
  std::vector<std::string> out;
  std::error_code ec;
  std::string root = tc_root(bpffs);
  if (!fs::exists(root, ec))
    return out;
  for (const auto &e : fs::directory_iterator(root, ec))
    if (e.is_directory())
      out.push_back(e.path().filename());
  if (ec)
    return Error(ec.value(), "list " + root);
  std::sort(out.begin(), out.end());
  return out;
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
    auto in = prog_id_of(dp_.prog_fd(false));
    auto out = prog_id_of(dp_.prog_fd(true));
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
  if (bpf::exists(dir)) {
    auto pinned = PinnedTc::open(bpffs, iface);
    if (pinned) {
      auto st = pinned->status();
      if (st && st->attached)
        return make_error(EEXIST,
                          "bpfgate's tc datapath is already attached to {} (programs {} and {}); "
                          "see `bpfgate tc status {}`, or run `bpfgate tc detach {}` first",
                          iface, st->ingress_prog_id, st->egress_prog_id, iface, iface);
    }
    log::warn("removing stale tc pins under {} (their interface is gone or was changed)", dir);
    if (auto st = remove_pins(dir); !st)
      return st.error();
  }

  auto dp = TcDatapath::load();
  if (!dp)
    return dp.error();
  if (auto st = dp->apply(setup.image); !st)
    return st.error().context("write the initial classes");
  auto in_id = prog_id_of(dp->prog_fd(false));
  auto out_id = prog_id_of(dp->prog_fd(true));
  if (!in_id)
    return in_id.error();
  if (!out_id)
    return out_id.error();

  bg_tc_config cfg{};
  if (auto c = dp->config(); c)
    cfg = *c;
  cfg.ifindex = static_cast<uint32_t>(*ifindex);
  cfg.owned = 0;
  auto undo = [&](const Error &e) -> Error {
    undo_interface(*ifindex, iface, cfg.owned, {*in_id, *out_id});
    (void)remove_pins(dir);
    return e;
  };
  if (setup.htb) {
    if (auto created = qdisc::htb_apply(iface, *setup.htb); !created)
      return created.error();
    cfg.owned |= BG_TC_OWN_HTB;  // created now, or found with our handle
    cfg.htb_rate_bps = setup.htb->rate_bps;
    cfg.htb_default = setup.htb->default_priority;
  }
  auto created = clsact_create(*ifindex, iface);
  if (!created)
    return undo(created.error());
  if (*created)
    cfg.owned |= BG_TC_OWN_CLSACT;
  // Pinned before attached: a pinned datapath that is not attached is stale
  // and cleaned up by the next attach, an attached one is never unpinned.
  if (auto st = dp->write_config(cfg); !st)
    return undo(st.error());
  if (auto st = bpf::make_private_dir(dir); !st)
    return undo(st.error());
  if (auto st = dp->pin(dir); !st)
    return undo(st.error());
  for (bool egress : {false, true})
    if (auto st = filter_attach(*ifindex, iface, egress, dp->prog_fd(egress)); !st)
      return undo(st.error());
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
    auto in = prog_id_of(dp->prog_fd(false));
    auto out = prog_id_of(dp->prog_fd(true));
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
