#include "features/fleet/origins.hpp"

#include <bpf/bpf.h>

#include <cstring>

#include "bpf/pin.hpp"
#include "bpfgate/abi/xdp.h"

namespace bpfgate::fleet {

std::string origins_path(const std::string &bpffs, const std::string &node) {
  return bpf::pin_path(bpf::feature_dir(bpffs, BG_PIN_FLEET_DIR, node), BG_PIN_FLEET_ORIGINS);
}

Result<OriginMap> open_or_create_origins(const std::string &bpffs, const std::string &node) {
  std::string path = origins_path(bpffs, node);
  if (bpf::exists(path))
    return OriginMap::open_pinned(path);
  if (auto st = bpf::make_private_dir(bpf::feature_dir(bpffs, BG_PIN_FLEET_DIR, node)); !st)
    return st.error();
  LIBBPF_OPTS(bpf_map_create_opts, opts, .map_flags = BPF_F_NO_PREALLOC);
  int fd = bpf_map_create(BPF_MAP_TYPE_HASH, "bg_fleet_orig", sizeof(bg_lpm_key),
                          sizeof(bg_fleet_origin), BG_BLOCKLIST_MAX, &opts);
  if (fd < 0)
    return Error(errno, "create the fleet's origins map");
  bpf::UniqueFd owned(fd);
  if (auto st = bpf::pin_fd(fd, path); !st)
    return st.error();
  return OriginMap(std::move(owned));
}

std::vector<OriginMap> open_origins(const std::string &bpffs) {
  std::vector<OriginMap> out;
  auto nodes = bpf::pinned_dirs(bpf::feature_dir(bpffs, BG_PIN_FLEET_DIR));
  if (!nodes)
    return out;
  for (const auto &n : *nodes)
    if (auto m = OriginMap::open_pinned(origins_path(bpffs, n)))
      out.push_back(std::move(*m));
  return out;
}

std::string origin_of(const std::vector<OriginMap> &maps, const core::Prefix &p) {
  for (const auto &m : maps) {
    auto v = m.lookup(p.key);
    if (v && *v)
      return std::string((*v)->node, strnlen((*v)->node, sizeof((*v)->node)));
  }
  return "";
}

bg_fleet_origin make_origin(const std::string &node, double at_s, int64_t expires) {
  bg_fleet_origin o{};
  std::strncpy(o.node, node.c_str(), sizeof(o.node) - 1);
  o.at_ms = static_cast<uint64_t>(at_s * 1000);
  o.expires = expires;
  return o;
}

}  // namespace bpfgate::fleet
