#include "features/fleet/origins.hpp"

#include <bpf/bpf.h>

#include <cstring>

#include <fmt/format.h>

#include "bpf/pin.hpp"
#include "bpfgate/abi/xdp.h"

namespace bpfgate::fleet {

std::string origins_path(const std::string &bpffs, const std::string &node) {
  return bpf::pin_path(bpf::feature_dir(bpffs, BG_PIN_FLEET_DIR, node), BG_PIN_FLEET_ORIGINS);
}

namespace {

// A hash map of the fleet's pinned at `name` in the node's directory, made
// when absent.
template <typename M>
Result<M> open_or_create(const std::string &bpffs, const std::string &node, const char *name,
                         const char *map_name, uint32_t key_size, uint32_t max_entries,
                         bool &created) {
  std::string path = bpf::pin_path(bpf::feature_dir(bpffs, BG_PIN_FLEET_DIR, node), name);
  created = false;
  if (bpf::exists(path))
    return M::open_pinned(path);
  if (auto st = bpf::make_private_dir(bpf::feature_dir(bpffs, BG_PIN_FLEET_DIR, node)); !st)
    return st.error();
  LIBBPF_OPTS(bpf_map_create_opts, opts, .map_flags = BPF_F_NO_PREALLOC);
  int fd = bpf_map_create(BPF_MAP_TYPE_HASH, map_name, key_size, sizeof(bg_fleet_origin),
                          max_entries, &opts);
  if (fd < 0)
    return Error(errno, fmt::format("create the fleet's {} map", name));
  bpf::UniqueFd owned(fd);
  if (auto st = bpf::pin_fd(fd, path); !st)
    return st.error();
  created = true;
  return M(std::move(owned));
}

}  // namespace

Result<OriginMap> open_or_create_origins(const std::string &bpffs, const std::string &node) {
  bool created;
  return open_or_create<OriginMap>(bpffs, node, BG_PIN_FLEET_ORIGINS, "bg_fleet_orig",
                                   sizeof(bg_lpm_key), BG_BLOCKLIST_MAX, created);
}

Result<KeyMap> open_or_create_keys(const std::string &bpffs, const std::string &node,
                                   bool &created) {
  return open_or_create<KeyMap>(bpffs, node, BG_PIN_FLEET_KEYS, "bg_fleet_keys",
                                sizeof(bg_fleet_key), BG_FLEET_KEYS_MAX, created);
}

bg_fleet_key make_fleet_key(const core::Prefix &p, const std::string &node) {
  bg_fleet_key k{};
  k.prefixlen = p.key.prefixlen;
  std::memcpy(k.addr, p.key.addr, sizeof(k.addr));
  std::strncpy(k.node, node.c_str(), sizeof(k.node) - 1);
  return k;
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
