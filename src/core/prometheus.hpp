// The Prometheus text exposition format (version 0.0.4): a writer that keeps
// each family's HELP and TYPE in front of its samples, escapes label values
// and lays out histograms (cumulative buckets, +Inf, _sum, _count). The tests
// read it back with their parser (tests/support/prometheus_parse.hpp).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace bpfgate::core::prom {

using Labels = std::vector<std::pair<std::string, std::string>>;

class Writer {
 public:
  // Starts a family; its samples follow until the next family().
  void family(std::string_view name, std::string_view type, std::string_view help);
  void sample(std::string_view name, const Labels &labels, double value);
  // counts[i] is the number of observations in bucket i (not cumulative),
  // bounds[i] its upper bound; counts has one more entry (above the last bound).
  void histogram(std::string_view name, const Labels &labels, const std::vector<double> &bounds,
                 const std::vector<uint64_t> &counts, double sum);
  const std::string &text() const { return out_; }

 private:
  std::string out_;
};

std::string escape_label_value(std::string_view v);
std::string format_value(double v);

}  // namespace bpfgate::core::prom
