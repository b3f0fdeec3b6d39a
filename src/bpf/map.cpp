#include "bpf/map.hpp"

#include <algorithm>
#include <cstring>

#include "bpf/pin.hpp"

namespace bpfgate::bpf {

Result<UniqueFd> open_pinned(const std::string &path) {
  if (auto st = check_pin_owner(path); !st)
    return st.error();
  int fd = bpf_obj_get(path.c_str());
  if (fd < 0)
    return libbpf_error(fd, "open pinned object " + path);
  return UniqueFd(fd);
}

Result<MapInfo> map_info(int fd) {
  bpf_map_info info{};
  uint32_t len = sizeof(info);
  int err = bpf_obj_get_info_by_fd(fd, &info, &len);
  if (err)
    return libbpf_error(err, "read map info");
  return MapInfo{info.id, info.type, info.key_size, info.value_size, info.max_entries, info.name};
}

Result<LinkInfo> link_info(int link_fd) {
  bpf_link_info info{};
  uint32_t len = sizeof(info);
  if (int err = bpf_obj_get_info_by_fd(link_fd, &info, &len))
    return libbpf_error(err, "read link info");
  LinkInfo out{info.id, info.prog_id, 0, 0};
  if (info.type == BPF_LINK_TYPE_XDP)
    out.ifindex = info.xdp.ifindex;
  else if (info.type == BPF_LINK_TYPE_CGROUP)
    out.cgroup_id = info.cgroup.cgroup_id;
  return out;
}

Result<uint32_t> prog_id_of(int prog_fd) {
  bpf_prog_info info{};
  uint32_t len = sizeof(info);
  if (int err = bpf_obj_get_info_by_fd(prog_fd, &info, &len))
    return libbpf_error(err, "read program info");
  return info.id;
}

int possible_cpus() {
  static const int n = libbpf_num_possible_cpus();
  return n > 0 ? n : 1;
}

namespace raw {

Result<bool> lookup(int fd, const void *key, void *value) {
  int err = bpf_map_lookup_elem(fd, key, value);
  if (err == 0)
    return true;
  if (errno == ENOENT)
    return false;
  return libbpf_error(err, "map lookup");
}

Status update(int fd, const void *key, const void *value, uint64_t flags) {
  int err = bpf_map_update_elem(fd, key, value, flags);
  if (err)
    return libbpf_error(err, "map update");
  return {};
}

Result<bool> erase(int fd, const void *key) {
  int err = bpf_map_delete_elem(fd, key);
  if (err == 0)
    return true;
  if (errno == ENOENT)
    return false;
  return libbpf_error(err, "map delete");
}

namespace {
// Room for a batch lookup's token, which the kernel writes whole: at least 8
// bytes, or a key (before, an 8-byte token took an array's key and the bytes
// after it on the stack once a read needed a second batch).
class BatchToken {
 public:
  explicit BatchToken(size_t key_size) : bytes_(std::max<size_t>(8, key_size)) {}
  void *data() { return bytes_.data(); }

 private:
  std::vector<uint8_t> bytes_;
};

// Entries read per batch by dump().
constexpr size_t kDumpBatch = 16384;

// Walks with get_next_key: for map types or kernels without batch ops.
Status dump_by_iteration(int fd, size_t key_size, size_t value_size, std::vector<uint8_t> &keys,
                         std::vector<uint8_t> &values, size_t &count) {
  std::vector<uint8_t> cur(key_size), next(key_size), val(value_size);
  count = 0;
  keys.clear();
  values.clear();
  const void *prev = nullptr;
  while (bpf_map_get_next_key(fd, prev, next.data()) == 0) {
    if (bpf_map_lookup_elem(fd, next.data(), val.data()) == 0) {
      keys.insert(keys.end(), next.begin(), next.end());
      values.insert(values.end(), val.begin(), val.end());
      count++;
    }
    cur.swap(next);
    prev = cur.data();
  }
  if (errno != ENOENT)
    return libbpf_error(-errno, "map iteration");
  return {};
}
}  // namespace

Status dump(int fd, size_t key_size, size_t value_size, std::vector<uint8_t> &keys,
            std::vector<uint8_t> &values, size_t &count) {
  auto info = map_info(fd);
  if (!info)
    return info.error();
  size_t cap = info->max_entries ? info->max_entries : 1;
  // Read in batches of kDumpBatch entries, the buffers grown to what the map
  // holds: sized by max_entries they took 13.6 MB for a blocklist of 40 (a
  // copy at every sweep and scrape, kept by the allocator after the first).
  size_t batch = std::min(cap, kDumpBatch);
  keys.clear();
  values.clear();
  count = 0;
  // The batch token: a hash map's bucket cursor (4 bytes), or a key for the
  // maps of the kernel's generic batch code (arrays).
  BatchToken in_batch(key_size), out_batch(key_size);
  bool first = true;
  LIBBPF_OPTS(bpf_map_batch_opts, opts);
  while (count < cap) {
    uint32_t n = static_cast<uint32_t>(std::min(batch, cap - count));
    keys.resize((count + n) * key_size);
    values.resize((count + n) * value_size);
    int err = bpf_map_lookup_batch(fd, first ? nullptr : in_batch.data(), out_batch.data(),
                                   keys.data() + count * key_size,
                                   values.data() + count * value_size, &n, &opts);
    int e = err ? errno : 0;
    if (err && e != ENOENT) {
      if (first && (e == EINVAL || e == EOPNOTSUPP || e == 524))
        return dump_by_iteration(fd, key_size, value_size, keys, values, count);
      if (e == ENOSPC && batch < cap - count) {
        batch *= 2;  // one hash bucket holds more than a batch: nothing was read, read more
        continue;
      }
      if (e == ENOSPC)
        break;  // entries were added while we read: keep what we have
      return libbpf_error(-e, "map batch lookup");
    }
    count += n;
    if (e == ENOENT)
      break;
    in_batch = out_batch;
    first = false;
  }
  keys.resize(count * key_size);
  values.resize(count * value_size);
  return {};
}

Result<size_t> count(int fd, size_t key_size, size_t value_size) {
  // Batches of a fixed size, read and forgotten: memory stays small however
  // large the table (a hash bucket never holds anywhere near kChunk entries).
  constexpr uint32_t kChunk = 1024;
  std::vector<uint8_t> keys(kChunk * key_size), values(kChunk * value_size);
  size_t total = 0;
  BatchToken in_batch(key_size), out_batch(key_size);
  bool first = true;
  LIBBPF_OPTS(bpf_map_batch_opts, opts);
  for (;;) {
    uint32_t n = kChunk;
    int err = bpf_map_lookup_batch(fd, first ? nullptr : in_batch.data(), out_batch.data(),
                                   keys.data(), values.data(), &n, &opts);
    int e = err ? errno : 0;
    if (err && e != ENOENT) {
      if (first && (e == EINVAL || e == EOPNOTSUPP || e == 524))
        break;  // no batch operations: walk the keys below
      return libbpf_error(-e, "map batch lookup");
    }
    total += n;
    if (e == ENOENT)
      return total;
    in_batch = out_batch;
    first = false;
  }
  std::vector<uint8_t> cur(key_size), next(key_size);
  total = 0;
  for (const void *prev = nullptr; bpf_map_get_next_key(fd, prev, next.data()) == 0;
       prev = cur.data()) {
    total++;
    cur.swap(next);
  }
  if (errno != ENOENT)
    return libbpf_error(-errno, "map iteration");
  return total;
}

Result<size_t> erase_batch(int fd, const void *keys, size_t key_size, size_t count) {
  // The kernel stops a batch at the first key it cannot delete (one the
  // datapath or an LRU eviction removed meanwhile): skip it and go on.
  auto *k = static_cast<const uint8_t *>(keys);
  size_t done = 0, deleted = 0;
  LIBBPF_OPTS(bpf_map_batch_opts, opts);
  while (done < count) {
    uint32_t n = static_cast<uint32_t>(count - done);
    int err = bpf_map_delete_batch(fd, k + done * key_size, &n, &opts);
    deleted += n;
    done += n;
    if (!err)
      break;
    if (errno == ENOENT) {
      done++;  // the key that was already gone
      continue;
    }
    if (errno == EINVAL || errno == EOPNOTSUPP) {  // no batch ops: one by one
      for (; done < count; done++)
        if (bpf_map_delete_elem(fd, k + done * key_size) == 0)
          deleted++;
      break;
    }
    return libbpf_error(err, "map batch delete");
  }
  return deleted;
}

}  // namespace raw
Status check_map_sizes(int fd, const std::string &what, uint32_t key_size, uint32_t value_size) {
  auto info = map_info(fd);
  if (!info)
    return info.error();
  if (info->key_size != key_size || info->value_size != value_size)
    return make_error(EPROTO,
                      "map {} has key/value size {}/{}, expected {}/{}: built by another "
                      "version of bpfgate?",
                      what, info->key_size, info->value_size, key_size, value_size);
  return {};
}

Result<UniqueFd> open_pinned_map(const std::string &path, uint32_t key_size, uint32_t value_size) {
  auto fd = open_pinned(path);
  if (!fd)
    return fd.error();
  if (auto st = check_map_sizes(fd->get(), path, key_size, value_size); !st)
    return st.error();
  return fd;
}

}  // namespace bpfgate::bpf
