#include "support/prometheus_parse.hpp"

#include <cerrno>
#include <cstdlib>
#include <limits>

namespace bpfgate::test::prom {

namespace {

bool name_char(char c, bool first) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':' ||
         (!first && c >= '0' && c <= '9');
}

Result<Sample> parse_sample(std::string_view line, int lineno) {
  auto bad = [&](const char *why) {
    return make_error(EINVAL, "line {}: {}: {}", lineno, why, std::string(line));
  };
  Sample s;
  size_t i = 0;
  while (i < line.size() && name_char(line[i], i == 0))
    i++;
  if (i == 0)
    return bad("no metric name");
  s.name = std::string(line.substr(0, i));
  if (i < line.size() && line[i] == '{') {
    i++;
    while (i < line.size() && line[i] != '}') {
      size_t k = i;
      while (i < line.size() && name_char(line[i], i == k))
        i++;
      if (i == k || i + 1 >= line.size() || line[i] != '=' || line[i + 1] != '"')
        return bad("malformed label");
      std::string key(line.substr(k, i - k));
      i += 2;
      std::string val;
      for (; i < line.size() && line[i] != '"'; i++) {
        if (line[i] == '\\' && i + 1 < line.size()) {
          char n = line[++i];
          val += n == 'n' ? '\n' : n;
        } else {
          val += line[i];
        }
      }
      if (i >= line.size())
        return bad("unterminated label value");
      i++;
      s.labels[key] = val;
      if (i < line.size() && line[i] == ',')
        i++;
    }
    if (i >= line.size())
      return bad("unterminated label set");
    i++;
  }
  if (i >= line.size() || line[i] != ' ')
    return bad("no value");
  std::string rest(line.substr(i + 1));
  auto sp = rest.find(' ');  // an optional timestamp follows
  std::string v = rest.substr(0, sp);
  if (v == "+Inf")
    s.value = std::numeric_limits<double>::infinity();
  else if (v == "-Inf")
    s.value = -std::numeric_limits<double>::infinity();
  else if (v == "NaN")
    s.value = std::numeric_limits<double>::quiet_NaN();
  else {
    char *end = nullptr;
    s.value = std::strtod(v.c_str(), &end);
    if (v.empty() || *end)
      return bad("value is not a number");
  }
  return s;
}

bool matches(const Sample &s, const Labels &match) {
  for (const auto &[k, v] : match) {
    auto it = s.labels.find(k);
    if (it == s.labels.end() || it->second != v)
      return false;
  }
  return true;
}

}  // namespace

Result<Parsed> parse(std::string_view text) {
  Parsed p;
  int lineno = 0;
  while (!text.empty()) {
    auto nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text = nl == std::string_view::npos ? std::string_view() : text.substr(nl + 1);
    lineno++;
    if (line.empty())
      continue;
    if (line[0] == '#') {
      if (line.rfind("# TYPE ", 0) == 0) {
        std::string_view rest = line.substr(7);
        auto sp = rest.find(' ');
        if (sp == std::string_view::npos)
          return make_error(EINVAL, "line {}: malformed TYPE", lineno);
        p.types[std::string(rest.substr(0, sp))] = std::string(rest.substr(sp + 1));
      }
      continue;
    }
    auto s = parse_sample(line, lineno);
    if (!s)
      return s.error();
    p.samples.push_back(std::move(*s));
  }
  return p;
}

double value_of(const Parsed &p, std::string_view name, const Labels &match) {
  for (const auto &s : p.samples)
    if (s.name == name && matches(s, match))
      return s.value;
  return std::numeric_limits<double>::quiet_NaN();
}

double sum_of(const Parsed &p, std::string_view name, const Labels &match) {
  double sum = 0;
  for (const auto &s : p.samples)
    if (s.name == name && matches(s, match))
      sum += s.value;
  return sum;
}

}  // namespace bpfgate::test::prom
