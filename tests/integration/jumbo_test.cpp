// Jumbo frames: the filter attached natively to a veth with MTU 9000, loaded
// with BPF_F_XDP_HAS_FRAGS (a single-buffer program is refused there with
// ERANGE), and the bypass switch on the same topology. Real UDP sockets on
// both sides, IPv4 and IPv6: an 8000-byte datagram from a blocked source is
// dropped, one from an allowed source arrives intact.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "bpf/features.hpp"
#include "support/topology.hpp"

namespace bpfgate::test::jumbo {
namespace {

using nlohmann::json;

constexpr const char *kGw6 = "2001:db8:9::1";
constexpr const char *kClient6 = "2001:db8:9::2";
constexpr const char *kAttacker6 = "2001:db8:9::3";
constexpr uint16_t kPort = 9100;
constexpr size_t kPayload = 8000;

sockaddr_storage addr_of(const std::string &ip, uint16_t port, socklen_t &len) {
  sockaddr_storage ss{};
  if (ip.find(':') != std::string::npos) {
    auto *a = reinterpret_cast<sockaddr_in6 *>(&ss);
    a->sin6_family = AF_INET6;
    a->sin6_port = htons(port);
    inet_pton(AF_INET6, ip.c_str(), &a->sin6_addr);
    len = sizeof(*a);
  } else {
    auto *a = reinterpret_cast<sockaddr_in *>(&ss);
    a->sin_family = AF_INET;
    a->sin_port = htons(port);
    inet_pton(AF_INET, ip.c_str(), &a->sin_addr);
    len = sizeof(*a);
  }
  return ss;
}

// A socket of `ns` bound to ip (port 0: any), with a receive timeout.
bpf::UniqueFd bound(const Netns &ns, const std::string &ip, uint16_t port) {
  const int family = ip.find(':') != std::string::npos ? AF_INET6 : AF_INET;
  auto fd = ns.socket(family, SOCK_DGRAM);
  socklen_t len = 0;
  auto a = addr_of(ip, port, len);
  EXPECT_EQ(bind(fd.get(), reinterpret_cast<sockaddr *>(&a), len), 0) << ip << strerror(errno);
  timeval tv{0, 300'000};
  setsockopt(fd.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  return fd;
}

// Sends one kPayload-byte datagram from `from` (an address of the peer) to
// the server; returns what the server received (empty: nothing within 300 ms).
std::vector<uint8_t> send_jumbo(const GatewayPair &t, int server, const std::string &from,
                                const std::string &to, uint8_t seed) {
  auto client = bound(t.peer(), from, 0);
  std::vector<uint8_t> out(kPayload);
  for (size_t i = 0; i < out.size(); i++)
    out[i] = static_cast<uint8_t>(i * 7 + seed);
  socklen_t len = 0;
  auto dst = addr_of(to, kPort, len);
  EXPECT_EQ(
      sendto(client.get(), out.data(), out.size(), 0, reinterpret_cast<sockaddr *>(&dst), len),
      static_cast<ssize_t>(out.size()))
      << strerror(errno);
  std::vector<uint8_t> in(kPayload + 100);
  ssize_t n = recv(server, in.data(), in.size(), 0);
  in.resize(n > 0 ? static_cast<size_t>(n) : 0);
  EXPECT_TRUE(in.empty() || in == out) << "a datagram of " << in.size() << " bytes, not intact";
  return in;
}

class Jumbo : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!bpf::xdp_frags_support())
      GTEST_SKIP() << "SKIPPED: this kernel cannot load XDP programs with frags (Linux 5.18)";
    run_ok(t_.gw().exec() + fmt::format("ip link set dev {} mtu 9000", t_.gw_if()));
    run_ok(t_.peer().exec() + fmt::format("ip link set dev {} mtu 9000", t_.peer_if()));
    // make_veth turns IPv6 off on the pair: on again here.
    run_ok(t_.gw().exec() + fmt::format("sysctl -qw net.ipv6.conf.{}.disable_ipv6=0", t_.gw_if()));
    run_ok(t_.peer().exec() +
           fmt::format("sysctl -qw net.ipv6.conf.{}.disable_ipv6=0", t_.peer_if()));
    run_ok(t_.gw().exec() + fmt::format("ip addr add {}/64 dev {} nodad", kGw6, t_.gw_if()));
    for (const char *a : {kClient6, kAttacker6})
      run_ok(t_.peer().exec() + fmt::format("ip addr add {}/64 dev {} nodad", a, t_.peer_if()));
  }
  GatewayPair t_;
};

TEST_F(Jumbo, NativeAttachWithFragsDropsBlockedAndPassesAllowedIntact) {
  auto r = t_.bpfgate(fmt::format("attach {} --mode native", t_.gw_if()));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  json st = t_.status();
  EXPECT_EQ(st["mode"], "native");
  EXPECT_EQ(st["frags"], true);
  for (const char *p : {"198.18.0.3/32", "2001:db8:9::3/128"})
    ASSERT_EQ(t_.bpfgate(fmt::format("block {} --iface {}", p, t_.gw_if())).exit_code, 0) << p;

  auto server4 = bound(t_.gw(), GatewayPair::kGatewayAddr, kPort);
  auto server6 = bound(t_.gw(), kGw6, kPort);
  for (int i = 0; i < 3; i++) {
    EXPECT_EQ(send_jumbo(t_, server4.get(), GatewayPair::kClientAddr, GatewayPair::kGatewayAddr, i)
                  .size(),
              kPayload);
    EXPECT_EQ(send_jumbo(t_, server6.get(), kClient6, kGw6, i).size(), kPayload);
    EXPECT_TRUE(
        send_jumbo(t_, server4.get(), GatewayPair::kAttackerAddr, GatewayPair::kGatewayAddr, i)
            .empty());
    EXPECT_TRUE(send_jumbo(t_, server6.get(), kAttacker6, kGw6, i).empty());
  }
  st = t_.status();
  EXPECT_EQ(counter(st, "drop", "blocklist"), 6u);
  // Bytes are the whole frame's, not the first buffer's.
  EXPECT_GE(st["counters"]["drop"]["blocklist"]["bytes"].get<uint64_t>(), 6 * kPayload);
}

TEST_F(Jumbo, BypassPassesTheBlockedUntilOff) {
  ASSERT_EQ(t_.bpfgate(fmt::format("attach {}", t_.gw_if())).exit_code, 0);
  ASSERT_EQ(t_.bpfgate(fmt::format("block 198.18.0.3/32 --iface {}", t_.gw_if())).exit_code, 0);
  auto server = bound(t_.gw(), GatewayPair::kGatewayAddr, kPort);
  auto r = t_.bpfgate(fmt::format("bypass {} on", t_.gw_if()));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("action=bypass"), std::string::npos) << r.err;
  EXPECT_NE(t_.bpfgate(fmt::format("status {}", t_.gw_if())).out.find("BYPASS"), std::string::npos);
  EXPECT_EQ(
      send_jumbo(t_, server.get(), GatewayPair::kAttackerAddr, GatewayPair::kGatewayAddr, 1).size(),
      kPayload);
  json st = t_.status();
  EXPECT_EQ(st["operations"]["bypass"], true);
  EXPECT_GE(st["operations"]["bypassed"]["packets"].get<uint64_t>(), 1u);
  ASSERT_EQ(t_.bpfgate(fmt::format("bypass {} off", t_.gw_if())).exit_code, 0);
  EXPECT_TRUE(send_jumbo(t_, server.get(), GatewayPair::kAttackerAddr, GatewayPair::kGatewayAddr, 2)
                  .empty());
  EXPECT_EQ(t_.status()["operations"]["bypass"], false);
  EXPECT_EQ(t_.bpfgate(fmt::format("bypass {} maybe", t_.gw_if())).exit_code, 2);
}

}  // namespace
}  // namespace bpfgate::test::jumbo
