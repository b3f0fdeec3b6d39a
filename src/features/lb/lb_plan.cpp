#include "features/lb/lb_plan.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>

#include <fmt/format.h>

#include "core/values.hpp"
#include "util/text.hpp"

namespace bpfgate::agent::lb {

namespace {

using nlohmann::json;

std::vector<std::string_view> words_of(std::string_view line) {
  std::vector<std::string_view> out;
  for (size_t i = 0; i < line.size();) {
    size_t j = line.find(' ', i);
    if (j == std::string_view::npos)
      j = line.size();
    if (j > i)
      out.push_back(line.substr(i, j - i));
    i = j + 1;
  }
  return out;
}

Result<uint32_t> parse_weight(std::string_view text) {
  auto w = core::parse_whole(text);
  if (!w || *w > 65535)
    return make_error(EINVAL, "weight '{}' must be 0-65535", util::excerpt(text));
  return static_cast<uint32_t>(*w);
}

const core::LbServiceConfig *find_service(const std::vector<core::LbServiceConfig> &services,
                                          const std::string &name) {
  for (const auto &s : services)
    if (s.name == name)
      return &s;
  return nullptr;
}

const core::LbBackendConfig *find_backend(const core::LbServiceConfig &s, const std::string &key) {
  for (const auto &b : s.backends)
    if (b.key() == key)
      return &b;
  return nullptr;
}

// The backend's canonical key in service `s` (the VIP's port when none given).
Result<std::string> backend_key(const core::LbServiceConfig &s, const std::string &address) {
  auto e = core::parse_lb_endpoint(address, false);
  if (!e)
    return e.error();
  if (e->v6 != s.vip.v6)
    return make_error(EINVAL,
                      "{} is IPv{}, service {} is IPv{}: a service and its backends are "
                      "of one family",
                      address, e->v6 ? 6 : 4, s.name, s.vip.v6 ? 6 : 4);
  if (e->port == 0)
    e->port = s.vip.port;
  return core::format_lb_endpoint(*e);
}

}  // namespace

const char *op_name(LbOp op) {
  switch (op) {
    case LbOp::add:
      return "add";
    case LbOp::remove:
      return "remove";
    case LbOp::drain:
      return "drain";
    case LbOp::weight:
      return "weight";
  }
  return "?";
}

Result<LbRequest> parse_lb_request(std::string_view line) {
  auto w = words_of(line);
  const char *usage =
      "use: lb add SERVICE ADDR[:PORT] [WEIGHT] | lb remove SERVICE ADDR[:PORT] | lb drain "
      "SERVICE ADDR[:PORT] | lb weight SERVICE ADDR[:PORT] WEIGHT";
  if (w.size() < 4 || w[0] != "lb")
    return make_error(EINVAL, "'{}': {}", util::excerpt(line), usage);
  LbRequest r;
  if (w[1] == "add" && w.size() <= 5)
    r.op = LbOp::add;
  else if (w[1] == "remove" && w.size() == 4)
    r.op = LbOp::remove;
  else if (w[1] == "drain" && w.size() == 4)
    r.op = LbOp::drain;
  else if (w[1] == "weight" && w.size() == 5)
    r.op = LbOp::weight;
  else
    return make_error(EINVAL, "'{}': {}", util::excerpt(line), usage);
  r.service = std::string(w[2]);
  r.address = std::string(w[3]);
  if (w.size() == 5) {
    auto weight = parse_weight(w[4]);
    if (!weight)
      return weight.error();
    r.weight = *weight;
  }
  return r;
}

std::string format_lb_request(const LbRequest &r) {
  std::string line = fmt::format("lb {} {} {}", op_name(r.op), r.service, r.address);
  if (r.weight)
    line += fmt::format(" {}", *r.weight);
  return line;
}

Result<Overlay> change_overlay(const Overlay &o, const std::vector<core::LbServiceConfig> &services,
                               const LbRequest &r, std::string &what) {
  const auto *s = find_service(services, r.service);
  if (!s)
    return make_error(ENOENT, "no service '{}' (see `bpfgate lb list`)", util::excerpt(r.service));
  auto key = backend_key(*s, r.address);
  if (!key)
    return key.error();
  Overlay next = o;
  OverlayBackend &b = next[s->name][*key];
  bool configured = find_backend(*s, *key) != nullptr;
  bool present = (configured && !b.removed) || b.added;
  switch (r.op) {
    case LbOp::add:
      if (present && !b.draining)
        return make_error(EEXIST, "{} is already a backend of {}", *key, s->name);
      if (present) {
        what = fmt::format("{} of {} is no longer draining", *key, s->name);
      } else {
        what = fmt::format("added {} to {}", *key, s->name);
        b.added = !configured;
        b.removed = false;
      }
      b.draining = false;
      if (r.weight)
        b.weight = r.weight;
      else if (!present && !configured)
        b.weight = 100;
      break;
    case LbOp::remove:
      if (!present)
        return make_error(ENOENT, "{} is not a backend of {}", *key, s->name);
      what = fmt::format("removed {} from {}", *key, s->name);
      b = OverlayBackend{};
      b.removed = configured;
      break;
    case LbOp::drain:
      if (!present)
        return make_error(ENOENT, "{} is not a backend of {}", *key, s->name);
      if (b.draining)
        return make_error(EALREADY, "{} of {} is already draining", *key, s->name);
      b.draining = true;
      what = fmt::format("{} of {} drains", *key, s->name);
      break;
    case LbOp::weight:
      if (!present)
        return make_error(ENOENT, "{} is not a backend of {}", *key, s->name);
      b.weight = r.weight;
      what = fmt::format("{} of {}: weight {}", *key, s->name, *r.weight);
      break;
  }
  if (b == OverlayBackend{})
    next[s->name].erase(*key);
  if (next[s->name].empty())
    next.erase(s->name);
  return next;
}

Overlay prune_overlay(const Overlay &o, const std::vector<core::LbServiceConfig> &services) {
  Overlay next;
  for (const auto &[name, backends] : o) {
    const auto *s = find_service(services, name);
    if (!s)
      continue;
    for (const auto &[key, b] : backends) {
      OverlayBackend kept = b;
      bool configured = find_backend(*s, key) != nullptr;
      if (kept.removed && !configured)
        kept.removed = false;  // gone from the config too
      if (kept.added && configured)
        kept.added = false;  // the config has it now
      if (!(kept == OverlayBackend{}))
        next[name][key] = kept;
    }
  }
  return next;
}

std::vector<Backend> backends_of(const core::LbServiceConfig &s, const Overlay &o) {
  static const std::map<std::string, OverlayBackend> none;
  auto it = o.find(s.name);
  const auto &changes = it == o.end() ? none : it->second;
  std::vector<Backend> out;
  auto with = [&](Backend b) {
    auto c = changes.find(b.key());
    if (c != changes.end()) {
      if (c->second.removed)
        return;
      b.draining = c->second.draining;
      if (c->second.weight) {
        b.weight = *c->second.weight;
        b.runtime_weight = !b.runtime_added;
      }
    }
    out.push_back(b);
  };
  for (const auto &cb : s.backends)
    with(Backend{cb.at, cb.weight, cb.weight});
  for (const auto &[key, c] : changes)
    if (c.added && !find_backend(s, key))
      if (auto e = core::parse_lb_endpoint(key, true); e && e->v6 == s.vip.v6) {
        uint32_t w = c.weight.value_or(100);
        with(Backend{*e, w, w, true});
      }
  return out;
}

std::vector<PlannedService> plan(const std::vector<core::LbServiceConfig> &services,
                                 const Overlay &o, const Signals &sig) {
  std::vector<PlannedService> out;
  for (const auto &s : services) {
    PlannedService p{s.name, s.vip, s.proto, {}, 0};
    for (const auto &b : backends_of(s, o)) {
      PlannedBackend pb{b.at, b.weight, b.draining, false, 0};
      if (auto d = sig.down.find({s.name, b.key()}); d != sig.down.end())
        pb.down = d->second;
      if (auto w = sig.weights.find({s.name, b.key()}); w != sig.weights.end())
        pb.weight = w->second;
      p.backends.push_back(pb);
    }
    out.push_back(std::move(p));
  }
  return out;
}

std::string overlay_to_json(const Overlay &o) {
  json services = json::object();
  for (const auto &[name, backends] : o)
    for (const auto &[key, b] : backends) {
      json j = {{"added", b.added}, {"removed", b.removed}, {"draining", b.draining}};
      if (b.weight)
        j["weight"] = *b.weight;
      services[name][key] = j;
    }
  return json{{"version", 1}, {"services", services}}.dump(2) + "\n";
}

namespace {

void read_services(const json &services, Overlay &o) {
  for (const auto &[name, backends] : services.items())
    for (const auto &[key, b] : backends.items()) {
      OverlayBackend ob;
      ob.added = b.value("added", false);
      ob.removed = b.value("removed", false);
      ob.draining = b.value("draining", false);
      if (b.contains("weight") && b["weight"].get<uint64_t>() <= 65535)
        ob.weight = b["weight"].get<uint32_t>();
      o[name][key] = ob;
    }
}

}  // namespace

Result<Overlay> overlay_from_json(const std::string &text) {
  auto j = json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object() || !j.contains("services") || !j["services"].is_object())
    return make_error(EINVAL, "not an overlay file (JSON with \"services\")");
  Overlay o;
  try {
    read_services(j["services"], o);
  } catch (const json::exception &e) {
    return make_error(EINVAL, "not an overlay file: {}", e.what());
  }
  return o;
}

}  // namespace bpfgate::agent::lb
