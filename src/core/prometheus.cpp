#include "core/prometheus.hpp"

#include <cmath>

#include <fmt/format.h>

namespace bpfgate::core::prom {

std::string escape_label_value(std::string_view v) {
  std::string out;
  out.reserve(v.size());
  for (char c : v) {
    if (c == '\\')
      out += "\\\\";
    else if (c == '"')
      out += "\\\"";
    else if (c == '\n')
      out += "\\n";
    else
      out += c;
  }
  return out;
}

std::string format_value(double v) {
  if (std::isnan(v))
    return "NaN";
  if (std::isinf(v))
    return v > 0 ? "+Inf" : "-Inf";
  if (v == std::floor(v) && std::fabs(v) < 1e15)
    return fmt::format("{}", static_cast<int64_t>(v));
  return fmt::format("{}", v);
}

namespace {
std::string labels_text(const Labels &labels) {
  if (labels.empty())
    return "";
  std::string s = "{";
  for (size_t i = 0; i < labels.size(); i++)
    s += fmt::format("{}{}=\"{}\"", i ? "," : "", labels[i].first,
                     escape_label_value(labels[i].second));
  return s + "}";
}
}  // namespace

void Writer::family(std::string_view name, std::string_view type, std::string_view help) {
  out_ += fmt::format("# HELP {} {}\n# TYPE {} {}\n", name, help, name, type);
}

void Writer::sample(std::string_view name, const Labels &labels, double value) {
  out_ += fmt::format("{}{} {}\n", name, labels_text(labels), format_value(value));
}

void Writer::histogram(std::string_view name, const Labels &labels,
                       const std::vector<double> &bounds, const std::vector<uint64_t> &counts,
                       double sum) {
  uint64_t cum = 0;
  std::string bucket = std::string(name) + "_bucket";
  for (size_t i = 0; i < bounds.size(); i++) {
    cum += i < counts.size() ? counts[i] : 0;
    Labels l = labels;
    l.emplace_back("le", format_value(bounds[i]));
    sample(bucket, l, static_cast<double>(cum));
  }
  for (size_t i = bounds.size(); i < counts.size(); i++)
    cum += counts[i];
  Labels inf = labels;
  inf.emplace_back("le", "+Inf");
  sample(bucket, inf, static_cast<double>(cum));
  sample(std::string(name) + "_sum", labels, sum);
  sample(std::string(name) + "_count", labels, static_cast<double>(cum));
}

}  // namespace bpfgate::core::prom
