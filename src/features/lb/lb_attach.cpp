// Where the balancer runs: in slot BG_NEXT_LB of each filter's `next` program
// array (the filter tail-calls it for what it passes), and alone, as a pinned
// XDP link, on the interfaces where the backends' replies arrive.
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include <algorithm>
#include <filesystem>

#include "bpf/map.hpp"
#include "bpf/pin.hpp"
#include "bpf/xdp.hpp"
#include "features/lb/lb_datapath.hpp"
#include "util/log.hpp"

namespace bpfgate::agent::lb {

namespace {

// The filters' `next` arrays: (interface, path), present or not.
std::vector<std::pair<std::string, std::string>> filter_slots(const std::string &bpffs) {
  std::vector<std::pair<std::string, std::string>> out;
  auto dirs = bpf::pinned_dirs(bpf::pin_root(bpffs));
  if (!dirs)
    return out;
  for (const auto &iface : *dirs)
    out.emplace_back(iface, bpf::pin_path(bpf::pin_dir(bpffs, iface), BG_PIN_NEXT));
  return out;
}

// Empties a filter's slot if it holds the program `prog_id`.
void take_from_filter(const std::string &path, uint32_t prog_id) {
  auto fd = bpf::open_pinned(path);
  if (!fd)
    return;
  __u32 slot = BG_NEXT_LB, id = 0;
  if (bpf_map_lookup_elem(fd->get(), &slot, &id) == 0 && (prog_id == 0 || id == prog_id))
    (void)bpf_map_delete_elem(fd->get(), &slot);
}

}  // namespace

void Balancer::hand_to_filters(std::vector<std::string> &notes) {
  int prog = set_.fd(BG_PIN_LB_PROG);
  for (const auto &[iface, path] : filter_slots(bpffs_)) {
    if (!bpf::exists(path)) {
      notes.push_back(fmt::format(
          "the filter on {} predates the balancer (no pinned `{}` program array): its traffic "
          "is not balanced until it is attached again (`bpfgate detach {}`, then reload)",
          iface, BG_PIN_NEXT, iface));
      continue;
    }
    auto fd = bpf::open_pinned(path);
    __u32 slot = BG_NEXT_LB;
    __u32 value = static_cast<__u32>(prog);
    if (!fd)
      notes.push_back(fmt::format("the filter on {}: {}", iface, fd.error().what()));
    else if (bpf_map_update_elem(fd->get(), &slot, &value, BPF_ANY) != 0)
      notes.push_back(fmt::format("the filter on {}: put the balancer in its `{}` array: {}", iface,
                                  BG_PIN_NEXT, strerror(errno)));
  }
}

Status Balancer::attach(const std::string &iface, bpf::XdpMode mode, std::string &note) {
  std::string path = set_.path(link_pin(iface));
  if (bpf::exists(path)) {
    auto link = bpf::open_pinned(path);
    if (link)
      if (auto info = bpf::link_info(link->get()); info && info->ifindex != 0)
        return {};           // attached (by this agent or the one before it)
    (void)bpf::unpin(path);  // defunct: its interface went away
  }
  auto ifindex = bpf::ifindex_of(iface);
  if (!ifindex)
    return ifindex.error();
  auto a = bpf::attach_xdp(set_.fd(BG_PIN_LB_PROG), *ifindex, iface, mode);
  if (!a)
    return a.error();
  note = a->fallback_note;
  if (auto st = bpf::pin_fd(a->link.get(), path); !st) {
    (void)bpf_link_detach(a->link.get());
    return st;
  }
  return {};
}

Status Balancer::detach(const std::string &iface) {
  std::string path = set_.path(link_pin(iface));
  if (auto link = bpf::open_pinned(path); link)
    (void)bpf_link_detach(link->get());
  return bpf::unpin(path);
}

std::vector<std::string> Balancer::attached() const {
  std::vector<std::string> out;
  std::error_code ec;
  for (const auto &e : std::filesystem::directory_iterator(set_.dir(), ec)) {
    std::string name = e.path().filename().string();
    if (name.rfind(BG_PIN_LB_LINK_PREFIX, 0) == 0)
      out.push_back(name.substr(std::string(BG_PIN_LB_LINK_PREFIX).size()));
  }
  std::sort(out.begin(), out.end());
  return out;
}

Status Balancer::remove() {
  uint32_t id = 0;
  if (auto prog = bpf::open_pinned(set_.path(BG_PIN_LB_PROG)); prog)
    if (auto i = bpf::prog_id_of(prog->get()); i)
      id = *i;
  if (id != 0)
    for (const auto &[iface, path] : filter_slots(bpffs_))
      take_from_filter(path, id);
  for (const auto &iface : attached())
    if (auto st = detach(iface); !st)
      log::warn("load balancer: detach from {}: {}", iface, st.error().what());
  return set_.remove();
}

}  // namespace bpfgate::agent::lb
