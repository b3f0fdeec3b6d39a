// The audit log, from the real binary: every attach, detach, block, unblock
// and reload is one "audit: action=..." line on stderr naming who asked and,
// where a config is involved, its hash; and pins someone else made or opened
// up are refused, not used.
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <sstream>
#include <thread>
#include <vector>

#include <fmt/format.h>

#include "core/config.hpp"
#include "support/agent.hpp"
#include "support/topology.hpp"

namespace bpfgate::test {
namespace {

using namespace std::chrono_literals;
using Fields = std::map<std::string, std::string>;

// The fields of one audit line ("audit: action=A k=v k=\"v w\" ..."), values
// unquoted; nullopt when `line` is not an audit line or does not parse.
std::optional<Fields> parse_audit(const std::string &line) {
  const std::string head = "audit: ";
  if (line.rfind(head, 0) != 0)
    return std::nullopt;
  Fields f;
  size_t at = head.size();
  while (at < line.size()) {
    size_t eq = line.find('=', at);
    if (eq == std::string::npos)
      return std::nullopt;
    std::string key = line.substr(at, eq - at), value;
    at = eq + 1;
    if (at < line.size() && line[at] == '"') {
      for (at++; at < line.size() && line[at] != '"'; at++) {
        if (line[at] == '\\' && at + 1 < line.size())
          at++;  // keeps \n etc. as the letter; enough to compare plain values
        value += line[at];
      }
      if (at == line.size())
        return std::nullopt;  // unterminated quote
      at++;
    } else {
      size_t sp = line.find(' ', at);
      value = line.substr(at, sp == std::string::npos ? std::string::npos : sp - at);
      at = sp == std::string::npos ? line.size() : sp;
    }
    if (at < line.size() && line[at++] != ' ')
      return std::nullopt;
    f[key] = value;
  }
  return f;
}

// Every audit line of `text` whose action is `action`.
std::vector<Fields> audits(const std::string &text, const std::string &action) {
  std::vector<Fields> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    auto f = parse_audit(line);
    if (f && (*f)["action"] == action)
      out.push_back(*f);
  }
  return out;
}

// The one audit line of `action` in `text` (a test failure if not exactly one).
Fields one_audit(const std::string &text, const std::string &action) {
  auto all = audits(text, action);
  EXPECT_EQ(all.size(), 1u) << "audit lines of action=" << action << " in:\n" << text;
  return all.empty() ? Fields{} : all.front();
}

bool starts_with(const std::string &s, const std::string &prefix) {
  return s.rfind(prefix, 0) == 0;
}

TEST(AuditParse, TheTestsParserReadsTheFormat) {
  auto f = parse_audit(R"(audit: action=block path="/a b/\"c\"" by=cli,uid:0,pid:7)");
  ASSERT_TRUE(f);
  EXPECT_EQ((*f)["action"], "block");
  EXPECT_EQ((*f)["path"], "/a b/\"c\"");
  EXPECT_EQ((*f)["by"], "cli,uid:0,pid:7");
  EXPECT_FALSE(parse_audit("eth0: blocked 10.0.0.1/32"));
}

// The CLI acting directly: each change is audited as cli,uid:0,pid:N with
// what it changed; reading commands (status, list) audit nothing.
TEST(AuditCli, AttachBlockUnblockDetachAreAuditedWithWhoAndWhat) {
  GatewayPair t;
  auto at = t.bpfgate("attach " + t.gw_if() + " --mode native --rate 500 --burst 50");
  ASSERT_EQ(at.exit_code, 0) << at.err;
  auto a = one_audit(at.err, "attach");
  EXPECT_EQ(a["iface"], t.gw_if());
  EXPECT_EQ(a["mode"], "native");
  EXPECT_EQ(a["prog_id"], std::to_string(t.xdp_prog_id()));
  EXPECT_EQ(a["rate"], "500");
  EXPECT_EQ(a["burst"], "50");
  EXPECT_TRUE(starts_with(a["by"], "cli,uid:0,pid:")) << a["by"];
  EXPECT_EQ(a.count("config"), 0u) << "no config is involved";

  auto st = t.bpfgate("status " + t.gw_if());
  EXPECT_EQ(st.exit_code, 0) << st.err;
  EXPECT_FALSE(contains(st.err, "audit:")) << st.err;

  auto b = t.bpfgate("block 198.18.7.0/24 --ttl 30s --iface " + t.gw_if());
  ASSERT_EQ(b.exit_code, 0) << b.err;
  auto bl = one_audit(b.err, "block");
  EXPECT_EQ(bl["iface"], t.gw_if());
  EXPECT_EQ(bl["prefix"], "198.18.7.0/24");
  EXPECT_EQ(bl["ttl"], "30s");
  EXPECT_EQ(bl["reason"], "manual");
  EXPECT_TRUE(starts_with(bl["by"], "cli,uid:0,pid:")) << bl["by"];

  auto u = t.bpfgate("unblock 198.18.7.0/24 --iface " + t.gw_if());
  ASSERT_EQ(u.exit_code, 0) << u.err;
  auto ub = one_audit(u.err, "unblock");
  EXPECT_EQ(ub["prefix"], "198.18.7.0/24");
  EXPECT_EQ(ub["iface"], t.gw_if());
  // Nothing removed, nothing audited.
  auto again = t.bpfgate("unblock 198.18.7.0/24 --iface " + t.gw_if());
  EXPECT_EQ(again.exit_code, 1);
  EXPECT_TRUE(audits(again.err, "unblock").empty()) << again.err;

  auto d = t.bpfgate("detach " + t.gw_if());
  ASSERT_EQ(d.exit_code, 0) << d.err;
  auto de = one_audit(d.err, "detach");
  EXPECT_EQ(de["iface"], t.gw_if());
  EXPECT_TRUE(starts_with(de["by"], "cli,uid:0,pid:")) << de["by"];
  EXPECT_EQ(t.xdp_prog_id(), 0u);
}

// The agent: its own attach at start (by=agent), a reload through the
// control socket (the peer's uid and pid), a SIGHUP and a SIGTERM (the
// sender's), a refused reload; each with the hash of the config in force.
class AuditAgent : public ::testing::Test {
 protected:
  std::string config_path() const { return agent_.config(); }
  std::string socket_path() const { return agent_.socket(); }
  void write_config(const std::string &body) {
    std::ofstream(config_path()) << fmt::format(
        "interfaces: [{{name: {}, mode: native}}]\nagent: {{control_socket: {}, state_dir: {}}}\n"
        "metrics: {{listen: off}}\n{}",
        t_.gw_if(), socket_path(), dir_.string(), body);
  }
  // The hash the agent reports for the config file as it is now.
  std::string config_hash() const {
    auto c = core::load_config(config_path());
    EXPECT_TRUE(c) << c.error().what();
    return c ? c->hash : "";
  }
  // Up once it says it runs (a reload would be audited).
  void start_agent() {
    if (!agent_.start(t_.gw().exec() + bpfgate_bin(), "", AgentProcess::Ready::says_running))
      FAIL() << "the agent did not come up: " << agent_log();
  }
  std::string agent_log() const { return agent_.log(); }
  // Waits (up to 5 s) for the agent's log to hold `n` audit lines of `action`.
  std::vector<Fields> wait_audits(const std::string &action, size_t n) const {
    for (int i = 0; i < 100; i++) {
      auto all = audits(agent_log(), action);
      if (all.size() >= n)
        return all;
      std::this_thread::sleep_for(50ms);
    }
    ADD_FAILURE() << "fewer than " << n << " action=" << action << " lines:\n" << agent_log();
    return audits(agent_log(), action);
  }

  GatewayPair t_;
  ScratchDir dir_{unique_prefix() + "-audit"};
  AgentProcess agent_{dir_.path()};
};

TEST_F(AuditAgent, StartReloadSighupRefusalAndStopAreAudited) {
  write_config("limits: {rate: 100, burst: 100}\n");
  std::string h1 = config_hash();
  ASSERT_EQ(h1.size(), 16u);
  start_agent();
  std::string self = fmt::format("uid:0,pid:{}", getpid());

  auto at = wait_audits("attach", 1);
  ASSERT_EQ(at.size(), 1u);
  EXPECT_EQ(at[0]["iface"], t_.gw_if());
  EXPECT_EQ(at[0]["mode"], "native");
  EXPECT_EQ(at[0]["prog_id"], std::to_string(t_.xdp_prog_id()));
  EXPECT_EQ(at[0]["by"], "agent");
  EXPECT_EQ(at[0]["config"], h1);
  auto ap = wait_audits("apply", 1);
  EXPECT_EQ(ap[0]["by"], "agent");
  EXPECT_EQ(ap[0]["ifaces"], t_.gw_if());
  EXPECT_EQ(ap[0]["path"], config_path());
  EXPECT_EQ(ap[0]["config"], h1);

  // Through the control socket: the client's uid and pid, the new hash.
  write_config("limits: {rate: 200, burst: 200}\n");
  std::string h2 = config_hash();
  ASSERT_NE(h2, h1);
  auto r = run(bpfgate_bin() + " reload --socket " + socket_path());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto rl = wait_audits("reload", 1);
  EXPECT_EQ(rl[0]["result"], "ok");
  EXPECT_EQ(rl[0]["path"], config_path());
  EXPECT_EQ(rl[0]["config"], h2);
  EXPECT_TRUE(starts_with(rl[0]["by"], "uid:0,pid:")) << rl[0]["by"];
  EXPECT_NE(rl[0]["by"], self) << "the client's pid, not the test's";
  EXPECT_EQ(wait_audits("apply", 2)[1]["by"], rl[0]["by"]);
  EXPECT_EQ(audits(agent_log(), "attach").size(), 1u) << "a reload re-attached";

  // SIGHUP: the sender is this test.
  write_config("limits: {rate: 300, burst: 300}\n");
  std::string h3 = config_hash();
  agent_->kill(SIGHUP);
  rl = wait_audits("reload", 2);
  ASSERT_EQ(rl.size(), 2u);
  EXPECT_EQ(rl[1]["by"], "SIGHUP," + self);
  EXPECT_EQ(rl[1]["result"], "ok");
  EXPECT_EQ(rl[1]["config"], h3);

  // A refused reload is audited too, with the config still in force.
  std::ofstream(config_path()) << "interfaces: [\n";
  r = run(bpfgate_bin() + " reload --socket " + socket_path());
  EXPECT_EQ(r.exit_code, 1);
  rl = wait_audits("reload", 3);
  ASSERT_EQ(rl.size(), 3u);
  EXPECT_EQ(rl[2]["result"], "refused");
  EXPECT_FALSE(rl[2]["error"].empty());
  EXPECT_EQ(rl[2]["config"], h3);

  // SIGTERM detaches, as this test asked.
  agent_->kill(SIGTERM);
  EXPECT_EQ(agent_->wait(5000ms), 0) << agent_log();
  auto de = one_audit(agent_log(), "detach");
  EXPECT_EQ(de["iface"], t_.gw_if());
  EXPECT_EQ(de["by"], "SIGTERM," + self);
  // Every audit line the agent wrote parses as the format says.
  std::istringstream in(agent_log());
  for (std::string line; std::getline(in, line);) {
    if (starts_with(line, "audit:")) {
      EXPECT_TRUE(parse_audit(line)) << line;
    }
  }
}

// Opening a pin under bpfgate's directory: one opened up to group or other,
// or owned by another user, is refused with its path, mode and owner.
TEST(AuditPins, PinsWithOtherModesOrOwnersAreRefused) {
  GatewayPair t;
  ASSERT_EQ(t.bpfgate("attach " + t.gw_if()).exit_code, 0);
  std::string pin;
  for (const auto &e : std::filesystem::directory_iterator(t.pin_dir()))
    if (e.is_regular_file() && e.path().filename() == "config")
      pin = e.path().string();
  ASSERT_FALSE(pin.empty()) << "no config map pinned in " << t.pin_dir();
  // Put the pin back whatever happens, so that cleanup can detach.
  struct Restore {
    std::string path;
    ~Restore() {
      (void)!chown(path.c_str(), 0, 0);
      chmod(path.c_str(), 0600);
    }
  } restore{pin};
  EXPECT_EQ(t.bpfgate("status " + t.gw_if()).exit_code, 0);

  ASSERT_EQ(chmod(pin.c_str(), 0644), 0);
  auto r = t.bpfgate("status " + t.gw_if());
  EXPECT_EQ(r.exit_code, 1) << r.out;
  EXPECT_TRUE(contains(r.err, "refusing pinned object " + pin + ": mode 0644, owner uid 0"))
      << r.err;
  r = t.bpfgate("block 198.18.0.99 --iface " + t.gw_if());
  EXPECT_EQ(r.exit_code, 1) << "blocked through a pin others may write";
  EXPECT_TRUE(contains(r.err, "refusing pinned object " + pin)) << r.err;

  ASSERT_EQ(chmod(pin.c_str(), 0600), 0);
  ASSERT_EQ(chown(pin.c_str(), 65534, 65534), 0);
  r = t.bpfgate("status " + t.gw_if());
  EXPECT_EQ(r.exit_code, 1) << r.out;
  EXPECT_TRUE(contains(r.err, "refusing pinned object " + pin + ": mode 0600, owner uid 65534"))
      << r.err;

  ASSERT_EQ(chown(pin.c_str(), 0, 0), 0);
  EXPECT_EQ(t.bpfgate("status " + t.gw_if()).exit_code, 0);
}

}  // namespace
}  // namespace bpfgate::test
