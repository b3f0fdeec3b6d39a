#include "features/lb/maglev.hpp"

#include <algorithm>

namespace bpfgate::agent::lb {

namespace {

// FNV-1a 64 of the key from a seed, then a splitmix64 finaliser: two
// independent, well-spread hashes of short strings.
uint64_t hash_key(const std::string &key, uint64_t seed) {
  uint64_t h = 0xcbf29ce484222325ULL ^ seed;
  for (unsigned char c : key)
    h = (h ^ c) * 0x100000001b3ULL;
  h ^= h >> 30;
  h *= 0xbf58476d1ce4e5b9ULL;
  h ^= h >> 27;
  h *= 0x94d049bb133111ebULL;
  return h ^ (h >> 31);
}

struct Turn {
  uint32_t id, weight;
  uint64_t offset, skip, next = 0, credit = 0;
};

// Claims the backend's next preferred empty entry; false if the table is full.
bool claim(Turn &t, std::vector<uint32_t> &table, uint32_t m) {
  while (t.next < m) {
    uint64_t pos = (t.offset + t.next * t.skip) % m;
    t.next++;
    if (table[pos] == 0) {
      table[pos] = t.id;
      return true;
    }
  }
  return false;
}

}  // namespace

bool is_prime(uint64_t n) {
  if (n < 2)
    return false;
  for (uint64_t d = 2; d * d <= n; d++)
    if (n % d == 0)
      return false;
  return true;
}

uint64_t maglev_h1(const std::string &key) {
  return hash_key(key, 0x5bd1e995ULL);
}
uint64_t maglev_h2(const std::string &key) {
  return hash_key(key, 0x9e3779b97f4a7c15ULL);
}

std::vector<uint32_t> maglev_table(std::vector<MaglevBackend> backends, uint32_t m) {
  std::vector<uint32_t> table(m, 0);
  std::sort(backends.begin(), backends.end(),
            [](const auto &a, const auto &b) { return a.key < b.key; });
  std::vector<Turn> turns;
  uint32_t max_weight = 0;
  for (const auto &b : backends) {
    if (b.weight == 0 || b.id == 0 || m < 2)
      continue;
    turns.push_back({b.id, b.weight, maglev_h1(b.key) % m, maglev_h2(b.key) % (m - 1) + 1});
    max_weight = std::max(max_weight, b.weight);
  }
  if (turns.empty())
    return table;
  // Each entry is claimed once: m claims fill it (a permutation covers all of it).
  for (uint32_t filled = 0; filled < m;) {
    for (auto &t : turns) {
      t.credit += t.weight;
      while (t.credit >= max_weight && filled < m) {
        t.credit -= max_weight;
        if (claim(t, table, m))
          filled++;
      }
      if (filled == m)
        break;
    }
  }
  return table;
}

}  // namespace bpfgate::agent::lb
