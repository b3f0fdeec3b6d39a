// The Maglev lookup table (Eisenbud et al., NSDI 2016, section 3.4) with
// weights as Katran's second variant weighs it. Pure logic: no kernel.
//
// Each backend is named by a stable key (its "address:port"): its preference
// list is the permutation offset + j * skip (mod M), offset = h1(key) % M,
// skip = h2(key) % (M - 1) + 1, M prime, so it depends on the key alone and
// never changes when other backends come or go. The table is filled in rounds
// over the backends (sorted by key); each round a backend adds its weight to
// a credit and, for as long as the credit reaches the largest weight, spends
// that much to claim its next preferred empty entry. A backend of weight w
// thus takes w / max entries per round: shares follow the weights, a backend
// of weight 0 takes none.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace bpfgate::agent::lb {

struct MaglevBackend {
  std::string key;  // stable name: "198.18.2.2:8080", "[2001:db8::2]:80"
  uint32_t id = 0;  // what the table holds (never 0: 0 is "no backend")
  uint32_t weight = 0;
};

// Whether n is prime (table sizes must be).
bool is_prime(uint64_t n);

// The table of size m (prime, >= 2): m backend ids. All 0 when no backend
// has a weight.
std::vector<uint32_t> maglev_table(std::vector<MaglevBackend> backends, uint32_t m);

// The two hashes of a key (exposed for tests).
uint64_t maglev_h1(const std::string &key);
uint64_t maglev_h2(const std::string &key);

}  // namespace bpfgate::agent::lb
