#include "features/lb/lb_status.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include <cerrno>
#include <cstring>
#include <ctime>
#include <fstream>
#include <map>
#include <mutex>

#include "bpf/map.hpp"
#include "bpf/pin.hpp"
#include "features/lb/lb_config.hpp"
#include "features/lb/lb_datapath.hpp"

namespace bpfgate::agent::lb {

namespace {

using nlohmann::json;

std::mutex published_mu;
std::optional<Catalog> published;

void catalog_service_from(const json &j, CatalogService &s) {
  s.id = j.at("id").get<uint32_t>();
  s.name = j.at("name").get<std::string>();
  s.check = j.value("check", "none");
  for (const auto &b : j.at("backends"))
    s.backends.push_back({b.at("id").get<uint32_t>(), b.value("configured", 0u),
                          b.value("weight", 0u), b.value("effective", 0u),
                          b.value("runtime", false), b.value("runtime_weight", false),
                          b.value("health", "unchecked")});
}

}  // namespace

std::string catalog_to_json(const Catalog &c) {
  json services = json::array();
  for (const auto &s : c) {
    json backends = json::array();
    for (const auto &b : s.backends)
      backends.push_back({{"id", b.id},
                          {"configured", b.configured},
                          {"weight", b.weight},
                          {"effective", b.effective},
                          {"runtime", b.runtime},
                          {"runtime_weight", b.runtime_weight},
                          {"health", b.health}});
    services.push_back(
        {{"id", s.id}, {"name", s.name}, {"check", s.check}, {"backends", backends}});
  }
  return json{{"version", 1}, {"services", services}}.dump() + "\n";
}

Result<Catalog> catalog_from_json(const std::string &text) {
  auto j = json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object() || !j.contains("services"))
    return make_error(EINVAL, "not a balancer catalog (JSON with \"services\")");
  Catalog c;
  try {
    for (const auto &s : j["services"])
      catalog_service_from(s, c.emplace_back());
  } catch (const json::exception &e) {
    return make_error(EINVAL, "not a balancer catalog: {}", e.what());
  }
  return c;
}

std::string catalog_path(const std::string &state_dir) {
  return state_dir + "/lb-catalog.json";
}
std::string overlay_path(const std::string &state_dir) {
  return state_dir + "/lb-overlay.json";
}

Status write_state_file(const std::string &path, const std::string &text) {
  std::string tmp = path + ".tmp";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0)
    return Error(errno, "create " + tmp);
  bool ok = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()) &&
            ::fsync(fd) == 0;
  int err = errno;
  ::close(fd);
  if (!ok || ::rename(tmp.c_str(), path.c_str()) != 0) {
    err = ok ? errno : err;
    ::unlink(tmp.c_str());
    return Error(err, "write " + path);
  }
  return {};
}

Result<std::optional<std::string>> read_state_file(const std::string &path) {
  std::ifstream in(path);
  if (!in)
    return errno == ENOENT ? Result<std::optional<std::string>>(std::nullopt)
                           : Result<std::optional<std::string>>(Error(errno, "read " + path));
  return std::optional<std::string>(std::string((std::istreambuf_iterator<char>(in)), {}));
}

void publish_catalog(const Catalog &c) {
  std::lock_guard<std::mutex> l(published_mu);
  published = c;
}

std::optional<Catalog> published_catalog() {
  std::lock_guard<std::mutex> l(published_mu);
  return published;
}

std::string BackendView::state() const {
  if (flags & BG_LB_BACKEND_DOWN)
    return "down";
  if (flags & BG_LB_BACKEND_DRAINING)
    return "draining";
  return "up";
}

const char *counter_name(bg_lb_counter c) {
  static const char *names[BG_LB_COUNTER_NR] = {
      "not_service", "forwarded", "replied", "to_stack",   "new_flow",  "no_backend",
      "fragment",    "icmp",      "ttl",     "unroutable", "conns_full"};
  return c < BG_LB_COUNTER_NR ? names[c] : "?";
}

}  // namespace bpfgate::agent::lb
