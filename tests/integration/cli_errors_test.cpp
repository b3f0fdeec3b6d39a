// Every bad input of the CLI: a clear message, a non-zero exit, and nothing
// left behind (no pins, no program on the link, the running state unchanged).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "support/topology.hpp"

namespace bpfgate::test {
namespace {

using nlohmann::json;

// Nothing of bpfgate on the gateway interface.
void expect_clean(const GatewayPair &t) {
  EXPECT_FALSE(std::filesystem::exists(t.pin_dir())) << "pins left under " << t.pin_dir();
  EXPECT_EQ(t.xdp_prog_id(), 0u) << "an XDP program was left on " << t.gw_if();
}

void expect_failure(const CmdResult &r, const std::string &message) {
  EXPECT_EQ(r.exit_code, 1) << r.out << r.err;
  EXPECT_TRUE(contains(r.err, message)) << "stderr: " << r.err;
  EXPECT_TRUE(contains(r.err, "error: ")) << r.err;
}

// Global flags go before or after the subcommand (the README shows them
// after); an option no one knows is still a usage error.
TEST(CliErrors, GlobalFlagsBeforeOrAfterTheSubcommand) {
  GatewayPair t;
  ASSERT_EQ(t.bpfgate("attach " + t.gw_if()).exit_code, 0);
  for (const std::string &args : {"status " + t.gw_if() + " -j", "-j status " + t.gw_if(),
                                  "list --iface " + t.gw_if() + " -j"}) {
    auto r = t.bpfgate(args);
    EXPECT_EQ(r.exit_code, 0) << args << ": " << r.err;
    EXPECT_FALSE(json::parse(r.out, nullptr, false).is_discarded()) << args << ": " << r.out;
  }
  EXPECT_EQ(t.bpfgate("status " + t.gw_if() + " --nosuch").exit_code, 2);
  EXPECT_EQ(t.bpfgate("status " + t.gw_if() + " extra").exit_code, 2);
}

TEST(CliErrors, UnknownInterface) {
  GatewayPair t;
  expect_failure(t.bpfgate("attach nosuch0"),
                 "no interface 'nosuch0' in this network namespace (see `ip link`)");
  EXPECT_FALSE(std::filesystem::exists("/sys/fs/bpf/bpfgate/nosuch0"));
  expect_failure(t.bpfgate("attach " + std::string(20, 'x')), "is not a valid interface name");
  expect_clean(t);
}

// A name that cannot be an interface is refused by every command that takes
// one, before it becomes a pin path (`detach ..` once named bpffs's root).
TEST(CliErrors, NamesThatCannotBeInterfaces) {
  GatewayPair t;
  ASSERT_EQ(t.bpfgate("attach " + t.gw_if()).exit_code, 0);
  for (const std::string &args :
       {std::string("detach .."), std::string("detach ."), std::string("status ../x"),
        std::string("set a/b --rate 5"), std::string("top 'a b' -c 1"), std::string("tc detach .."),
        std::string("list --iface ..")}) {
    auto r = t.bpfgate(args);
    expect_failure(r, "interface name");
  }
  // With -j the error is one JSON object on stderr, a config's lines apart.
  auto j = t.bpfgate("detach .. -j");
  EXPECT_EQ(j.exit_code, 1);
  auto err = json::parse(j.err, nullptr, false);
  ASSERT_FALSE(err.is_discarded()) << j.err;
  EXPECT_TRUE(contains(err.value("error", ""), "is not a valid interface name")) << j.err;
  std::ofstream("/tmp/" + t.gw_if() + "-bad.yaml") << "interfaces: []\n";
  auto c = run(bpfgate_bin() + " -j check /tmp/" + t.gw_if() + "-bad.yaml");
  std::filesystem::remove("/tmp/" + t.gw_if() + "-bad.yaml");
  err = json::parse(c.err, nullptr, false);
  ASSERT_FALSE(err.is_discarded()) << c.err;
  ASSERT_EQ(err["details"].size(), 1u) << c.err;
  EXPECT_TRUE(contains(err["details"][0].get<std::string>(), "-bad.yaml:1: interfaces is empty"));
  auto esc = t.bpfgate("detach \"$(printf 'a\\033[2Jb')\"");
  expect_failure(esc, "a\\x1b[2Jb");
  EXPECT_EQ(esc.err.find('\x1b'), std::string::npos) << "a control character reached stderr";
  EXPECT_TRUE(std::filesystem::exists(t.pin_dir())) << "the filter's pins are gone";
  EXPECT_NE(t.xdp_prog_id(), 0u);
  EXPECT_EQ(t.bpfgate("detach " + t.gw_if()).exit_code, 0);
}

TEST(CliErrors, NotRootOrMissingCapabilities) {
  GatewayPair t;
  auto as_nobody = run(t.gw().exec() + "setpriv --reuid=65534 --regid=65534 --clear-groups " +
                       bpfgate_bin() + " attach " + t.gw_if());
  expect_failure(as_nobody, "bpfgate needs root, or CAP_BPF (or CAP_SYS_ADMIN) and CAP_NET_ADMIN");
  EXPECT_TRUE(contains(as_nobody.err, "sudo")) << as_nobody.err;
  expect_clean(t);
  auto no_net_admin =
      run(t.gw().exec() + "setpriv --inh-caps=-net_admin --bounding-set=-net_admin " +
          bpfgate_bin() + " attach " + t.gw_if());
  expect_failure(no_net_admin, "CAP_NET_ADMIN");
  expect_clean(t);
}

TEST(CliErrors, BpffsNotMounted) {
  GatewayPair t;
  std::string dir = "/tmp/" + unique_prefix() + "-notbpffs";
  std::filesystem::create_directories(dir);
  auto r = t.bpfgate("--bpffs " + dir + " attach " + t.gw_if());
  std::filesystem::remove_all(dir);
  expect_failure(r, dir + " is not a bpffs mount; mount one with `mount -t bpf bpf " + dir + "`");
  expect_clean(t);

  // At the default place, bpfgate mounts bpffs itself (here in a private mount
  // namespace whose /sys/fs/bpf is empty, so the machine's pins are untouched).
  auto m = run(t.gw().exec() +
               "unshare --mount --propagation private sh -c 'umount /sys/fs/bpf "
               "2>/dev/null; mountpoint -q /sys/fs/bpf && exit 9; " +
               bpfgate_bin() + " attach " + t.gw_if() + " && " + bpfgate_bin() + " detach " +
               t.gw_if() + "'");
  EXPECT_EQ(m.exit_code, 0) << m.out << m.err;
  EXPECT_TRUE(contains(m.err, "mounted bpffs at /sys/fs/bpf")) << m.err;
  expect_clean(t);
}

TEST(CliErrors, AnotherXdpProgramIsPresent) {
  GatewayPair t;
  run_ok(t.gw().exec() + fmt::format("ip link set dev {} xdpgeneric obj {}/xdp_drop.bpf.o sec xdp",
                                     t.gw_if(), BPFGATE_BPF_DIR));
  uint32_t foreign = t.xdp_prog_id();
  ASSERT_NE(foreign, 0u);
  auto r = t.bpfgate("attach " + t.gw_if());
  expect_failure(r, fmt::format("{} already has an XDP program (id {}, generic mode) that bpfgate "
                                "did not attach",
                                t.gw_if(), foreign));
  EXPECT_TRUE(contains(r.err, "--force")) << r.err;
  EXPECT_EQ(t.xdp_prog_id(), foreign) << "the other program was touched";
  EXPECT_FALSE(std::filesystem::exists(t.pin_dir()));

  auto forced = t.bpfgate("attach " + t.gw_if() + " --force");
  ASSERT_EQ(forced.exit_code, 0) << forced.err;
  EXPECT_TRUE(contains(forced.err, fmt::format("removed XDP program id {}", foreign)));
  EXPECT_NE(t.xdp_prog_id(), foreign);
  EXPECT_NE(t.xdp_prog_id(), 0u);
}

TEST(CliErrors, RateBurstAndSizeOutOfRange) {
  GatewayPair t;
  expect_failure(t.bpfgate("attach " + t.gw_if() + " --rate 0"),
                 "rate 0 pps is out of range: give 1 to 100000000 packets per second");
  expect_failure(t.bpfgate("attach " + t.gw_if() + " --rate 1000 --burst 99999999999"),
                 "burst 99999999999 is out of range");
  expect_failure(t.bpfgate("attach " + t.gw_if() + " --rate 1000000000"),
                 "rate 1000000000 pps is out of range");
  expect_failure(t.bpfgate("attach " + t.gw_if() + " --max-sources 3"),
                 "max-sources 3 is out of range: give 16 to 16777216 entries");
  expect_clean(t);

  // On a running filter, a bad `set` changes nothing.
  ASSERT_EQ(t.bpfgate("attach " + t.gw_if() + " --rate 500 --burst 50").exit_code, 0);
  expect_failure(t.bpfgate("set " + t.gw_if() + " --rate 0"), "rate 0 pps is out of range");
  expect_failure(t.bpfgate("set " + t.gw_if() + " --burst 0"), "burst 0 is out of range");
  auto s = t.status();
  EXPECT_EQ(s["limits"]["rate_pps"], 500);
  EXPECT_EQ(s["limits"]["burst"], 50);
  // A usage error is exit 2.
  EXPECT_EQ(t.bpfgate("attach " + t.gw_if() + " --rate many").exit_code, 2);
  EXPECT_EQ(t.bpfgate("set " + t.gw_if()).exit_code, 2);
}

TEST(CliErrors, AttachingTwice) {
  GatewayPair t;
  ASSERT_EQ(t.bpfgate("attach " + t.gw_if() + " --rate 500").exit_code, 0);
  uint32_t prog = t.xdp_prog_id();
  auto r = t.bpfgate("attach " + t.gw_if() + " --rate 9000");
  expect_failure(r,
                 fmt::format("bpfgate is already attached to {} (program id {})", t.gw_if(), prog));
  EXPECT_TRUE(contains(r.err, "bpfgate set " + t.gw_if())) << r.err;
  EXPECT_EQ(t.xdp_prog_id(), prog);
  auto s = t.status();
  EXPECT_EQ(s["limits"]["rate_pps"], 500);
}

TEST(CliErrors, DetachingOrSettingWhatIsNotAttached) {
  GatewayPair t;
  expect_failure(t.bpfgate("detach " + t.gw_if()),
                 fmt::format("bpfgate is not attached to {}", t.gw_if()));
  expect_failure(t.bpfgate("set " + t.gw_if() + " --rate 10"),
                 fmt::format("bpfgate is not attached to {}", t.gw_if()));
  ASSERT_EQ(t.bpfgate("attach " + t.gw_if()).exit_code, 0);
  ASSERT_EQ(t.bpfgate("detach " + t.gw_if()).exit_code, 0);
  expect_failure(t.bpfgate("detach " + t.gw_if()), "not attached");
  expect_clean(t);
}

TEST(CliErrors, ModesOffloadFailsClearlyGenericAndAutoWork) {
  GatewayPair t;
  auto r = t.bpfgate("attach " + t.gw_if() + " --mode offload");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_TRUE(contains(r.err, "offload")) << r.err;
  EXPECT_TRUE(contains(r.err, "--mode native, generic or auto")) << r.err;
  expect_clean(t);

  ASSERT_EQ(t.bpfgate("attach " + t.gw_if() + " --mode generic").exit_code, 0);
  auto s = t.status();
  EXPECT_EQ(s["mode"], "generic");
  ASSERT_EQ(t.bpfgate("detach " + t.gw_if()).exit_code, 0);
  auto a = t.bpfgate("attach " + t.gw_if() + " --mode auto");
  ASSERT_EQ(a.exit_code, 0);
  EXPECT_TRUE(contains(a.out, "native mode")) << a.out;  // veth has native XDP
  ASSERT_EQ(t.bpfgate("detach " + t.gw_if()).exit_code, 0);
  expect_clean(t);
}

}  // namespace
}  // namespace bpfgate::test
