#include "agent/filter.hpp"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include <cerrno>
#include <cstring>
#include <algorithm>
#include <filesystem>

#include "bpf/features.hpp"
#include "bpf/pin.hpp"
#include "bpf/skeletons.hpp"
#include "util/log.hpp"

namespace bpfgate::agent {

namespace fs = std::filesystem;

std::string to_string(bg_verdict v) {
  return v == BG_VERDICT_DROP ? "drop" : "pass";
}

std::string to_string(bg_reason r) {
  switch (r) {
    case BG_REASON_OK:
      return "ok";
    case BG_REASON_NOT_IP:
      return "not_ip";
    case BG_REASON_UNPARSEABLE:
      return "unparseable";
    case BG_REASON_RATE_LIMIT:
      return "rate_limit";
    case BG_REASON_NR:
      break;
  }
  return "unknown";
}

namespace {

constexpr const char *kPins[] = {BG_PIN_LINK, BG_PIN_PROG, BG_PIN_SOURCES, BG_PIN_COUNTERS,
                                 BG_PIN_CONFIG};

std::string pin_path(const std::string &dir, const char *name) {
  return dir + "/" + name;
}

Status remove_pins(const std::string &dir) {
  for (const char *name : kPins) {
    auto st = bpf::unpin(pin_path(dir, name));
    if (!st)
      return st;
  }
  return bpf::remove_dir_if_empty(dir);
}

std::string mode_name(uint32_t m) {
  switch (m) {
    case BG_ATTACH_NATIVE:
      return "native";
    case BG_ATTACH_GENERIC:
      return "generic";
    case BG_ATTACH_OFFLOAD:
      return "offload";
    default:
      return "unknown";
  }
}

uint32_t mode_code(bpf::XdpMode m) {
  switch (m) {
    case bpf::XdpMode::kNative:
      return BG_ATTACH_NATIVE;
    case bpf::XdpMode::kGeneric:
      return BG_ATTACH_GENERIC;
    case bpf::XdpMode::kOffload:
      return BG_ATTACH_OFFLOAD;
    case bpf::XdpMode::kAuto:
      break;
  }
  return BG_ATTACH_NONE;
}

Status check_privileges() {
  if (bpf::has_bpf_privileges())
    return {};
  return make_error(EPERM,
                    "bpfgate needs root, or CAP_BPF (or CAP_SYS_ADMIN) and CAP_NET_ADMIN, "
                    "to load and attach BPF programs: run it with sudo");
}

// Prepares <bpffs>/bpfgate and takes its lock.
Result<bpf::DirLock> lock_root(const std::string &bpffs) {
  if (auto st = bpf::ensure_bpffs(bpffs); !st)
    return st.error();
  std::string root = bpf::pin_root(bpffs);
  if (auto st = bpf::make_private_dir(root); !st)
    return st.error();
  return bpf::DirLock::acquire(root);
}

// If pins exist for iface: an error when they hold a live attachment to it,
// otherwise (interface gone or renamed) they are stale and are removed.
Status check_not_attached(const std::string &dir, const std::string &iface, int ifindex) {
  std::string link_pin = pin_path(dir, BG_PIN_LINK);
  if (!bpf::exists(link_pin)) {
    if (bpf::exists(dir))
      return remove_pins(dir);
    return {};
  }
  auto link = bpf::open_pinned(link_pin);
  if (link) {
    auto info = bpf::link_info(link->get());
    if (info && info->ifindex == static_cast<uint32_t>(ifindex))
      return make_error(EEXIST,
                        "bpfgate is already attached to {} (program id {}); change limits "
                        "with `bpfgate set {}` or run `bpfgate detach {}` first",
                        iface, info->prog_id, iface, iface);
  }
  log::warn("removing stale pins under {} (their interface is gone)", dir);
  return remove_pins(dir);
}

}  // namespace

Result<AttachReport> attach(const std::string &bpffs, const AttachOptions &o) {
  if (auto st = core::validate(o.limits); !st)
    return st.error();
  if (auto st = core::validate_max_sources(o.max_sources); !st)
    return st.error();
  auto ifindex = bpf::ifindex_of(o.iface);
  if (!ifindex)
    return ifindex.error();
  if (auto st = check_privileges(); !st)
    return st.error();
  auto lock = lock_root(bpffs);
  if (!lock)
    return lock.error();

  std::string dir = bpf::pin_dir(bpffs, o.iface);
  if (auto st = check_not_attached(dir, o.iface, *ifindex); !st)
    return st.error();

  AttachReport report{};
  auto present = bpf::query_xdp(*ifindex);
  if (!present)
    return present.error().context("attach " + o.iface);
  if (present->prog_id != 0) {
    if (!o.force)
      return make_error(EBUSY,
                        "{} already has an XDP program (id {}, {} mode) that bpfgate did not "
                        "attach; remove it (`ip link set dev {} xdp off`) or pass --force to "
                        "replace it",
                        o.iface, present->prog_id, bpf::to_string(present->mode), o.iface);
    if (auto st = bpf::detach_foreign_xdp(*ifindex, *present); !st)
      return st.error();
    report.replaced_prog_id = present->prog_id;
    log::warn("removed XDP program id {} from {} (--force)", present->prog_id, o.iface);
  }

  auto skel = bpf::XdpFilterSkel::open("xdp_filter");
  if (!skel)
    return skel.error();
  bpf_map__set_max_entries((*skel)->maps.bg_sources, o.max_sources);
  if (o.mode == bpf::XdpMode::kOffload) {
    bpf_program__set_ifindex((*skel)->progs.bg_xdp_filter, *ifindex);
    bpf_map__set_ifindex((*skel)->maps.bg_sources, *ifindex);
    bpf_map__set_ifindex((*skel)->maps.bg_counters, *ifindex);
    bpf_map__set_ifindex((*skel)->maps.bg_config, *ifindex);
  }
  if (auto st = skel->load(); !st) {
    if (o.mode == bpf::XdpMode::kOffload)
      return make_error(st.error().err(),
                        "load for offload to {} failed: offload needs a NIC "
                        "that runs XDP in hardware (e.g. Netronome nfp); use --mode native, "
                        "generic or auto",
                        o.iface);
    return st.error();
  }

  bg_config cfg{};
  core::apply_limits(o.limits, cfg);
  cfg.unparsed_verdict = o.unparsed_verdict;
  bpf::Map<__u32, bg_config> config(bpf_map__fd((*skel)->maps.bg_config));
  __u32 zero = 0;
  if (auto st = config.update(zero, cfg); !st)
    return st.error().context("write config");

  int prog_fd = bpf_program__fd((*skel)->progs.bg_xdp_filter);
  auto att = bpf::attach_xdp(prog_fd, *ifindex, o.iface, o.mode);
  if (!att)
    return att.error();
  cfg.attach_mode = mode_code(att->mode);
  if (auto st = config.update(zero, cfg); !st)
    return st.error().context("write config");

  // Pin everything; the link last, so a failure before it leaves nothing attached.
  if (auto st = bpf::make_private_dir(dir); !st)
    return st.error();
  const std::pair<const char *, int> pins[] = {
      {BG_PIN_CONFIG, bpf_map__fd((*skel)->maps.bg_config)},
      {BG_PIN_SOURCES, bpf_map__fd((*skel)->maps.bg_sources)},
      {BG_PIN_COUNTERS, bpf_map__fd((*skel)->maps.bg_counters)},
      {BG_PIN_PROG, prog_fd},
      {BG_PIN_LINK, att->link.get()},
  };
  for (const auto &[name, fd] : pins) {
    if (auto st = bpf::pin_fd(fd, pin_path(dir, name)); !st) {
      (void)remove_pins(dir);
      return st.error();
    }
  }
  auto info = bpf::link_info(att->link.get());
  if (info) {
    report.link_id = info->id;
    report.prog_id = info->prog_id;
  }
  report.mode = att->mode;
  report.note = att->fallback_note;
  return report;
}

Status detach(const std::string &bpffs, const std::string &iface) {
  if (auto st = check_privileges(); !st)
    return st;
  if (auto st = bpf::ensure_bpffs(bpffs); !st)
    return st;
  std::string dir = bpf::pin_dir(bpffs, iface);
  if (!bpf::exists(dir))
    return make_error(ENOENT,
                      "bpfgate is not attached to {} (nothing pinned under {}); see "
                      "`bpfgate status`",
                      iface, dir);
  auto lock = bpf::DirLock::acquire(bpf::pin_root(bpffs));
  if (!lock)
    return lock.error();
  auto link = bpf::open_pinned(pin_path(dir, BG_PIN_LINK));
  if (link) {
    // Detach even if another process still holds the link open.
    int err = bpf_link_detach(link->get());
    if (err && errno != ENOLINK && errno != EINVAL)
      return bpf::libbpf_error(err, "detach the XDP link of " + iface);
  }
  return remove_pins(dir);
}

Result<std::vector<std::string>> pinned_interfaces(const std::string &bpffs) {
  std::vector<std::string> out;
  std::string root = bpf::pin_root(bpffs);
  std::error_code ec;
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

Result<PinnedFilter> PinnedFilter::open(const std::string &bpffs, const std::string &iface) {
  if (auto st = bpf::ensure_bpffs(bpffs); !st)
    return st.error();
  std::string dir = bpf::pin_dir(bpffs, iface);
  if (!bpf::exists(dir))
    return make_error(ENOENT,
                      "bpfgate is not attached to {} (nothing pinned under {}); attach "
                      "it with `bpfgate attach {}`",
                      iface, dir, iface);
  auto link = bpf::open_pinned(pin_path(dir, BG_PIN_LINK));
  if (!link)
    return link.error();
  auto config = bpf::Map<__u32, bg_config>::open_pinned(pin_path(dir, BG_PIN_CONFIG));
  if (!config)
    return config.error();
  auto sources = bpf::Map<bg_src_key, bg_src_state>::open_pinned(pin_path(dir, BG_PIN_SOURCES));
  if (!sources)
    return sources.error();
  auto counters = bpf::PerCpuMap<__u32, bg_counter>::open_pinned(pin_path(dir, BG_PIN_COUNTERS));
  if (!counters)
    return counters.error();
  return PinnedFilter(iface, std::move(*link), std::move(*config), std::move(*sources),
                      std::move(*counters));
}

Result<bg_config> PinnedFilter::config() const {
  __u32 zero = 0;
  auto v = config_.lookup(zero);
  if (!v)
    return v.error();
  if (!*v)
    return make_error(ENOENT, "config of {} is missing", iface_);
  return **v;
}

Status PinnedFilter::set_limits(const core::Limits &limits) {
  if (auto st = core::validate(limits); !st)
    return st;
  auto cfg = config();
  if (!cfg)
    return cfg.error();
  core::apply_limits(limits, *cfg);
  cfg->generation++;
  __u32 zero = 0;
  return config_.update(zero, *cfg);
}

Result<CounterTotals> PinnedFilter::counters() const {
  CounterTotals totals{};
  for (__u32 k = 0; k < BG_COUNTER_NR; k++) {
    auto per_cpu = counters_.lookup(k);
    if (!per_cpu)
      return per_cpu.error();
    for (const auto &c : *per_cpu) {
      totals[k].packets += c.packets;
      totals[k].bytes += c.bytes;
    }
  }
  return totals;
}

Result<std::vector<SourceEntry>> PinnedFilter::sources() const {
  auto entries = sources_.dump();
  if (!entries)
    return entries.error();
  std::vector<SourceEntry> out;
  out.reserve(entries->size());
  for (const auto &[k, v] : *entries)
    out.push_back(SourceEntry{k, v});
  return out;
}

Result<FilterStatus> PinnedFilter::status() const {
  FilterStatus s;
  s.iface = iface_;
  auto info = bpf::link_info(link_.get());
  if (!info)
    return info.error();
  s.ifindex = info->ifindex;
  s.prog_id = info->prog_id;
  s.link_id = info->id;
  auto cfg = config();
  if (!cfg)
    return cfg.error();
  s.mode = mode_name(cfg->attach_mode);
  s.limits = core::limits_of(*cfg);
  s.unparsed_verdict = static_cast<bg_verdict>(cfg->unparsed_verdict);
  auto minfo = bpf::map_info(sources_.fd());
  if (!minfo)
    return minfo.error();
  s.max_sources = minfo->max_entries;
  auto c = counters();
  if (!c)
    return c.error();
  s.counters = *c;
  return s;
}

}  // namespace bpfgate::agent
