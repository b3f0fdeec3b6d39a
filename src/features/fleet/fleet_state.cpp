#include "features/fleet/fleet_state.hpp"

#include <nlohmann/json.hpp>

#include <cerrno>

#include "util/file.hpp"

namespace bpfgate::fleet {

using nlohmann::json;

Result<FleetState> read_state(const std::string &path) {
  auto text = util::read_file(path);
  if (!text) {
    if (text.error().err() == ENOENT)
      return FleetState{};
    return text.error();
  }
  json j = json::parse(*text, nullptr, false);
  if (!j.is_object() || !j.contains("revision") || !j["revision"].is_number_integer() ||
      !j.contains("prefix") || !j["prefix"].is_string())
    return make_error(EINVAL, "{}: not the fleet's state (revision, prefix); it is read anew",
                      path);
  FleetState s;
  s.prefix = j["prefix"].get<std::string>();
  s.revision = j["revision"].get<int64_t>();
  if (j.contains("published") && j["published"].is_object())
    for (const auto &[k, v] : j["published"].items())
      if (v.is_number_integer())
        s.published[k] = v.get<int64_t>();
  if (j.contains("withdrawn") && j["withdrawn"].is_array())
    for (const auto &k : j["withdrawn"])
      if (k.is_string())
        s.withdrawn.insert(k.get<std::string>());
  for (auto [name, field] : {std::pair{"never", &s.never}, {"kept_out", &s.kept_out}})
    if (j.contains(name) && j[name].is_object())
      for (const auto &[k, v] : j[name].items())
        if (v.is_string())
          (*field)[k] = v.get<std::string>();
  return s;
}

Status write_state(const std::string &path, const FleetState &s) {
  json j{{"prefix", s.prefix},       {"revision", s.revision}, {"published", s.published},
         {"withdrawn", s.withdrawn}, {"never", s.never},       {"kept_out", s.kept_out}};
  return util::write_file_atomic(path, j.dump() + "\n");
}

}  // namespace bpfgate::fleet
