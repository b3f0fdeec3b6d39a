// `bpfgate accel`: what enable leaves pinned and attached, what status says,
// that disable from another process removes it all, and every error: a clear
// message, the right exit code (1 failure, 2 usage) and nothing left behind.
#include <sys/stat.h>

#include <gtest/gtest.h>

#include <filesystem>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "integration/accel_support.hpp"

namespace bpfgate::test {
namespace {

using nlohmann::json;
namespace fs = std::filesystem;

constexpr const char *kPins[] = {"sockops_link", "sockops_prog", "msg_prog", "sockets",
                                 "config",       "counters",     "ports",    "addresses",
                                 "sk_state",     "congested"};

void expect_failure(const CmdResult &r, int code, const std::string &message) {
  EXPECT_EQ(r.exit_code, code) << r.out << r.err;
  EXPECT_TRUE(contains(r.err, message)) << "stderr: " << r.err;
}

void expect_nothing_pinned(const accel::Accel &acc) {
  EXPECT_FALSE(fs::exists(acc.pin_dir())) << "left behind: " << acc.pin_dir();
}

class AccelCli : public ::testing::Test {
 protected:
  Netns ns{accel::name("c")};
  accel::Cgroup cg{"cli"};
  accel::Accel acc{ns, cg};
};

TEST_F(AccelCli, EnableStatusDisableFromSeparateProcesses) {
  auto off = acc.cli("accel status");
  EXPECT_EQ(off.exit_code, 0) << off.err;
  EXPECT_EQ(off.out, "socket acceleration is off\n");
  EXPECT_EQ(acc.status()["state"], "off");

  auto en = acc.cli(
      fmt::format("accel enable --cgroup {} --ports 8080,9000-9002 --addresses 127.0.0.0/8,::1 "
                  "--max-sockets 1024",
                  cg.path()));
  ASSERT_EQ(en.exit_code, 0) << en.err;
  EXPECT_TRUE(contains(en.out, "socket acceleration enabled on cgroup " + cg.path())) << en.out;
  EXPECT_TRUE(contains(en.out, "ports 8080,9000-9002")) << en.out;

  struct stat st {};
  ASSERT_EQ(stat(acc.pin_dir().c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);
  for (const char *pin : kPins) {
    ASSERT_EQ(stat((acc.pin_dir() + "/" + pin).c_str(), &st), 0) << pin;
    EXPECT_EQ(st.st_mode & 0777, 0600u) << pin;
  }
  auto s = acc.status();
  EXPECT_EQ(s["state"], "enabled");
  EXPECT_EQ(s["cgroup"], cg.path());
  EXPECT_EQ(s["ports"], json({8080, 9000, 9001, 9002}));
  EXPECT_EQ(s["addresses"], json({"::1/128", "127.0.0.0/8"}));
  EXPECT_EQ(s["max_sockets"], 1024);
  EXPECT_EQ(s["sockets"], 0);
  EXPECT_NE(s["sockops_prog_id"], 0);
  EXPECT_NE(s["msg_prog_id"], 0);

  // The enabling process is gone; the program is attached to the cgroup.
  auto show = run_ok("bpftool -j cgroup show " + cg.path());
  EXPECT_TRUE(contains(show.out, "\"cgroup_sock_ops\"")) << show.out;
  EXPECT_TRUE(contains(show.out, fmt::format("\"id\":{}", s["sockops_prog_id"].get<int>())))
      << show.out;
  auto text = acc.cli("accel status");
  EXPECT_TRUE(contains(text.out, "socket acceleration: enabled  cgroup " + cg.path())) << text.out;
  EXPECT_TRUE(contains(text.out, "ports 8080,9000-9002")) << text.out;

  auto watch = acc.cli("-j accel watch -c 2 -i 0.05");
  EXPECT_EQ(watch.exit_code, 0) << watch.err;
  EXPECT_EQ(
      watch.out,
      "{\"max_unread\":0,\"newly_marked\":0,\"over_limit\":0,\"released\":0,\"sockets\":0}\n"
      "{\"max_unread\":0,\"newly_marked\":0,\"over_limit\":0,\"released\":0,\"sockets\":0}\n");

  expect_failure(acc.cli("accel enable --cgroup " + cg.path()), 1,
                 "socket acceleration is already enabled (cgroup " + cg.path() +
                     "); run `bpfgate accel disable` first");

  auto dis = acc.cli("accel disable");
  EXPECT_EQ(dis.exit_code, 0) << dis.err;
  EXPECT_TRUE(contains(dis.out, "socket acceleration disabled; 0 sockets released")) << dis.out;
  expect_nothing_pinned(acc);
  show = run_ok("bpftool -j cgroup show " + cg.path());
  EXPECT_FALSE(contains(show.out, "sock_ops")) << show.out;
  expect_failure(acc.cli("accel disable"), 1, "socket acceleration is not enabled");
  expect_failure(acc.cli("accel watch -c 1"), 1, "socket acceleration is not enabled");
}

TEST_F(AccelCli, CgroupGivenAsAPathInsideTheHierarchy) {
  std::string rel = cg.path().substr(cg.path().rfind('/'));  // "/bgacc...cli"
  auto r = acc.cli("-j accel enable --cgroup " + rel);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(json::parse(r.out)["cgroup"], cg.path());
  ASSERT_EQ(acc.cli("accel disable").exit_code, 0);
  r = acc.cli("-j accel enable --cgroup " + rel.substr(1) + " --ports 1");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(json::parse(r.out)["cgroup"], cg.path());
  ASSERT_EQ(acc.cli("accel disable").exit_code, 0);
  expect_nothing_pinned(acc);
}

TEST_F(AccelCli, ErrorsSayWhatWentWrongAndLeaveNothing) {
  std::string nobody = "setpriv --reuid=65534 --regid=65534 --clear-groups ";
  auto r = run(ns.exec() + nobody + bpfgate_bin() + " accel enable --cgroup " + cg.path());
  expect_failure(r, 1, "bpfgate accel needs root");
  EXPECT_TRUE(contains(r.err, "sudo")) << r.err;
  expect_failure(run(ns.exec() + nobody + bpfgate_bin() + " accel disable"), 1, "");
  expect_nothing_pinned(acc);

  expect_failure(acc.cli("accel enable --cgroup " + accel::name("-nosuch")), 1, "does not exist");
  expect_failure(acc.cli("accel enable --cgroup /sys/fs/cgroup/cpu"), 1,
                 "/sys/fs/cgroup/cpu is not a cgroup v2 directory");
  expect_failure(acc.cli("accel disable"), 1,
                 "socket acceleration is not enabled (nothing pinned under " + acc.pin_dir() +
                     "); enable it with `bpfgate accel enable`");
  expect_nothing_pinned(acc);

  // Usage errors: exit 2, nothing done.
  for (const auto &[args, msg] : std::vector<std::pair<std::string, std::string>>{
           {"--ports 0", "'0' in port list '0' is not a port (1-65535)"},
           {"--ports 80,70000", "'70000' in port list '80,70000' is not a port"},
           {"--ports 80,http", "'http' in port list"},
           {"--ports 9000-8000", "is a range that ends before it starts"},
           {"--addresses 10.0.0.1/33", "bad prefix length"},
           {"--addresses 10.0.0.1/8", "host bits set"},
           {"--max-sockets 0", "--max-sockets"},
       })
    expect_failure(acc.cli("accel enable --cgroup " + cg.path() + " " + args), 2, msg);
  expect_failure(acc.cli("accel"), 2, "");
  expect_failure(acc.cli("accel frobnicate"), 2, "");
  expect_nothing_pinned(acc);

  // No cgroup v2 at all: in a mount namespace of its own, unmount every one.
  r =
      run("unshare -m --propagation private sh -c 'for m in $(awk \"\\$3 == \\\"cgroup2\\\" "
          "{print \\$2}\" /proc/self/mounts); do umount $m || exit 9; done; " +
          ns.exec() + bpfgate_bin() + " accel enable'");
  expect_failure(r, 1, "no cgroup v2 hierarchy is mounted");
  EXPECT_TRUE(contains(r.err, "mount -t cgroup2")) << r.err;
  expect_nothing_pinned(acc);
}

}  // namespace
}  // namespace bpfgate::test
