#include "util/log.hpp"

#include <atomic>
#include <cstdio>

namespace bpfgate::log {

namespace {
std::atomic<Level> g_level{Level::kInfo};
}

void set_level(Level l) {
  g_level = l;
}
Level level() {
  return g_level;
}

void write(Level l, std::string_view message) {
  static constexpr const char *kPrefix[] = {"debug: ", "", "warning: ", "error: "};
  fmt::print(stderr, "{}{}\n", kPrefix[static_cast<int>(l)], message);
}

}  // namespace bpfgate::log
