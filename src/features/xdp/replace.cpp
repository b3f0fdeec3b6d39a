#include "features/xdp/replace.hpp"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/bpf.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <map>
#include <vector>

#include "agent/crash_point.hpp"
#include "features/observe/events.hpp"
#include "features/xdp/filter.hpp"
#include "bpf/error.hpp"
#include "bpf/features.hpp"
#include "bpf/map.hpp"
#include "bpf/pin.hpp"
#include "bpf/skeletons.hpp"
#include "bpf/xdp.hpp"
#include "bpfgate/abi/lb.h"

namespace bpfgate::agent {

namespace {

struct ProgInfo {
  uint32_t id = 0;
  std::string tag;  // hex of the kernel's tag
  std::vector<uint32_t> map_ids;
};

Result<ProgInfo> prog_info(int fd) {
  bpf_prog_info info{};
  uint32_t len = sizeof(info);
  if (int err = bpf_obj_get_info_by_fd(fd, &info, &len))
    return bpf::libbpf_error(err, "read program info");
  ProgInfo p;
  p.id = info.id;
  for (uint8_t b : info.tag)
    p.tag += fmt::format("{:02x}", b);
  std::vector<uint32_t> ids(info.nr_map_ids);
  if (!ids.empty()) {
    bpf_prog_info again{};
    again.nr_map_ids = static_cast<uint32_t>(ids.size());
    again.map_ids = reinterpret_cast<uint64_t>(ids.data());
    len = sizeof(again);
    if (int err = bpf_obj_get_info_by_fd(fd, &again, &len))
      return bpf::libbpf_error(err, "read the program's maps");
    ids.resize(std::min<size_t>(ids.size(), again.nr_map_ids));
  }
  p.map_ids = std::move(ids);
  return p;
}

struct RunningMap {
  bpf::UniqueFd fd;
  bpf_map_info info{};
};

// The running program's maps by name (the kernel keeps 15 characters of it).
Result<std::map<std::string, RunningMap>> maps_of(const ProgInfo &p) {
  std::map<std::string, RunningMap> out;
  for (uint32_t id : p.map_ids) {
    int fd = bpf_map_get_fd_by_id(id);
    if (fd < 0)
      return bpf::libbpf_error(fd, fmt::format("open map id {} of the running program", id));
    RunningMap m{bpf::UniqueFd(fd), {}};
    uint32_t len = sizeof(m.info);
    if (int err = bpf_obj_get_info_by_fd(fd, &m.info, &len))
      return bpf::libbpf_error(err, "read map info");
    out.emplace(m.info.name, std::move(m));
  }
  return out;
}

std::string kernel_name(const char *name) {
  return std::string(name).substr(0, BPF_OBJ_NAME_LEN - 1);
}

// Whether the running program was loaded with frags (bg_config.frags; 0 in
// versions before it, which had none): the new one must be, to attach where
// the MTU needs it.
Result<bool> running_frags(std::map<std::string, RunningMap> &running) {
  auto cfg = running.find(kernel_name("bg_config"));
  if (cfg == running.end())
    return make_error(ENOENT, "the running program uses no bg_config map");
  auto v = bpf::Map<__u32, bg_config>(cfg->second.fd.get()).lookup(0);
  if (!v)
    return v.error();
  return *v && (*v)->frags;
}

// This binary's filter, opened and configured as the running one was
// (table sizes, event transport, frags), its maps those of the running program. The
// program array the filter hands frames on with is the pinned one (`next`,
// -1: none) where the running program does not use one (it came from a
// bpfgate without the balancer): the balancer in its slot stays there.
Result<bpf::XdpFilterSkel> load_on(std::map<std::string, RunningMap> &running, int next) {
  auto skel = bpf::XdpFilterSkel::open("xdp_filter");
  if (!skel)
    return skel.error();
  auto sources = running.find(kernel_name("bg_sources"));
  auto events = running.find(kernel_name("bg_events"));
  if (sources == running.end() || events == running.end())
    return make_error(ENOENT,
                      "the running program uses no bg_sources or bg_events map: not a bpfgate "
                      "filter this version can take over; detach and attach it");
  prepare_filter(*skel, sources->second.info.max_entries);
  auto frags = running_frags(running);
  if (!frags)
    return frags.error();
  prepare_frags(*skel, *frags);
  bg_event_transport t = events->second.info.type == BPF_MAP_TYPE_PERF_EVENT_ARRAY
                             ? BG_EVENT_PERFBUF
                             : BG_EVENT_RINGBUF;
  if (auto st = set_event_transport(*skel, t); !st)
    return st.error();
  bpf_map *m;
  bpf_object__for_each_map(m, (*skel)->obj) {
    if (bpf_map__is_internal(m))
      continue;  // .rodata: the new program's own
    auto it = running.find(kernel_name(bpf_map__name(m)));
    int fd = it != running.end()                           ? it->second.fd.get()
             : m == (*skel)->maps.bg_xdp_next && next >= 0 ? next
                                                           : -1;
    if (fd < 0)
      continue;  // a map the running program does not use (inner templates, a new one)
    if (int err = bpf_map__reuse_fd(m, fd))
      return bpf::libbpf_error(err, fmt::format("take over map {}", bpf_map__name(m)));
  }
  if (auto st = skel->load(); !st)
    return st.error().context(
        "load the new program on the running filter's maps (maps of another layout cannot be "
        "taken over: `bpfgate detach` and attach again, which leaves the interface unfiltered "
        "meanwhile)");
  return skel;
}

// Maps this version pins that the running filter's pins lack (a filter
// pinned by an older bpfgate: the opstats, hot, known_bits and known_sum maps), made by the load
// above and pinned before the swap, so that a later adoption finds them.
// Returns the pins it made (to remove if the swap fails).
Result<std::vector<std::string>> pin_new_maps(const bpf::XdpFilterSkel &skel,
                                              const std::string &dir) {
  std::vector<std::string> made;
  for (const bpf::PinSpec &spec : {op_stats_pin(), hot_pin(), known_bits_pin(), known_sum_pin()}) {
    std::string path = bpf::pin_path(dir, spec.pin);
    if (bpf::exists(path))
      continue;
    const bpf_map *m = bpf_object__find_map_by_name(skel->obj, spec.object.c_str());
    if (!m)
      return make_error(ENOENT, "the new program has no map {}", spec.object);
    if (auto st = bpf::pin_fd(bpf_map__fd(m), path); !st) {
      for (const std::string &p : made)
        (void)bpf::unpin(p);
      return st.error().context("pin the new map " + spec.pin);
    }
    made.push_back(path);
  }
  return made;
}

// Points pin `path` at prog_fd in one step: pinned beside it, then renamed over it.
Status repin(int prog_fd, const std::string &dir, const char *name) {
  std::string path = bpf::pin_path(dir, name), tmp = bpf::pin_path(dir, kProgNextPin);
  (void)bpf::unpin(tmp);
  if (auto st = bpf::pin_fd(prog_fd, tmp); !st)
    return st;
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    int err = errno;
    (void)bpf::unpin(tmp);
    return Error(err, "rename " + tmp + " to " + path);
  }
  return {};
}

// A filter pinned by a bpfgate older than the load balancer has no program
// array to hand frames on with: the new program's (empty: frames pass as
// before) is pinned once it runs, where the balancer will find it.
Status pin_next_if_absent(const bpf::XdpFilterSkel &skel, const std::string &dir) {
  std::string path = bpf::pin_path(dir, BG_PIN_NEXT);
  if (bpf::exists(path))
    return {};
  return bpf::pin_fd(bpf_map__fd(skel->maps.bg_xdp_next), path);
}

}  // namespace

Result<ReplaceReport> replace_program(const std::string &bpffs, const std::string &iface,
                                      bool always) {
  if (auto st = bpf::require_privileges("bpfgate", "replace the XDP program"); !st)
    return st.error();
  if (auto st = bpf::ensure_bpffs(bpffs); !st)
    return st.error();
  auto lock = bpf::DirLock::acquire(bpf::pin_root(bpffs));
  if (!lock)
    return lock.error();
  std::string dir = bpf::pin_dir(bpffs, iface);
  std::string link_pin = bpf::pin_path(dir, BG_PIN_LINK);
  if (!bpf::exists(dir))
    return make_error(ENOENT, "bpfgate is not attached to {} (nothing pinned under {})", iface,
                      dir);
  if (!bpf::exists(link_pin))
    return make_error(EOPNOTSUPP,
                      "{}: the filter runs in libxdp's dispatcher, which replaces programs "
                      "itself; replacing in place works on a filter attached directly",
                      iface);
  auto link = bpf::open_pinned(link_pin);
  if (!link)
    return link.error();
  auto li = bpf::link_info(link->get());
  if (!li)
    return li.error();
  if (li->ifindex == 0)
    return make_error(ENODEV, "{}: the filter's interface is gone (a defunct link)", iface);
  int old_fd = bpf_prog_get_fd_by_id(li->prog_id);
  if (old_fd < 0)
    return bpf::libbpf_error(old_fd, "open the running program");
  bpf::UniqueFd old_prog(old_fd);
  auto old_info = prog_info(old_prog.get());
  if (!old_info)
    return old_info.error();
  auto running = maps_of(*old_info);
  if (!running)
    return running.error();
  bpf::UniqueFd next;
  if (std::string p = bpf::pin_path(dir, BG_PIN_NEXT); bpf::exists(p)) {
    auto fd = bpf::open_pinned(p);
    if (!fd)
      return fd.error();
    next = std::move(*fd);
  }
  auto skel = load_on(*running, next.valid() ? next.get() : -1);
  if (!skel)
    return skel.error();
  crash_point("replace-loaded");
  int new_fd = bpf_program__fd((*skel)->progs.bg_xdp_filter);
  auto new_info = prog_info(new_fd);
  if (!new_info)
    return new_info.error();
  ReplaceReport r{false, old_info->id, old_info->id, li->id};
  if (!always && new_info->tag == old_info->tag)
    return r;
  // The new program skips the known table for a source whose bit is clear:
  // a bitmap it brings (the running one had none) covers the table before
  // the swap, and again after it for sources the old program proved meanwhile.
  bool new_bits =
      !running->count(kernel_name("bg_known_bits")) || !running->count(kernel_name("bg_known_sum"));
  auto mark_known = [&]() -> Status {
    if (!new_bits)
      return {};
    return mark_known_table(bpf_map__fd((*skel)->maps.bg_known),
                            bpf_map__fd((*skel)->maps.bg_known_bits),
                            bpf_map__fd((*skel)->maps.bg_known_sum));
  };
  if (auto st = mark_known(); !st)
    return st.error().context("set the new program's known_bits");
  auto made = pin_new_maps(*skel, dir);
  if (!made)
    return made.error();
  LIBBPF_OPTS(bpf_link_update_opts, opts, .flags = BPF_F_REPLACE,
              .old_prog_fd = static_cast<__u32>(old_prog.get()));
  if (int err = bpf_link_update(link->get(), new_fd, &opts)) {
    for (const auto &p : *made)
      (void)bpf::unpin(p);
    return bpf::libbpf_error(err, fmt::format("swap the program of {}'s XDP link (program id {} "
                                              "was expected there: another replace won?)",
                                              iface, old_info->id));
  }
  crash_point("replace-swapped");
  if (auto st = mark_known(); !st)
    return st.error().context("the new program runs; set its known_bits again");
  if (auto st = repin(new_fd, dir, BG_PIN_PROG); !st)
    return st.error().context("the new program runs; pin it");
  if (auto st = pin_next_if_absent(*skel, dir); !st)
    return st.error().context("the new program runs; pin its program array");
  r.replaced = true;
  r.new_prog_id = new_info->id;
  return r;
}

}  // namespace bpfgate::agent
