#include "core/config.hpp"

#include <sys/stat.h>
#include <sys/un.h>
#include <yaml-cpp/yaml.h>

#include <fmt/format.h>

#include "core/input_guard.hpp"
#include "core/schema.hpp"

namespace bpfgate::core {

namespace {

// Why `path` cannot be the agent's control socket: it must be absolute, fit
// a sockaddr_un, and be a socket or nothing (the agent replaces what is there).
std::optional<std::string> control_socket_problem(const std::string &path) {
  if (path.empty() || path[0] != '/')
    return fmt::format("control_socket '{}' must be an absolute path", excerpt(path));
  if (path.size() >= sizeof(sockaddr_un{}.sun_path))
    return fmt::format("control_socket '{}' is longer than a socket path can be ({} bytes)",
                       excerpt(path), sizeof(sockaddr_un{}.sun_path) - 1);
  if (path.find('\0') != std::string::npos)
    return "control_socket holds a NUL byte";
  struct stat st {};
  if (lstat(path.c_str(), &st) == 0 && !S_ISSOCK(st.st_mode))
    return fmt::format("control_socket '{}' exists and is not a socket: the agent would replace it",
                       excerpt(path));
  return std::nullopt;
}

// sweep: {interval: 1s, source_idle: 5m}
void parse_sweep(Diag &d, const YAML::Node &n, Config &c) {
  Section s(d, n, "sweep", {"interval", "source_idle"});
  if (!s)
    return;
  s.duration_ns("interval", c.sweep_interval_ns, "sweep.interval");
  s.duration_ns("source_idle", c.source_idle_ns, "sweep.source_idle");
  if (c.sweep_interval_ns < 10'000'000ULL)
    d.at(n, "sweep.interval must be at least 10ms");
}

// agent: {control_socket: PATH, keep_datapath: BOOL, seccomp: on|off, state_dir: PATH|off}
void parse_agent(Diag &d, const YAML::Node &n, Config &c) {
  Section s(d, n, "agent", {"control_socket", "keep_datapath", "seccomp", "state_dir"});
  if (!s)
    return;
  std::string socket;
  if (s.text("control_socket", socket)) {
    if (auto why = control_socket_problem(socket))
      d.at(s["control_socket"], *why);
    else
      c.control_socket = socket;
  }
  s.boolean("keep_datapath", c.keep_datapath);
  s.on_off("seccomp", c.seccomp, "agent.seccomp");
  std::string dir;
  if (s.text("state_dir", dir, "agent.state_dir")) {
    if (dir == "off")
      c.state_dir.clear();
    else if (dir.empty() || dir[0] != '/' || dir.find('\0') != std::string::npos)
      d.at(s["state_dir"],
           fmt::format("agent.state_dir '{}' must be an absolute path, or off", excerpt(dir)));
    else
      c.state_dir = dir;
  }
}

// The root's sections after the XDP filter's, each read by its feature's
// parser (features/<name>/<name>_config.hpp) or here, in this order.
struct SectionParser {
  const char *key;
  void (*parse)(Diag &d, const YAML::Node &n, Config &c);
};
const SectionParser kSections[] = {
    {"metrics", [](Diag &d, const YAML::Node &n, Config &c) { parse_metrics(d, n, c.metrics); }},
    {"events", [](Diag &d, const YAML::Node &n, Config &c) { parse_events(d, n, c.events); }},
    {"services", [](Diag &d, const YAML::Node &n, Config &c) { parse_services(d, n, c.services); }},
    {"accel", [](Diag &d, const YAML::Node &n, Config &c) { parse_accel(d, n, c.accel); }},
    {"tc", [](Diag &d, const YAML::Node &n, Config &c) { parse_tc(d, n, c.tc); }},
    {"lb", [](Diag &d, const YAML::Node &n, Config &c) { parse_lb(d, n, c.lb); }},
    {"fleet", [](Diag &d, const YAML::Node &n, Config &c) { parse_fleet(d, n, c.fleet); }},
    {"tcp_probes",
     [](Diag &d, const YAML::Node &n, Config &c) { parse_tcp_probes(d, n, c.tcp_probes); }},
    {"sweep", parse_sweep},
    {"agent", parse_agent},
};

void parse_root(Diag &d, const YAML::Node &root, Config &c, ConfigFor use) {
  Section s(
      d, root, "the config",
      {"interfaces",      "limits",     "unparsed",   "allow", "allow_file", "deny",    "deny_file",
       "prefix_file_max", "rules",      "auto_block", "sweep", "agent",      "metrics", "events",
       "services",        "tcp_probes", "tc",         "accel", "lb",         "dry_run", "fleet"});
  if (!s)
    return;
  // interfaces, limits, unparsed, allow, deny (and their files), rules, auto_block.
  parse_xdp_sections(d, root, c, use == ConfigFor::agent);
  for (const auto &section : kSections)
    if (s.has(section.key))
      section.parse(d, s[section.key], c);
}

uint64_t fnv1a64(const std::string &text) {
  uint64_t h = 0xcbf29ce484222325ULL;
  for (unsigned char ch : text)
    h = (h ^ ch) * 0x100000001b3ULL;
  return h;
}

}  // namespace

Result<Config> parse_config(const std::string &text, const std::string &path, ConfigFor use) {
  Diag d(path);
  Config c;
  c.path = path;
  c.hash = fmt::format("{:016x}", fnv1a64(text));
  for (const auto &[line, why] : yaml_problems(text))
    d.at(line, why);
  if (!d.ok())
    return d.error();
  YAML::Node root;
  try {
    root = YAML::Load(text);
  } catch (const YAML::ParserException &e) {
    d.at(e.mark.line + 1, "not valid YAML: " + e.msg);
    return d.error();
  }
  if (!root || root.IsNull()) {
    d.at(1, "the config is empty");
    return d.error();
  }
  try {
    parse_root(d, root, c, use);
  } catch (const YAML::Exception &e) {
    d.at(e.mark.line + 1, e.msg);
  }
  settle_acl(d, c);
  if (!d.ok())
    return d.error();
  return c;
}

Result<Config> load_config(const std::string &path, ConfigFor use) {
  auto text = read_bounded_file(path, kConfigMaxBytes, "config");
  if (!text)
    return text.error();
  return parse_config(*text, path, use);
}

}  // namespace bpfgate::core
