// The shipped systemd unit (deploy/bpfgate.service), scored by systemd's own
// `systemd-analyze security --offline=true` (Debian's systemd package, which
// scripts/deps.sh installs): its exposure stays at or under what issue 13
// reached (7.0 before, 2.5 after). PID 1 need not be systemd: offline mode
// reads the file only.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "agent/seccomp.hpp"
#include "support/system.hpp"

namespace bpfgate::test {
namespace {

constexpr double kMaxExposure = 2.5;

std::string unit_path() {
  return (std::filesystem::path(BPFGATE_SOURCE_DIR) / "deploy" / "bpfgate.service").string();
}

bool have_systemd_analyze() {
  return run("command -v systemd-analyze").exit_code == 0;
}
constexpr const char *kNoSystemdAnalyze =
    "systemd-analyze is not installed (scripts/deps.sh installs Debian's systemd)";

std::vector<std::string> words(const std::string &s) {
  std::istringstream in(s);
  std::vector<std::string> out;
  for (std::string w; in >> w;)
    out.push_back(w);
  return out;
}

// systemd's groups (@system-service, ...), from `systemd-analyze syscall-filter`.
using Groups = std::map<std::string, std::vector<std::string>>;
Groups syscall_groups() {
  Groups g;
  std::istringstream in(run("systemd-analyze syscall-filter --no-pager").out);
  std::string group;
  for (std::string line; std::getline(in, line);) {
    if (line.starts_with("@"))
      group = words(line)[0];
    else if (line.starts_with("    ") && !group.empty() && words(line)[0][0] != '#')
      g[group].push_back(words(line)[0]);
  }
  return g;
}

void expand(const Groups &g, const std::string &name, std::set<std::string> &out) {
  if (!name.starts_with("@")) {
    out.insert(name);
    return;
  }
  if (auto it = g.find(name); it != g.end())
    for (const auto &m : it->second)
      expand(g, m, out);
}

TEST(ServiceUnit, ExposureScoreIsAtMostWhatWasReached) {
  if (!have_systemd_analyze())
    GTEST_SKIP() << kNoSystemdAnalyze;
  auto r = run("systemd-analyze security --offline=true --no-pager " + unit_path());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::smatch m;
  std::regex overall(R"(Overall exposure level for bpfgate\.service: ([0-9]+\.[0-9]))");
  ASSERT_TRUE(std::regex_search(r.out, m, overall)) << r.out << r.err;
  EXPECT_LE(std::stod(m[1]), kMaxExposure) << r.out;
}

// What the agent cannot do without is still there: its capabilities, the
// pins' file system, its families (the same four its seccomp filter allows),
// and bpf() in the system call filter.
TEST(ServiceUnit, KeepsWhatTheAgentNeeds) {
  auto r = run("cat " + unit_path());
  ASSERT_EQ(r.exit_code, 0);
  for (const char *line :
       {"CapabilityBoundingSet=CAP_BPF CAP_NET_ADMIN CAP_SYS_ADMIN CAP_PERFMON",
        "ReadWritePaths=/sys/fs/bpf\n", "RuntimeDirectory=bpfgate\n", "StateDirectory=bpfgate\n",
        "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6 AF_NETLINK\n",
        "SystemCallFilter=@system-service bpf perf_event_open seccomp\n"})
    EXPECT_NE(r.out.find(line), std::string::npos) << "missing: " << line;
}

// Under the unit, the agent's own filter is a second one: each call it allows
// must pass the unit's SystemCallFilter= too (seccomp() itself among them, or
// the agent could not confine itself), or the agent fails under systemd only.
TEST(ServiceUnit, ItsSystemCallFilterAllowsWhatTheAgentsFilterAllows) {
  if (!have_systemd_analyze())
    GTEST_SKIP() << kNoSystemdAnalyze;
  auto groups = syscall_groups();
  ASSERT_TRUE(groups.count("@system-service"));
  std::set<std::string> allowed, denied;
  std::istringstream in(run("cat " + unit_path()).out);
  bool first = true;
  for (std::string line; std::getline(in, line);) {
    if (!line.starts_with("SystemCallFilter="))
      continue;
    std::string value = line.substr(std::strlen("SystemCallFilter="));
    bool deny = value.starts_with("~");
    ASSERT_EQ(deny, !first) << "expected one allow-list, then deny-lists: " << line;
    for (const auto &w : words(deny ? value.substr(1) : value))
      expand(groups, w, deny ? denied : allowed);
    first = false;
  }
  ASSERT_FALSE(first) << "no SystemCallFilter= in the unit";
  std::vector<std::string> names = agent::seccomp::allowed_syscalls();
  names.push_back("seccomp");
  for (const auto &name : names)
    EXPECT_TRUE(allowed.count(name) && !denied.count(name))
        << name << ": the agent's filter allows it, the unit's does not";
}

}  // namespace
}  // namespace bpfgate::test
