// What `bpfgate status` prints for one filter: a JSON object (-j) or a few
// lines of text. Pure functions of agent::FilterStatus, unit-tested.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "features/xdp/filter.hpp"

namespace bpfgate::cli {

nlohmann::json limits_json(const core::Limits &l);  // {rate_pps, burst}
nlohmann::json status_json(const agent::FilterStatus &s);
std::string status_text(const agent::FilterStatus &s);

}  // namespace bpfgate::cli
