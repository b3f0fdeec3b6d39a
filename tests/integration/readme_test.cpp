// Every command line README.md shows works as written. The commands are read
// from README.md itself (each line of a ```sh block, and each inline `...`
// that starts with a command and has arguments); every form of each (the parts
// in [brackets] left out, each one alone and all of them; IFACE, N and FILE
// filled in) runs in network namespaces made here, on an interface named as in
// the README (eth0), and what it printed or changed is checked.
// ReadmeCommands.EveryOneHasACheck fails when the README shows a command this
// file does not run, or this file runs one the README no longer shows.
//
// Each test process gets a mount namespace of its own, so the README's paths
// can be used as written without touching the host's: a fresh bpffs at
// /sys/fs/bpf, a tmpfs at /run (the agent's socket, the namespaces' mounts),
// an overlay on /etc whose writes (/etc/bpfgate) go to that tmpfs and, for
// `accel`, a cgroup v2 hierarchy at /sys/fs/cgroup/unified as older layouts
// mount it.
#include <sched.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <thread>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "support/system.hpp"

namespace bpfgate::test {
namespace {

using namespace std::chrono_literals;
namespace fs = std::filesystem;
using nlohmann::json;

// ---- README.md --------------------------------------------------------------

struct Shown {
  int line = 0;
  std::string text;  // the command, its trailing `# comment` removed
};

struct Readme {
  std::vector<Shown> commands;
  std::vector<std::string> yaml_blocks;
};

std::string trim(std::string s) {
  auto b = s.find_first_not_of(" \t\r\n");
  auto e = s.find_last_not_of(" \t\r\n");
  return b == std::string::npos ? "" : s.substr(b, e - b + 1);
}

Readme read_readme() {
  Readme r;
  std::ifstream in(fs::path(BPFGATE_SOURCE_DIR) / "README.md");
  EXPECT_TRUE(in) << "cannot read README.md";
  // An inline command: a program of this repository or one a reader types,
  // with at least one argument (`bpfgate tc` names a command family).
  static const std::regex inline_cmd(
      R"(`((?:[A-Z_]+=\S+ )*(?:bpfgate|scripts/[\w.-]+|bench/run|curl|sysctl) [^`]+)`)");
  std::string line, fence, yaml;
  int n = 0;
  while (std::getline(in, line)) {
    ++n;
    if (line.rfind("```", 0) == 0) {
      if (fence.empty()) {
        fence = line.size() > 3 ? line.substr(3) : "text";
      } else {
        if (fence == "yaml")
          r.yaml_blocks.push_back(yaml);
        fence.clear();
        yaml.clear();
      }
      continue;
    }
    if (fence == "sh") {
      std::string cmd = line;
      auto hash = cmd.find(" #");
      if (hash != std::string::npos)
        cmd = cmd.substr(0, hash);
      cmd = trim(cmd);
      if (!cmd.empty())
        r.commands.push_back({n, cmd});
    } else if (fence == "yaml") {
      yaml += line + "\n";
    } else if (fence.empty()) {
      for (std::sregex_iterator it(line.begin(), line.end(), inline_cmd), end; it != end; ++it)
        r.commands.push_back({n, (*it)[1].str()});
    }
  }
  return r;
}

const Readme &readme() {
  static const Readme r = read_readme();
  return r;
}

// The README's command `text`, which must be one it shows.
const std::string &shown(const std::string &text) {
  for (const auto &c : readme().commands)
    if (c.text == text)
      return c.text;
  ADD_FAILURE() << "README.md no longer shows `" << text << "`";
  static const std::string none = "false";
  return none;
}

// The forms of a command with optional [parts]: none of them, each one alone,
// all of them; IFACE, N and FILE filled in.
std::vector<std::string> forms(const std::string &cmd, const std::string &file = "") {
  static const std::regex opt(R"( \[([^\]]+)\])");
  std::vector<std::string> parts;
  for (std::sregex_iterator it(cmd.begin(), cmd.end(), opt), end; it != end; ++it)
    parts.push_back((*it)[1].str());
  std::string base = std::regex_replace(cmd, opt, "");
  std::vector<std::vector<bool>> picks{std::vector<bool>(parts.size(), false)};
  if (!parts.empty()) {
    for (size_t i = 0; i < parts.size(); ++i) {
      std::vector<bool> one(parts.size(), false);
      one[i] = true;
      picks.push_back(one);
    }
    if (parts.size() > 1)
      picks.push_back(std::vector<bool>(parts.size(), true));
  }
  std::vector<std::string> out;
  for (const auto &p : picks) {
    std::string f = base;
    for (size_t i = 0; i < parts.size(); ++i)
      if (p[i])
        f += " " + parts[i];
    f = std::regex_replace(f, std::regex(R"(\bIFACE\b)"), "eth0");
    f = std::regex_replace(f, std::regex(R"(\bN\b)"), "2");
    if (!file.empty())
      f = std::regex_replace(f, std::regex(R"(\bFILE\b)"), file);
    out.push_back(f);
  }
  return out;
}

bool has_word(const std::string &cmd, const std::string &word) {
  std::istringstream in(cmd);
  for (std::string w; in >> w;)
    if (w == word)
      return true;
  return false;
}

// Each line of `out` a JSON value; the values.
std::vector<json> json_lines(const std::string &out) {
  std::vector<json> v;
  std::istringstream in(out);
  for (std::string l; std::getline(in, l);) {
    if (trim(l).empty())
      continue;
    try {
      v.push_back(json::parse(l));
    } catch (const std::exception &e) {
      ADD_FAILURE() << "not JSON: " << l << " (" << e.what() << ")";
    }
  }
  return v;
}

// ---- the test's own view of the host ----------------------------------------

void must(bool ok, const std::string &what) {
  if (!ok)
    throw std::runtime_error(what + ": " + strerror(errno));
}

// The mounts below are this process's alone: the host's /etc, /var/lib, /run and bpffs
// are not touched, even when the test is killed.
class Host : public ::testing::Environment {
 public:
  void SetUp() override {
    must(unshare(CLONE_NEWNS) == 0, "unshare(CLONE_NEWNS)");
    must(mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) == 0, "make / private");
    must(mount("bpf", "/sys/fs/bpf", "bpf", 0, nullptr) == 0, "mount bpffs");
    must(mount("tmpfs", "/run", "tmpfs", 0, "mode=755") == 0, "mount /run");
    // /etc as the host has it, with writes (an /etc/bpfgate) kept in a tmpfs.
    fs::create_directories("/run/readme-etc/upper");
    fs::create_directories("/run/readme-etc/work");
    must(mount("overlay", "/etc", "overlay", 0,
               "lowerdir=/etc,upperdir=/run/readme-etc/upper,workdir=/run/readme-etc/work") == 0,
         "overlay /etc");
    fs::create_directories("/etc/bpfgate");
    // /var/lib the same way: the agent's state directory (/var/lib/bpfgate).
    fs::create_directories("/run/readme-varlib/upper");
    fs::create_directories("/run/readme-varlib/work");
    must(mount("overlay", "/var/lib", "overlay", 0,
               "lowerdir=/var/lib,upperdir=/run/readme-varlib/upper,workdir=/run/readme-varlib/"
               "work") == 0,
         "overlay /var/lib");
    // `bpfgate` as the README writes it: this build's binaries first on PATH.
    std::string path = fs::path(bpfgate_bin()).parent_path().string() + ":" + getenv("PATH");
    setenv("PATH", path.c_str(), 1);
    setenv("BUILD_DIR", fs::path(bpfgate_bin()).parent_path().c_str(), 1);
  }
};

const auto *g_host = ::testing::AddGlobalTestEnvironment(new Host);

// The gateway's namespace, its eth0 and a peer across the veth: 198.18.0.1/24
// and 2001:db8::1/64 on eth0, the peer .2 and ::2. No default route.
class ReadmeCommands : public ::testing::Test {
 protected:
  ReadmeCommands()
      : gw_(unique_prefix() + "rdgw"), peer_(unique_prefix() + "rdpe"), dir_(make_dir()) {}

  void SetUp() override {
    run_ok(fmt::format("ip link add eth0 netns {} type veth peer name peer0 netns {}", gw_.name(),
                       peer_.name()));
    for (const auto &[ns, dev, v4, v6] :
         {std::tuple{&gw_, "eth0", "198.18.0.1/24", "2001:db8::1/64"},
          std::tuple{&peer_, "peer0", "198.18.0.2/24", "2001:db8::2/64"}}) {
      run_ok(ns->exec() + fmt::format("ip addr add {} dev {}", v4, dev));
      run_ok(ns->exec() + fmt::format("ip addr add {} dev {} nodad", v6, dev));
      run_ok(ns->exec() + fmt::format("ip link set {} up", dev));
    }
  }

  static fs::path make_dir() {
    auto d = fs::temp_directory_path() / (unique_prefix() + "readme");
    fs::remove_all(d);
    fs::create_directories(d);
    return d;
  }
  ~ReadmeCommands() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  // A README command run in the gateway's namespace; it must exit 0.
  CmdResult gw(const std::string &cmd) {
    auto r = run(gw_.exec() + cmd);
    EXPECT_EQ(r.exit_code, 0) << "`" << cmd << "` failed:\n" << r.out << r.err;
    return r;
  }
  // A README command that runs until interrupted: started, left to run for
  // `for_` (or until its output holds `until`, when given), sent SIGINT; it
  // must exit 0 on it. Its standard output.
  std::string gw_until_interrupted(const std::string &cmd, std::chrono::milliseconds for_ = 2500ms,
                                   const std::string &until = "") {
    // A file of its own: in one left by the command before, `until` could be
    // found before this one's shell truncated it, and SIGINT sent before the
    // command set its handler (it died of it, and its output was the other's).
    auto out = dir_ / fmt::format("bg-{}.out", ++background_runs_);
    auto p = Process::spawn("exec " + gw_.exec() + cmd + " >" + out.string() + " 2>&1");
    if (until.empty())
      std::this_thread::sleep_for(for_);
    else
      within(for_, [&] { return contains(run("cat " + out.string()).out, until); });
    p.kill(SIGINT);
    int rc = p.wait(10s);
    std::ifstream in(out);
    std::string text((std::istreambuf_iterator<char>(in)), {});
    EXPECT_EQ(rc, 0) << "`" << cmd << "` did not exit 0 on SIGINT:\n" << text;
    return text;
  }
  void ping_from_peer() {
    run_ok(peer_.exec() + "ping -q -c 3 -i 0.2 -W 1 198.18.0.1 >/dev/null");
    run_ok(peer_.exec() + "ping -q -c 3 -i 0.2 -W 1 2001:db8::1 >/dev/null");
  }
  // The non-JSON forms print text; the JSON ones parse.
  void expect_output(const std::string &cmd, const std::string &out) {
    if (has_word(cmd, "-j")) {
      EXPECT_FALSE(json_lines(out).empty()) << "`" << cmd << "` printed no JSON";
    } else {
      EXPECT_FALSE(trim(out).empty()) << "`" << cmd << "` printed nothing";
    }
  }

  Netns gw_, peer_;
  fs::path dir_;
  int background_runs_ = 0;  // gw_until_interrupted's output files
};

// What each command the README shows is checked by. A command the README
// shows that is not here, or one here that it no longer shows, fails.
constexpr const char *kFamily = "(a family of commands)";
const std::map<std::string, std::string> kChecked = {
    {"scripts/demo.sh", "Demo"},
    {"scripts/test.sh", "CiRunsTheTestCommand"},
    {"BPFGATE_FUZZ_SECONDS=600 scripts/fuzz.sh config", "FuzzLonger"},
    {"bench/run xdp --json", "BenchXdp"},
    {"scripts/build-image.sh --save FILE", "BuildImage"},
    {"bench/run xdp", "BenchXdp"},
    {"bpfgate attach eth0 --rate 10000 --burst 20000", "UsingIt"},
    {"bpfgate set eth0 --rate 5000", "UsingIt"},
    {"bpfgate status [eth0] [-j]", "UsingIt"},
    {"bpfgate top [eth0] [-i 1] [-c N] [-n 20] [-j]", "UsingIt"},
    {"bpfgate upgrade eth0", "UsingIt"},
    {"bpfgate bypass eth0 on", "UsingIt"},
    {"bpfgate bypass eth0 off", "UsingIt"},
    {"bpfgate detach eth0", "UsingIt"},
    {"bpfgate check /etc/bpfgate/bpfgate.yaml", "TheAgent"},
    {"bpfgate run --config /etc/bpfgate/bpfgate.yaml", "TheAgent"},
    {"bpfgate reload", "TheAgent"},
    {"bpfgate block 198.51.100.0/24 --ttl 10m", "TheAgent"},
    {"bpfgate unblock 198.51.100.0/24", "TheAgent"},
    {"bpfgate list [-j]", "TheAgent"},
    {"bpfgate events [-j] [--iface IFACE] [-c N]", "TheAgent"},
    {"bpfgate top [IFACE] [--plain]", "TheAgent"},
    {"curl -s 127.0.0.1:9477/metrics", "TheAgent"},
    {"bpfgate events --direct", "TheAgent"},
    {"sysctl net.ipv4.tcp_syncookies=2", "TheAgent"},
    {"sysctl net.ipv4.tcp_timestamps=2", "TheAgent"},
    {"bpfgate tc attach eth0 --config FILE", "Tc"},
    {"bpfgate tc apply eth0 --config FILE", "Tc"},
    {"bpfgate tc disable mirror [eth0]", "Tc"},
    {"bpfgate tc status [eth0] [-j]", "Tc"},
    {"bpfgate class list [eth0] [-j]", "Tc"},
    {"bpfgate tc detach eth0", "Tc"},
    {"bpfgate accel enable --cgroup /sys/fs/cgroup/unified/gateway --ports 8080,9000-9010",
     "Accel"},
    {"bpfgate accel status", "Accel"},
    {"bpfgate -j accel status", "Accel"},
    {"bpfgate accel watch", "Accel"},
    {"bpfgate accel disable", "Accel"},
    // Also shown inline; the forms above run them.
    {"bpfgate status", "UsingIt"},
    {"bpfgate events", "TheAgent"},
    {"bpfgate lb list", "LbTraffic.TheReadmeCommandsWorkAsShown"},
    {"bpfgate -j lb list", "LbTraffic.TheReadmeCommandsWorkAsShown"},
    {"bpfgate lb drain web 198.18.12.2:80", "LbTraffic.TheReadmeCommandsWorkAsShown"},
    {"bpfgate lb weight web 198.18.11.2:80 300", "LbTraffic.TheReadmeCommandsWorkAsShown"},
    {"bpfgate lb add web 198.18.14.2:80 --weight 50", "LbTraffic.TheReadmeCommandsWorkAsShown"},
    {"bpfgate lb remove web 198.18.14.2:80", "LbTraffic.TheReadmeCommandsWorkAsShown"},
    // The fleet's etcd roles, run against a real etcd with its auth turned on.
    {"etcdctl user add root --new-user-password=\"$(cat root.password)\"",
     "FleetRoles.TheReadmeRoleSetupConfinesEachNode"},
    {"etcdctl role add bpfgate-gw-1", "FleetRoles.TheReadmeRoleSetupConfinesEachNode"},
    {"etcdctl role grant-permission bpfgate-gw-1 readwrite /bpfgate/blocks/gw-1/ --prefix",
     "FleetRoles.TheReadmeRoleSetupConfinesEachNode"},
    {"etcdctl role grant-permission bpfgate-gw-1 read /bpfgate/blocks/ --prefix",
     "FleetRoles.TheReadmeRoleSetupConfinesEachNode"},
    {"etcdctl user add gw-1 --new-user-password=\"$(cat gw-1.password)\"",
     "FleetRoles.TheReadmeRoleSetupConfinesEachNode"},
    {"etcdctl user grant-role gw-1 bpfgate-gw-1", "FleetRoles.TheReadmeRoleSetupConfinesEachNode"},
    {"etcdctl role add bpfgate-operator", "FleetRoles.TheReadmeRoleSetupConfinesEachNode"},
    {"etcdctl role grant-permission bpfgate-operator readwrite /bpfgate/blocks/ --prefix",
     "FleetRoles.TheReadmeRoleSetupConfinesEachNode"},
    {"etcdctl user add operator --new-user-password=\"$(cat operator.password)\"",
     "FleetRoles.TheReadmeRoleSetupConfinesEachNode"},
    {"etcdctl user grant-role operator bpfgate-operator",
     "FleetRoles.TheReadmeRoleSetupConfinesEachNode"},
    {"etcdctl auth enable", "FleetRoles.TheReadmeRoleSetupConfinesEachNode"},
    {"bpfgate fleet unblock 198.51.100.7 --user operator --password-file "
     "/etc/bpfgate/operator.password",
     "FleetRoles.AnOperatorUnblocksEverywhere"},
    {"bpfgate fleet never-block add 198.51.100.0/24 --user operator --password-file "
     "/etc/bpfgate/operator.password",
     "FleetRolesPair.OnlyAnOperatorWritesTheNeverBlockList"},
    {"bpfgate fleet never-block list", "FleetRolesPair.OnlyAnOperatorWritesTheNeverBlockList"},
    {"bpfgate fleet never-block remove 198.51.100.0/24 --user operator --password-file "
     "/etc/bpfgate/operator.password",
     "FleetRolesPair.OnlyAnOperatorWritesTheNeverBlockList"},
    // Names of command families (headings, prose): each must begin a command checked here.
    {"bpfgate tc", kFamily},
    {"bpfgate lb", kFamily},
    {"bpfgate class", kFamily},
    {"bpfgate accel", kFamily},
};

TEST(ReadmeFile, EveryCommandItShowsHasACheck) {
  std::set<std::string> seen;
  for (const auto &c : readme().commands) {
    seen.insert(c.text);
    EXPECT_TRUE(kChecked.count(c.text))
        << "README.md:" << c.line << ": `" << c.text
        << "` is run by no test: add it to kChecked in tests/integration/readme_test.cpp";
  }
  for (const auto &[cmd, test] : kChecked) {
    if (test != kFamily)
      continue;
    bool begins = false;
    for (const auto &[other, t] : kChecked)
      begins |= t != kFamily && other.rfind(cmd + " ", 0) == 0;
    EXPECT_TRUE(begins) << "`" << cmd << "` begins no command the README shows";
  }
  for (const auto &[cmd, test] : kChecked)
    EXPECT_TRUE(seen.count(cmd)) << "ReadmeCommands." << test << " checks `" << cmd
                                 << "`, which README.md no longer shows";
  EXPECT_GE(readme().yaml_blocks.size(), 2u);
}

// Running a fuzz target longer: the target is one scripts/fuzz.sh knows, the
// variable is the one it reads, and the test command runs the targets.
TEST(ReadmeFile, FuzzLonger) {
  const std::string &cmd = shown("BPFGATE_FUZZ_SECONDS=600 scripts/fuzz.sh config");
  std::string target = cmd.substr(cmd.rfind(' ') + 1);
  std::string var = cmd.substr(0, cmd.find('='));
  fs::path src(BPFGATE_SOURCE_DIR);
  auto listed = run_ok((src / "scripts/fuzz.sh").string() + " --list");
  EXPECT_TRUE(has_word(listed.out, target)) << "scripts/fuzz.sh --list:\n" << listed.out;
  auto text = [&](const char *name) {
    std::ifstream in(src / name);
    return std::string((std::istreambuf_iterator<char>(in)), {});
  };
  EXPECT_NE(text("scripts/fuzz.sh").find("${" + var + ":-"), std::string::npos)
      << "scripts/fuzz.sh does not read " << var;
  EXPECT_TRUE(
      std::regex_search(text("scripts/test.sh"), std::regex(R"((^|\n) *scripts/fuzz.sh\n)")))
      << "scripts/test.sh does not run scripts/fuzz.sh";
}

// The first command of the README's pair is CI's own entry point.
TEST(ReadmeFile, CiRunsTheTestCommand) {
  shown("scripts/test.sh");
  std::ifstream in(fs::path(BPFGATE_SOURCE_DIR) / ".ci/run");
  std::string ci((std::istreambuf_iterator<char>(in)), {});
  EXPECT_TRUE(std::regex_search(ci, std::regex(R"((^|\n)exec bash scripts/test.sh\n)")))
      << ".ci/run does not run scripts/test.sh:\n"
      << ci;
}

TEST_F(ReadmeCommands, UsingIt) {
  auto attach = gw(shown("bpfgate attach eth0 --rate 10000 --burst 20000"));
  EXPECT_TRUE(contains(attach.out, "native mode")) << attach.out;
  ping_from_peer();
  gw(shown("bpfgate set eth0 --rate 5000"));
  auto upgrade = gw(shown("bpfgate upgrade eth0"));
  EXPECT_TRUE(contains(upgrade.out, "eth0: program id ")) << upgrade.out;
  EXPECT_TRUE(contains(upgrade.out, "in place")) << upgrade.out;

  for (const auto &f : forms(shown("bpfgate status [eth0] [-j]"))) {
    auto r = gw(f);
    expect_output(f, r.out);
    EXPECT_TRUE(contains(r.out, "5000")) << f << ":\n" << r.out;
  }
  for (const auto &f : forms(shown("bpfgate top [eth0] [-i 1] [-c N] [-n 20] [-j]"))) {
    std::string out = has_word(f, "-c") ? gw(f).out : gw_until_interrupted(f, 5s, "198.18.0.2");
    expect_output(f, out);
    EXPECT_TRUE(contains(out, "198.18.0.2")) << f << ":\n" << out;
  }
  auto on = gw(shown("bpfgate bypass eth0 on"));
  EXPECT_TRUE(contains(on.out, "BYPASS on")) << on.out;
  EXPECT_TRUE(contains(gw("bpfgate status eth0").out, "*** BYPASS"));
  gw(shown("bpfgate bypass eth0 off"));
  EXPECT_FALSE(contains(gw("bpfgate status eth0").out, "BYPASS"));
  gw(shown("bpfgate detach eth0"));
  EXPECT_FALSE(fs::exists("/sys/fs/bpf/bpfgate/eth0"));
  EXPECT_FALSE(contains(run_ok(gw_.exec() + "ip link show eth0").out, "xdp"));
}

TEST_F(ReadmeCommands, TheAgent) {
  gw(shown("sysctl net.ipv4.tcp_syncookies=2"));
  EXPECT_EQ(trim(run_ok(gw_.exec() + "sysctl -n net.ipv4.tcp_syncookies").out), "2");
  gw(shown("sysctl net.ipv4.tcp_timestamps=2"));
  EXPECT_EQ(trim(run_ok(gw_.exec() + "sysctl -n net.ipv4.tcp_timestamps").out), "2");

  // The operator's config: the example from deploy/, and the same with the
  // observability section the README shows.
  fs::copy_file(fs::path(BPFGATE_SOURCE_DIR) / "deploy/bpfgate.yaml", "/etc/bpfgate/bpfgate.yaml");
  auto check = gw(shown("bpfgate check /etc/bpfgate/bpfgate.yaml"));
  const std::string *observe_yaml = nullptr;
  for (const auto &y : readme().yaml_blocks)
    if (y.rfind("metrics:", 0) == 0)
      observe_yaml = &y;
  ASSERT_NE(observe_yaml, nullptr) << "README.md has no observability YAML";
  {
    // The example without its own metrics/events/tcp_probes/services, then the README's.
    std::ifstream in(fs::path(BPFGATE_SOURCE_DIR) / "deploy/bpfgate.yaml");
    std::ofstream out(dir_ / "observe.yaml");
    bool skip = false;
    for (std::string l; std::getline(in, l);) {
      if (!l.empty() && l[0] != ' ' && l[0] != '#')
        skip = std::regex_search(l, std::regex("^(metrics|events|tcp_probes|services):"));
      if (!skip)
        out << l << "\n";
    }
    out << *observe_yaml;
  }
  run_ok(gw_.exec() + "bpfgate check " + (dir_ / "observe.yaml").string());

  auto agent_log = dir_ / "agent.log";
  auto agent = Process::spawn("exec " + gw_.exec() +
                              shown("bpfgate run --config /etc/bpfgate/bpfgate.yaml") + " >" +
                              agent_log.string() + " 2>&1");
  bool up = false;
  for (int i = 0; i < 100 && !up; ++i) {
    std::this_thread::sleep_for(100ms);
    up = fs::exists("/run/bpfgate/agent.sock") &&
         run(gw_.exec() + "curl -sf 127.0.0.1:9477/metrics >/dev/null").exit_code == 0;
  }
  ASSERT_TRUE(up) << "the agent did not come up:\n" << run("cat " + agent_log.string()).out;
  ping_from_peer();

  // Events: the -c forms wait for that many, which a block and an unblock give.
  std::vector<std::pair<std::string, Process>> waiting;
  int k = 0;
  for (const auto &f : forms(shown("bpfgate events [-j] [--iface IFACE] [-c N]"))) {
    if (!has_word(f, "-c"))
      continue;
    auto out = dir_ / fmt::format("events{}.out", k++);
    waiting.emplace_back(f, Process::spawn("exec " + gw_.exec() + f + " >" + out.string()));
  }
  std::this_thread::sleep_for(500ms);  // subscribed

  gw(shown("bpfgate block 198.51.100.0/24 --ttl 10m"));
  std::this_thread::sleep_for(1500ms);  // the agent reports manual blocks at its sweep (1s)
  for (const auto &f : forms(shown("bpfgate list [-j]"))) {
    auto r = gw(f);
    EXPECT_TRUE(contains(r.out, "198.51.100.0/24")) << f << ":\n" << r.out;
    expect_output(f, r.out);
  }
  gw(shown("bpfgate unblock 198.51.100.0/24"));
  for (const auto &f : forms(shown("bpfgate list [-j]")))
    EXPECT_FALSE(contains(gw(f).out, "198.51.100.0/24")) << f;
  run_ok(gw_.exec() + "bpfgate block 198.51.100.7 --ttl 1m");  // one more event
  k = 0;
  for (auto &[f, p] : waiting) {
    int rc = p.wait(10s);
    auto text = run("cat " + (dir_ / fmt::format("events{}.out", k++)).string()).out;
    EXPECT_EQ(rc, 0) << "`" << f << "` did not get its events:\n" << text;
    expect_output(f, text);
  }
  for (const auto &f : forms(shown("bpfgate events [-j] [--iface IFACE] [-c N]")))
    if (!has_word(f, "-c"))
      gw_until_interrupted(f, 1s);  // followed until stopped, nothing to print

  auto reloads = [&] {
    auto m = run_ok(gw_.exec() + "curl -s 127.0.0.1:9477/metrics").out;
    std::smatch s;
    return std::regex_search(m, s, std::regex(R"(bpfgate_agent_reloads_total(\{[^}]*\})? (\d+))"))
               ? std::stoi(s[2])
               : -1;
  };
  int before = reloads();
  gw(shown("bpfgate reload"));
  for (int i = 0; i < 50 && reloads() == before; ++i)
    std::this_thread::sleep_for(100ms);
  EXPECT_GT(reloads(), before) << "no reload counted";

  auto metrics = gw(shown("curl -s 127.0.0.1:9477/metrics")).out;
  EXPECT_TRUE(contains(metrics, "bpfgate_packets_total{")) << metrics;

  for (const auto &f : forms(shown("bpfgate top [IFACE] [--plain]"))) {
    auto out = gw_until_interrupted(f, 5s, "2001:db8::2");
    // 198.18.0.0/24 is allowed in the example: allowed sources have no entry.
    EXPECT_TRUE(contains(out, "2001:db8::2")) << f << ":\n" << out;
  }

  // keep_datapath (the example's): the filter outlives the agent, and its
  // events are read from the pinned buffers.
  agent.kill(SIGTERM);
  EXPECT_EQ(agent.wait(15s), 0) << run("cat " + agent_log.string()).out;
  gw_until_interrupted(shown("bpfgate events --direct"), 1s);
  gw(shown("bpfgate detach eth0"));
}

TEST_F(ReadmeCommands, Tc) {
  const std::string *tc_yaml = nullptr;
  for (const auto &y : readme().yaml_blocks)
    if (y.rfind("tc:", 0) == 0)
      tc_yaml = &y;
  ASSERT_NE(tc_yaml, nullptr) << "README.md has no tc YAML";
  auto file = dir_ / "tc.yaml";
  std::ofstream(file) << *tc_yaml;
  // The config mirrors to mon0: an interface of the gateway's namespace (a
  // veth: this kernel may have no dummy driver).
  run_ok(gw_.exec() + "ip link add mon0 type veth peer name mon0peer");
  run_ok(gw_.exec() + "ip link set mon0 up");
  run_ok(gw_.exec() + "ip link set mon0peer up");

  gw(forms(shown("bpfgate tc attach eth0 --config FILE"), file)[0]);
  EXPECT_TRUE(fs::exists("/sys/fs/bpf/bpfgate-tc/eth0"));
  EXPECT_TRUE(contains(run_ok(gw_.exec() + "tc qdisc show dev eth0").out, "htb"));
  gw(forms(shown("bpfgate tc apply eth0 --config FILE"), file)[0]);
  ping_from_peer();
  for (const auto &f : forms(shown("bpfgate tc disable mirror [eth0]")))
    gw(f);
  for (const auto &f : forms(shown("bpfgate tc status [eth0] [-j]"))) {
    auto r = gw(f);
    expect_output(f, r.out);
    EXPECT_TRUE(contains(r.out, "mirror")) << f << ":\n" << r.out;
  }
  for (const auto &f : forms(shown("bpfgate class list [eth0] [-j]"))) {
    auto r = gw(f);
    expect_output(f, r.out);
    EXPECT_TRUE(contains(r.out, "api") && contains(r.out, "bulk")) << f << ":\n" << r.out;
  }
  gw(shown("bpfgate tc detach eth0"));
  EXPECT_FALSE(fs::exists("/sys/fs/bpf/bpfgate-tc/eth0"));
  EXPECT_FALSE(contains(run_ok(gw_.exec() + "tc qdisc show dev eth0").out, "htb"));
}

TEST_F(ReadmeCommands, Accel) {
  // A cgroup v2 hierarchy where the README's path puts it (hybrid layouts),
  // with the gateway's cgroup in it.
  ASSERT_EQ(mount("tmpfs", "/sys/fs/cgroup", "tmpfs", 0, "mode=755"), 0) << strerror(errno);
  fs::create_directory("/sys/fs/cgroup/unified");
  ASSERT_EQ(mount("none", "/sys/fs/cgroup/unified", "cgroup2", 0, nullptr), 0) << strerror(errno);
  std::error_code ec;
  fs::create_directory("/sys/fs/cgroup/unified/gateway", ec);
  struct Cleanup {
    ~Cleanup() {
      rmdir("/sys/fs/cgroup/unified/gateway");
      umount2("/sys/fs/cgroup/unified", MNT_DETACH);
      umount2("/sys/fs/cgroup", MNT_DETACH);
    }
  } cleanup;

  gw(shown("bpfgate accel enable --cgroup /sys/fs/cgroup/unified/gateway --ports 8080,9000-9010"));
  EXPECT_TRUE(fs::exists("/sys/fs/bpf/bpfgate-accel"));
  auto status = gw(shown("bpfgate accel status"));
  EXPECT_FALSE(trim(status.out).empty());
  auto j = json_lines(gw(shown("bpfgate -j accel status")).out);
  ASSERT_EQ(j.size(), 1u);
  EXPECT_TRUE(contains(j[0].dump(), "8080")) << j[0].dump();
  gw_until_interrupted(shown("bpfgate accel watch"), 1500ms);
  gw(shown("bpfgate accel disable"));
  EXPECT_FALSE(fs::exists("/sys/fs/bpf/bpfgate-accel"));
}

TEST(ReadmeScripts, Demo) {
  // As written, from the repository (it runs its own namespaces, bgdemo-*).
  auto r = run(fmt::format("cd {} && {}", BPFGATE_SOURCE_DIR, shown("scripts/demo.sh")));
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  // It reports what bpfgate dropped of the attacker's flood (some) and of the client's.
  std::smatch m;
  ASSERT_TRUE(std::regex_search(
      r.out, m, std::regex(R"(attacker +198\.18\.0\.66 +(\d+) packets +(\d+) dropped)")))
      << r.out << r.err;
  EXPECT_GT(std::stoull(m[2]), 0u) << r.out;
}

// The image build takes minutes and Debian's archive (it is run by hand:
// deploy/kubernetes/README.md has its figures); here, cheaply, the script
// parses, runs, and documents every option the README gives it.
TEST(ReadmeScripts, BuildImage) {
  const std::string &cmd = shown("scripts/build-image.sh --save FILE");
  auto script = fs::path(BPFGATE_SOURCE_DIR) / "scripts/build-image.sh";
  EXPECT_EQ(run("bash -n " + script.string()).exit_code, 0);
  auto help = run(script.string() + " --help");
  ASSERT_EQ(help.exit_code, 0) << help.err;
  std::istringstream words(cmd);
  for (std::string w; words >> w;) {
    if (w.starts_with("--")) {
      EXPECT_TRUE(contains(help.out, w)) << w << " is not in " << script << " --help:\n"
                                         << help.out;
    }
  }
  EXPECT_EQ(run(script.string() + " --no-such-option").exit_code, 2);
}

// The benchmark as written, with the arguments it documents for fewer
// repetitions appended (all of it takes minutes: a benchmark, not a test):
// every case runs and reports its figure beside its references (the JSON form;
// the table's form with one case, the cases' set-up being most of the time).
TEST(ReadmeScripts, BenchXdp) {
  for (const auto &cmd : {shown("bench/run xdp --json"), shown("bench/run xdp")}) {
    auto r = run(fmt::format("cd {} && {} --runs 1 --target-ms 10{}", BPFGATE_SOURCE_DIR, cmd,
                             has_word(cmd, "--json") ? "" : " --case policy_known_under"));
    ASSERT_EQ(r.exit_code, 0) << cmd << ":\n" << r.out << r.err;
    if (has_word(cmd, "--json")) {
      auto lines = json_lines(r.out);
      EXPECT_GE(lines.size(), 5u) << r.out;
    } else {
      EXPECT_FALSE(trim(r.out).empty());
    }
  }
}

}  // namespace
}  // namespace bpfgate::test
