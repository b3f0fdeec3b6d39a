#include "core/schema.hpp"

#include <yaml-cpp/yaml.h>

#include <algorithm>

#include <fmt/format.h>

#include "core/duration.hpp"
#include "core/input_guard.hpp"

namespace bpfgate::core {

// ---- Diag ----

void Diag::at(int line, const std::string &msg) {
  in_file(path_, line, msg);
}

void Diag::at(const YAML::Node &n, const std::string &msg) {
  at(line_of(n), msg);
}

void Diag::in_file(const std::string &file, int line, const std::string &msg) {
  errors_.push_back(fmt::format("{}:{}: {}", excerpt(file, 200), line, excerpt(msg, 400)));
}

Error Diag::error() const {
  std::string all;
  for (const auto &e : errors_)
    all += (all.empty() ? "" : "\n") + e;
  return Error(EINVAL, fmt::format("{} error{} in {}; nothing was applied:\n{}", errors_.size(),
                                   errors_.size() == 1 ? "" : "s", path_, all));
}

int line_of(const YAML::Node &n) {
  return n.Mark().line + 1;
}

// ---- reads of one value ----

std::optional<std::string> read_scalar(Diag &d, const YAML::Node &n, std::string_view what) {
  if (!n.IsScalar()) {
    d.at(n, fmt::format("{} must be a single value", what));
    return std::nullopt;
  }
  return n.Scalar();
}

std::optional<uint64_t> read_number(Diag &d, const YAML::Node &n, std::string_view what,
                                    uint64_t lo, uint64_t hi) {
  auto s = read_scalar(d, n, what);
  if (!s)
    return std::nullopt;
  auto v = parse_whole(*s);
  if (!v) {
    d.at(n, fmt::format("{} '{}' is not a whole number", what, *s));
    return std::nullopt;
  }
  if (*v < lo || *v > hi) {
    d.at(n, fmt::format("{} {} is out of range: give {} to {}", what, *v, lo, hi));
    return std::nullopt;
  }
  return v;
}

std::optional<bool> read_bool(Diag &d, const YAML::Node &n, std::string_view what) {
  auto s = read_scalar(d, n, what);
  if (!s)
    return std::nullopt;
  if (*s == "true" || *s == "yes")
    return true;
  if (*s == "false" || *s == "no")
    return false;
  d.at(n, fmt::format("{} must be true or false, not '{}'", what, *s));
  return std::nullopt;
}

std::optional<bool> read_on_off(Diag &d, const YAML::Node &n, std::string_view what) {
  auto s = read_scalar(d, n, what);
  if (!s)
    return std::nullopt;
  if (auto v = parse_switch(*s))
    return v;
  d.at(n, fmt::format("{} must be on or off, not '{}'", what, excerpt(*s)));
  return std::nullopt;
}

std::optional<uint64_t> read_duration_ns(Diag &d, const YAML::Node &n, std::string_view what) {
  auto s = read_scalar(d, n, what);
  if (!s)
    return std::nullopt;
  auto v = parse_duration_ns(*s);
  if (!v) {
    d.at(n, fmt::format("{}: {}", what, v.error().message()));
    return std::nullopt;
  }
  return *v;
}

std::optional<uint64_t> read_rate_bps(Diag &d, const YAML::Node &n, std::string_view what) {
  auto s = read_scalar(d, n, what);
  if (!s)
    return std::nullopt;
  auto r = parse_rate_bps(*s);
  if (!r) {
    d.at(n, r.error().message());
    return std::nullopt;
  }
  return *r;
}

std::optional<uint64_t> read_size_bytes(Diag &d, const YAML::Node &n, std::string_view what,
                                        uint64_t lo, uint64_t hi) {
  auto s = read_scalar(d, n, what);
  if (!s)
    return std::nullopt;
  auto b = parse_size_bytes(*s);
  if (!b) {
    d.at(n, b.error().message());
    return std::nullopt;
  }
  if (*b < lo || *b > hi) {
    d.at(n, fmt::format("{} {} bytes is out of range: give {} to {} bytes", what, *b, lo, hi));
    return std::nullopt;
  }
  return *b;
}

std::optional<std::string> read_choice(Diag &d, const YAML::Node &n, std::string_view what,
                                       std::initializer_list<std::string_view> names,
                                       std::string_view hint) {
  auto s = read_scalar(d, n, what);
  if (!s)
    return std::nullopt;
  if (std::find(names.begin(), names.end(), *s) != names.end())
    return s;
  std::string list(hint);
  if (list.empty()) {
    size_t i = 0;
    for (auto name : names)
      list += fmt::format("{}{}", i++ == 0 ? "" : i == names.size() ? " or " : ", ", name);
  }
  d.at(n, fmt::format("{} '{}' is unknown: use {}", what, *s, list));
  return std::nullopt;
}

std::optional<PortRange> read_port_range(Diag &d, const YAML::Node &n, std::string_view what) {
  auto s = read_scalar(d, n, what);
  if (!s)
    return std::nullopt;
  auto r = parse_port_range(*s);
  if (!r || r->lo > r->hi) {
    d.at(n, fmt::format("{} '{}' must be a port N or a range N-M with 0 <= N <= M <= 65535", what,
                        *s));
    return std::nullopt;
  }
  return r;
}

std::optional<uint8_t> read_protocol(Diag &d, const YAML::Node &n) {
  auto s = read_scalar(d, n, "protocol");
  if (!s)
    return std::nullopt;
  auto p = parse_protocol(*s);
  if (!p)
    d.at(n, fmt::format("protocol '{}' is unknown: use {} or a number 0-255", *s, kProtocolNames));
  return p;
}

std::optional<Prefix> read_prefix(Diag &d, const YAML::Node &n, std::string_view what) {
  auto s = read_scalar(d, n, what);
  if (!s)
    return std::nullopt;
  auto p = parse_prefix(*s);
  if (!p) {
    d.at(n, fmt::format("bad CIDR in {}: {}", what, p.error().message()));
    return std::nullopt;
  }
  return *p;
}

// ---- Section ----

Section::Section(Diag &d, const YAML::Node &n, std::string_view what,
                 std::initializer_list<const char *> keys)
    : d_(d), node_(n) {
  if (!n.IsMap()) {
    d.at(n, fmt::format("{} must be a mapping of keys to values", what));
    return;
  }
  map_ = true;
  for (const auto &kv : n) {
    std::string k = kv.first.as<std::string>();
    if (std::none_of(keys.begin(), keys.end(), [&](const char *x) { return k == x; })) {
      std::string list;
      for (const char *x : keys)
        list += (list.empty() ? "" : ", ") + std::string(x);
      d.at(kv.first, fmt::format("unknown key '{}' in {} (known: {})", k, what, list));
      unknown_++;
    }
  }
}

bool Section::text(const char *key, std::string &out, const char *what) const {
  return set(key, out, [&](const YAML::Node &n) { return read_scalar(d_, n, name(key, what)); });
}

bool Section::boolean(const char *key, bool &out, const char *what) const {
  return set(key, out, [&](const YAML::Node &n) { return read_bool(d_, n, name(key, what)); });
}

bool Section::on_off(const char *key, bool &out, const char *what) const {
  return set(key, out, [&](const YAML::Node &n) { return read_on_off(d_, n, name(key, what)); });
}

bool Section::duration_ns(const char *key, uint64_t &out, const char *what) const {
  return set(key, out,
             [&](const YAML::Node &n) { return read_duration_ns(d_, n, name(key, what)); });
}

bool Section::rate_bps(const char *key, uint64_t &out, const char *what) const {
  return set(key, out, [&](const YAML::Node &n) { return read_rate_bps(d_, n, name(key, what)); });
}

bool Section::choice(const char *key, std::string &out,
                     std::initializer_list<std::string_view> names, const char *what) const {
  return set(key, out,
             [&](const YAML::Node &n) { return read_choice(d_, n, name(key, what), names); });
}

}  // namespace bpfgate::core
