// The Prometheus text exposition format (version 0.0.4): a writer that keeps
// each family's HELP and TYPE in front of its samples, escapes label values
// and lays out histograms (cumulative buckets, +Inf, _sum, _count), and a
// parser for the same format, which the tests use to read a real scrape.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "util/result.hpp"

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

struct Sample {
  std::string name;
  std::map<std::string, std::string> labels;
  double value = 0;
};
struct Parsed {
  std::vector<Sample> samples;
  std::map<std::string, std::string> types;  // family -> counter|gauge|histogram|...
};
// Parses a scrape; every malformed line is an error with its line number.
Result<Parsed> parse(std::string_view text);

// The value of the one sample of `name` whose labels include `match`; NaN if none.
double value_of(const Parsed &p, std::string_view name, const Labels &match = {});
// The sum over every sample of `name` whose labels include `match`.
double sum_of(const Parsed &p, std::string_view name, const Labels &match = {});

}  // namespace bpfgate::core::prom
