#include "features/fleet/fleet_config.hpp"

#include <unistd.h>

#include <fmt/format.h>
#include <yaml-cpp/yaml.h>

#include "core/schema.hpp"

namespace bpfgate::core {

bool valid_node_name(const std::string &s) {
  if (s.empty() || s.size() > 63)
    return false;
  for (unsigned char c : s)
    if (!std::isalnum(c) && c != '.' && c != '_' && c != '-')
      return false;
  return true;
}

namespace {

void parse_endpoints(Diag &d, const YAML::Node &n, FleetConfig &c) {
  if (!n.IsSequence() || n.size() == 0) {
    d.at(n, "fleet.endpoints: give a list of etcd client URLs, e.g. [http://10.0.0.1:2379]");
    return;
  }
  for (const auto &e : n) {
    auto s = read_scalar(d, e, "fleet.endpoints");
    if (!s)
      continue;
    bool scheme = s->rfind("http://", 0) == 0 || s->rfind("https://", 0) == 0;
    auto rest = s->substr(s->find("//") == std::string::npos ? 0 : s->find("//") + 2);
    if (!scheme || rest.empty() || rest.find(':') == std::string::npos ||
        rest.find('/') != std::string::npos) {
      d.at(e, fmt::format("fleet.endpoints: '{}' is not http(s)://HOST:PORT", *s));
      continue;
    }
    c.endpoints.push_back(*s);
  }
}

void parse_tls(Diag &d, const YAML::Node &n, FleetConfig &c) {
  Section s(d, n, "fleet.tls", {"ca", "cert", "key"});
  if (!s.all_known())
    return;
  FleetTlsConfig t;
  s.text("ca", t.ca, "fleet.tls.ca");
  s.text("cert", t.cert, "fleet.tls.cert");
  s.text("key", t.key, "fleet.tls.key");
  if (t.cert.empty() != t.key.empty())
    d.at(n, "fleet.tls: give cert and key together (the client's certificate and its key)");
  c.tls = t;
}

void parse_auth(Diag &d, const YAML::Node &n, FleetConfig &c) {
  Section s(d, n, "fleet.auth", {"user", "password_file"});
  if (!s.all_known())
    return;
  FleetAuthConfig a;
  s.text("user", a.user, "fleet.auth.user");
  s.text("password_file", a.password_file, "fleet.auth.password_file");
  if (a.user.empty() || a.password_file.empty())
    d.at(n, "fleet.auth: give user and password_file");
  c.auth = a;
}

void parse_share(Diag &d, const YAML::Node &n, FleetConfig &c) {
  Section s(d, n, "fleet.share", {"auto_blocks", "manual_blocks", "deny_lists"});
  s.on_off("auto_blocks", c.share_auto, "fleet.share.auto_blocks");
  s.on_off("manual_blocks", c.share_manual, "fleet.share.manual_blocks");
  s.on_off("deny_lists", c.share_deny, "fleet.share.deny_lists");
}

void parse_aggregate(Diag &d, const YAML::Node &n, FleetConfig &c) {
  Section s(d, n, "fleet.aggregate", {"ipv4_prefix", "ipv6_prefix", "threshold"});
  s.number("ipv4_prefix", c.ipv4_prefix, 8, 32, "fleet.aggregate.ipv4_prefix");
  s.number("ipv6_prefix", c.ipv6_prefix, 16, 128, "fleet.aggregate.ipv6_prefix");
  s.number("threshold", c.aggregate_threshold, 2, 65536, "fleet.aggregate.threshold");
}

// "50/s" or "50": writes a second.
void parse_publish_rate(Diag &d, const YAML::Node &n, FleetConfig &c) {
  auto s = read_scalar(d, n, "fleet.max_publish_rate");
  if (!s)
    return;
  std::string t = *s;
  if (t.size() > 2 && t.compare(t.size() - 2, 2, "/s") == 0)
    t.resize(t.size() - 2);
  char *end = nullptr;
  unsigned long long v = t.empty() ? 0 : std::strtoull(t.c_str(), &end, 10);
  if (t.empty() || *end || v < 1 || v > 100000) {
    d.at(n, fmt::format("fleet.max_publish_rate '{}': give writes a second, 1/s to 100000/s", *s));
    return;
  }
  c.max_publish_rate = v;
}

void parse_never_block(Diag &d, const YAML::Node &n, FleetConfig &c) {
  if (!n.IsSequence()) {
    d.at(n, "fleet.never_block: give a list of CIDR prefixes");
    return;
  }
  for (const auto &e : n)
    if (auto p = read_prefix(d, e, "fleet.never_block"))
      c.never_block.push_back(*p);
}

std::string host_name() {
  char buf[256] = {};
  if (gethostname(buf, sizeof(buf) - 1) != 0)
    return "";
  return buf;
}

void parse_node(Diag &d, const Section &s, FleetConfig &c) {
  if (!s.text("node", c.node, "fleet.node"))
    c.node = host_name();
  if (!valid_node_name(c.node))
    d.at(s.has("node") ? line_of(s["node"]) : s.line(),
         fmt::format("fleet.node '{}': 1 to 63 of letters, digits, '.', '_' and '-'", c.node));
}

}  // namespace

void parse_fleet(Diag &d, const YAML::Node &n, std::optional<FleetConfig> &out) {
  size_t before = d.count();
  FleetConfig c;
  c.line = line_of(n);
  Section s(d, n, "fleet",
            {"endpoints", "prefix", "node", "tls", "auth", "share", "max_publish_rate", "aggregate",
             "never_block"});
  if (!s.all_known())
    return;
  if (!s.has("endpoints"))
    d.at(n, "fleet.endpoints: missing (the etcd client URLs, e.g. [http://10.0.0.1:2379])");
  else
    parse_endpoints(d, s["endpoints"], c);
  if (s.text("prefix", c.prefix, "fleet.prefix") &&
      (c.prefix.empty() || c.prefix.front() != '/' || c.prefix.back() != '/'))
    d.at(s["prefix"], fmt::format("fleet.prefix '{}': begin and end it with '/'", c.prefix));
  parse_node(d, s, c);
  if (s.has("tls"))
    parse_tls(d, s["tls"], c);
  if (s.has("auth"))
    parse_auth(d, s["auth"], c);
  if (s.has("share"))
    parse_share(d, s["share"], c);
  if (s.has("max_publish_rate"))
    parse_publish_rate(d, s["max_publish_rate"], c);
  if (s.has("aggregate"))
    parse_aggregate(d, s["aggregate"], c);
  if (s.has("never_block"))
    parse_never_block(d, s["never_block"], c);
  if (d.count() == before)
    out = std::move(c);
}

}  // namespace bpfgate::core
