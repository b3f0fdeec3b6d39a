// What every libFuzzer target (tests/fuzz/) does when an invariant breaks:
// say which on stderr and abort, so that libFuzzer keeps the input. Header
// only: the fuzz targets link just the libraries they test, built with the
// sanitizers, not bpfgate_test_support (GoogleTest, the agent).
#pragma once

#include <cstdio>
#include <cstdlib>

namespace bpfgate::fuzz {

inline void check(bool ok, const char *what) {
  if (!ok) {
    std::fprintf(stderr, "invariant broken: %s\n", what);
    std::abort();
  }
}

}  // namespace bpfgate::fuzz
