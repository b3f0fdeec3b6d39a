// bgcmp-mapstat DIR [MAP]: the memory of the BPF maps pinned in DIR (bpfgate's
// pin directory), from each map's fdinfo, and how many entries MAP holds
// (counted with batch lookups: bpftool's dump takes seconds for 64k entries).
// Prints one JSON object: {"maps","memlock","entries","max_entries","map_memlock"}.
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <dirent.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include <fmt/format.h>

namespace {

struct Info {
  uint64_t memlock = 0;
  uint32_t max_entries = 0, key_size = 0, value_size = 0, type = 0;
};

bool map_info(int fd, Info &out) {
  // Only a map's fdinfo has map_type; programs and links are skipped.
  bool is_map = false;
  std::ifstream f(fmt::format("/proc/self/fdinfo/{}", fd));
  for (std::string line; std::getline(f, line);) {
    if (line.rfind("map_type:", 0) == 0)
      is_map = true;
    if (line.rfind("memlock:", 0) == 0)
      out.memlock = std::stoull(line.substr(8));
  }
  if (!is_map)
    return false;
  bpf_map_info info{};
  uint32_t len = sizeof(info);
  if (bpf_obj_get_info_by_fd(fd, &info, &len) != 0)
    return false;
  out.max_entries = info.max_entries;
  out.key_size = info.key_size;
  out.value_size = info.value_size;
  out.type = info.type;
  return true;
}

// Entries of a hash-like map, by batches; falls back to get_next_key.
uint64_t count_entries(int fd, const Info &info) {
  const uint32_t batch = 4096;
  // Room for per-CPU values too: one 8-byte-aligned value per possible CPU.
  const size_t ncpu = static_cast<size_t>(std::max(1, libbpf_num_possible_cpus()));
  std::vector<char> keys(size_t{batch} * info.key_size),
      values(size_t{batch} * ((info.value_size + 7) / 8 * 8) * ncpu);
  uint64_t total = 0;
  std::vector<char> in(info.key_size + 8), out(info.key_size + 8);
  bool first = true;
  for (int round = 0; round < 1 << 20; round++) {
    uint32_t n = batch;
    int r = bpf_map_lookup_batch(fd, first ? nullptr : in.data(), out.data(), keys.data(),
                                 values.data(), &n, nullptr);
    if (r != 0 && errno != ENOENT) {
      if (!first || errno != EINVAL)
        break;
      // No batch support: walk the keys one by one.
      std::vector<char> k(info.key_size), next(info.key_size);
      const void *prev = nullptr;
      for (uint64_t i = 0; i < (uint64_t{1} << 32); i++) {
        if (bpf_map_get_next_key(fd, prev, next.data()) != 0)
          break;
        total++;
        k = next;
        prev = k.data();
      }
      return total;
    }
    total += n;
    if (r != 0)  // ENOENT: that was the last batch
      break;
    in = out;
    first = false;
  }
  return total;
}

}  // namespace

int main(int argc, char **argv) {
  if (argc < 2 || argc > 3) {
    fmt::print(stderr, "usage: bgcmp-mapstat PIN_DIR [MAP_NAME]\n");
    return 2;
  }
  std::string dir = argv[1];
  DIR *d = opendir(dir.c_str());
  if (!d) {
    fmt::print(stderr, "bgcmp-mapstat: {}: {}\n", dir, std::strerror(errno));
    return 1;
  }
  uint64_t maps = 0, memlock = 0, entries = 0;
  Info chosen;
  bool found = argc < 3;
  for (dirent *e = readdir(d); e; e = readdir(d)) {
    if (e->d_name[0] == '.')
      continue;
    int fd = bpf_obj_get((dir + "/" + e->d_name).c_str());
    if (fd < 0)
      continue;
    Info info;
    if (map_info(fd, info)) {
      maps++;
      memlock += info.memlock;
      if (argc == 3 && std::strcmp(e->d_name, argv[2]) == 0) {
        chosen = info;
        entries = count_entries(fd, info);
        found = true;
      }
    }
    close(fd);
  }
  closedir(d);
  if (!found) {
    fmt::print(stderr, "bgcmp-mapstat: no map '{}' in {}\n", argv[2], dir);
    return 1;
  }
  fmt::print(
      "{{\"maps\":{},\"memlock\":{},\"entries\":{},\"max_entries\":{},\"map_memlock\":{}}}\n", maps,
      memlock, entries, chosen.max_entries, chosen.memlock);
  return 0;
}
