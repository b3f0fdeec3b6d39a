// The one idiom every section of the config is read in (core/config.cpp and
// each feature's features/<name>/<name>_config.cpp):
// - Diag collects every problem as "FILE:LINE: reason"; a config with any is
//   refused whole;
// - Section declares a mapping's keys once, reports the unknown ones, and reads
//   each value by type (number in a range, on/off, duration, rate, size, one of
//   a few names), naming the setting and its line in every message;
// - the value parsers are each defined once: ports, protocols, rates and sizes
//   in core/values.hpp, durations and switches in core/duration.hpp, prefixes
//   in core/cidr.hpp.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include <yaml-cpp/node/node.h>

#include "core/cidr.hpp"
#include "core/values.hpp"
#include "util/result.hpp"

namespace bpfgate::core {

// ---- problems, each with its file and line ----

class Diag {
 public:
  explicit Diag(std::string path) : path_(std::move(path)) {}
  void at(int line, const std::string &msg);
  void at(const YAML::Node &n, const std::string &msg);
  // A problem in another file (an allow_file's line).
  void in_file(const std::string &file, int line, const std::string &msg);
  bool ok() const { return errors_.empty(); }
  size_t count() const { return errors_.size(); }
  // "N errors in FILE; nothing was applied:" and each problem on a line.
  Error error() const;
  const std::string &path() const { return path_; }

 private:
  std::string path_;
  std::vector<std::string> errors_;
};

int line_of(const YAML::Node &n);

// ---- reads of one value; each reports what is wrong and returns nullopt ----

// `what` names the setting in messages.
std::optional<std::string> read_scalar(Diag &d, const YAML::Node &n, std::string_view what);
std::optional<uint64_t> read_number(Diag &d, const YAML::Node &n, std::string_view what,
                                    uint64_t lo, uint64_t hi);
// true/yes or false/no.
std::optional<bool> read_bool(Diag &d, const YAML::Node &n, std::string_view what);
// A switch: on (true, yes) or off (false, no).
std::optional<bool> read_on_off(Diag &d, const YAML::Node &n, std::string_view what);
std::optional<uint64_t> read_duration_ns(Diag &d, const YAML::Node &n, std::string_view what);
std::optional<uint64_t> read_rate_bps(Diag &d, const YAML::Node &n, std::string_view what);
// A size in bytes from lo to hi.
std::optional<uint64_t> read_size_bytes(Diag &d, const YAML::Node &n, std::string_view what,
                                        uint64_t lo, uint64_t hi);
// One of `names`: "WHAT 'x' is unknown: use a, b or c" (or `hint` after "use").
std::optional<std::string> read_choice(Diag &d, const YAML::Node &n, std::string_view what,
                                       std::initializer_list<std::string_view> names,
                                       std::string_view hint = {});
std::optional<PortRange> read_port_range(Diag &d, const YAML::Node &n, std::string_view what);
std::optional<uint8_t> read_protocol(Diag &d, const YAML::Node &n);
// "bad CIDR in WHAT: reason".
std::optional<Prefix> read_prefix(Diag &d, const YAML::Node &n, std::string_view what);

// ---- a mapping of the config, its keys declared once ----

class Section {
 public:
  // Reports a node that is no mapping, and each key not in `keys` (with the
  // known ones, in the order given). `what` names the section in messages.
  Section(Diag &d, const YAML::Node &n, std::string_view what,
          std::initializer_list<const char *> keys);
  // A mapping: its keys were checked and it can be read.
  explicit operator bool() const { return map_; }
  // A mapping with no unknown key.
  bool all_known() const { return map_ && unknown_ == 0; }
  bool has(const char *key) const { return map_ && node_[key]; }
  const YAML::Node operator[](const char *key) const { return node_[key]; }
  const YAML::Node &node() const { return node_; }
  int line() const { return line_of(node_); }
  Diag &diag() const { return d_; }

  // Typed reads of `key` when the section holds it: each reports what is
  // wrong (naming the setting `what`, or the key when not given) and sets
  // `out` only to a valid value. True when `out` was set.
  bool text(const char *key, std::string &out, const char *what = nullptr) const;
  template <class T>
  bool number(const char *key, T &out, uint64_t lo, uint64_t hi, const char *what = nullptr) const {
    return set(key, out,
               [&](const YAML::Node &n) { return read_number(d_, n, name(key, what), lo, hi); });
  }
  bool boolean(const char *key, bool &out, const char *what = nullptr) const;
  bool on_off(const char *key, bool &out, const char *what = nullptr) const;
  bool duration_ns(const char *key, uint64_t &out, const char *what = nullptr) const;
  bool rate_bps(const char *key, uint64_t &out, const char *what = nullptr) const;
  bool choice(const char *key, std::string &out, std::initializer_list<std::string_view> names,
              const char *what = nullptr) const;

 private:
  static std::string_view name(const char *key, const char *what) { return what ? what : key; }
  template <class T, class Read>
  bool set(const char *key, T &out, Read &&read) const {
    if (!has(key))
      return false;
    auto v = read(node_[key]);
    if (!v)
      return false;
    out = static_cast<T>(*v);
    return true;
  }

  Diag &d_;
  const YAML::Node node_;
  bool map_ = false;
  size_t unknown_ = 0;
};

}  // namespace bpfgate::core
