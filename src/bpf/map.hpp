// Typed access to BPF maps by fd: Map<K,V> and PerCpuMap<K,V>. A map is owned
// (opened from a pin) or borrowed (from a loaded skeleton, which owns it).
#pragma once

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include <cstring>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "bpf/error.hpp"
#include "bpf/fd.hpp"
#include "util/result.hpp"

namespace bpfgate::bpf {

// Opens a pinned object (map, program or link) by path; refuses one that is
// not owned by us or that others may read or write (bpf::check_pin_owner).
Result<UniqueFd> open_pinned(const std::string &path);

struct MapInfo {
  uint32_t id = 0;
  uint32_t type = 0;
  uint32_t key_size = 0;
  uint32_t value_size = 0;
  uint32_t max_entries = 0;
  std::string name;
};
Result<MapInfo> map_info(int fd);

// What a pinned or loaded link or program is: the one look-up of their ids.
struct LinkInfo {
  uint32_t id = 0;
  uint32_t prog_id = 0;
  uint32_t ifindex = 0;    // an XDP link's interface (0: it went away, a defunct link)
  uint64_t cgroup_id = 0;  // a cgroup link's cgroup
};
Result<LinkInfo> link_info(int link_fd);
Result<uint32_t> prog_id_of(int prog_fd);

// Untyped operations, shared by the typed wrappers below.
namespace raw {
Result<bool> lookup(int fd, const void *key, void *value);  // false: no such key
Status update(int fd, const void *key, const void *value, uint64_t flags);
Result<bool> erase(int fd, const void *key);  // false: no such key
// Reads every entry; uses batch lookup where the kernel has it. value_size is
// the full per-entry size (for per-CPU maps: the rounded size times CPUs).
Status dump(int fd, size_t key_size, size_t value_size, std::vector<uint8_t> &keys,
            std::vector<uint8_t> &values, size_t &count);
Result<size_t> erase_batch(int fd, const void *keys, size_t key_size, size_t count);
// The number of entries, read in batches of fixed size (one walk of the map,
// little memory); entries added or removed meanwhile may or may not count.
Result<size_t> count(int fd, size_t key_size, size_t value_size);
}  // namespace raw

int possible_cpus();

// A map's key and value sizes checked against what this build expects (EPROTO:
// a map made by another version of bpfgate); a pinned map opened so checked.
Status check_map_sizes(int fd, const std::string &what, uint32_t key_size, uint32_t value_size);
Result<UniqueFd> open_pinned_map(const std::string &path, uint32_t key_size, uint32_t value_size);

template <class K, class V>
class Map {
 public:
  explicit Map(int borrowed_fd) : fd_(borrowed_fd) {}
  explicit Map(UniqueFd owned) : owned_(std::move(owned)), fd_(owned_.get()) {}
  Map(Map &&o) noexcept : owned_(std::move(o.owned_)), fd_(o.fd_) {}
  Map &operator=(Map &&o) noexcept {
    owned_ = std::move(o.owned_);
    fd_ = o.fd_;
    return *this;
  }

  static Result<Map> open_pinned(const std::string &path) {
    auto fd = open_pinned_map(path, sizeof(K), sizeof(V));
    if (!fd)
      return fd.error();
    return Map(std::move(*fd));
  }

  int fd() const { return fd_; }

  Result<std::optional<V>> lookup(const K &key) const {
    V v{};
    auto found = raw::lookup(fd_, &key, &v);
    if (!found)
      return found.error();
    if (!*found)
      return std::optional<V>();
    return std::optional<V>(v);
  }
  Status update(const K &key, const V &value, uint64_t flags = BPF_ANY) {
    return raw::update(fd_, &key, &value, flags);
  }
  Result<bool> erase(const K &key) { return raw::erase(fd_, &key); }
  Result<size_t> erase_batch(const std::vector<K> &keys) {
    return raw::erase_batch(fd_, keys.data(), sizeof(K), keys.size());
  }

  Result<size_t> count() const { return raw::count(fd_, sizeof(K), sizeof(V)); }

  Result<std::vector<std::pair<K, V>>> dump() const {
    std::vector<uint8_t> kb, vb;
    size_t n = 0;
    auto st = raw::dump(fd_, sizeof(K), sizeof(V), kb, vb, n);
    if (!st)
      return st.error();
    std::vector<std::pair<K, V>> out(n);
    for (size_t i = 0; i < n; i++) {
      std::memcpy(&out[i].first, kb.data() + i * sizeof(K), sizeof(K));
      std::memcpy(&out[i].second, vb.data() + i * sizeof(V), sizeof(V));
    }
    return out;
  }

 private:
  UniqueFd owned_;
  int fd_;
};

// A per-CPU map: each lookup returns one value per possible CPU.
template <class K, class V>
class PerCpuMap {
  static_assert(sizeof(V) % 8 == 0, "per-CPU values are laid out in 8-byte slots");

 public:
  explicit PerCpuMap(int borrowed_fd) : fd_(borrowed_fd), ncpu_(possible_cpus()) {}
  explicit PerCpuMap(UniqueFd owned)
      : owned_(std::move(owned)), fd_(owned_.get()), ncpu_(possible_cpus()) {}

  static Result<PerCpuMap> open_pinned(const std::string &path) {
    auto fd = open_pinned_map(path, sizeof(K), sizeof(V));
    if (!fd)
      return fd.error();
    return PerCpuMap(std::move(*fd));
  }

  int fd() const { return fd_; }
  int cpus() const { return ncpu_; }

  Result<std::vector<V>> lookup(const K &key) const {
    std::vector<V> v(ncpu_);
    auto found = raw::lookup(fd_, &key, v.data());
    if (!found)
      return found.error();
    if (!*found)
      v.clear();
    return v;
  }
  Status update_all(const K &key, const V &value) {
    std::vector<V> v(ncpu_, value);
    return raw::update(fd_, &key, v.data(), BPF_ANY);
  }
  // One value per possible CPU, in the order lookup() returns them.
  Status update(const K &key, const std::vector<V> &per_cpu) {
    if (per_cpu.size() != static_cast<size_t>(ncpu_))
      return Error(EINVAL, "per-CPU update: one value per possible CPU is needed");
    return raw::update(fd_, &key, per_cpu.data(), BPF_ANY);
  }

 private:
  UniqueFd owned_;
  int fd_;
  int ncpu_;
};

}  // namespace bpfgate::bpf
