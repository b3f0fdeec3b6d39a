// A minimal leveled logger writing to stderr. libbpf's own log is routed here
// (src/bpf/error.cpp), at debug level unless it is a warning.
#pragma once

#include <string_view>

#include <fmt/format.h>

namespace bpfgate::log {

enum class Level { kDebug = 0, kInfo = 1, kWarn = 2, kError = 3 };

void set_level(Level level);
Level level();
void write(Level level, std::string_view message);

template <class... Args>
void debug(fmt::format_string<Args...> f, Args &&...args) {
  if (level() <= Level::kDebug)
    write(Level::kDebug, fmt::format(f, std::forward<Args>(args)...));
}
template <class... Args>
void info(fmt::format_string<Args...> f, Args &&...args) {
  if (level() <= Level::kInfo)
    write(Level::kInfo, fmt::format(f, std::forward<Args>(args)...));
}
template <class... Args>
void warn(fmt::format_string<Args...> f, Args &&...args) {
  if (level() <= Level::kWarn)
    write(Level::kWarn, fmt::format(f, std::forward<Args>(args)...));
}
template <class... Args>
void error(fmt::format_string<Args...> f, Args &&...args) {
  write(Level::kError, fmt::format(f, std::forward<Args>(args)...));
}

}  // namespace bpfgate::log
