// A parser for the Prometheus text exposition format (version 0.0.4), which
// the tests use to read what the writer (core/prometheus.hpp) laid out and a
// real scrape of the agent's /metrics.
#pragma once

#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "core/prometheus.hpp"
#include "util/result.hpp"

namespace bpfgate::test::prom {

using Labels = core::prom::Labels;

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

}  // namespace bpfgate::test::prom
