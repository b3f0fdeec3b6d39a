// The SYN answer for real (limits.syn_proxy): bpfgate attached to a veth in
// a namespace, a spoofed SYN flood from bpfgate-gen at the gateway's
// listener, and real clients, each from an address never seen before,
// connecting through it: the datapath answers their SYNs with the kernel's
// cookies, the kernel accepts their ACKs, and the connections carry data
// with the options both ends agreed on.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <thread>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "support/topology.hpp"

namespace bpfgate::test {
namespace {

using namespace std::chrono_literals;
constexpr uint16_t kPort = 8080;
constexpr size_t kReply = 256 * 1024;  // past a window without scaling

sockaddr_in addr_of(const std::string &ip, uint16_t port) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  inet_pton(AF_INET, ip.c_str(), &a.sin_addr);
  return a;
}

tcp_info info_of(int fd) {
  tcp_info i{};
  socklen_t len = sizeof(i);
  getsockopt(fd, IPPROTO_TCP, TCP_INFO, &i, &len);
  return i;
}

// Accepts connections on the gateway, answers each one's request line with
// kReply bytes, and keeps what TCP says of each server side.
class Server {
 public:
  explicit Server(const GatewayPair &t) : listener_(t.tcp_listen(kPort)) {
    thread_ = std::thread([this] { loop(); });
  }
  ~Server() {
    stop_ = true;
    thread_.join();
  }
  std::vector<tcp_info> sides() {
    std::lock_guard<std::mutex> l(m_);
    return sides_;
  }

 private:
  void loop() {
    std::vector<char> reply(kReply, 'x');
    while (!stop_) {
      pollfd p{listener_.get(), POLLIN, 0};
      if (poll(&p, 1, 100) <= 0)
        continue;
      bpf::UniqueFd c(accept(listener_.get(), nullptr, nullptr));
      if (c.get() < 0)
        continue;
      timeval tv{3, 0};
      setsockopt(c.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
      setsockopt(c.get(), SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
      char req[64];
      if (recv(c.get(), req, sizeof(req), 0) <= 0)
        continue;
      size_t sent = 0;
      while (sent < reply.size()) {
        ssize_t n = send(c.get(), reply.data() + sent, reply.size() - sent, MSG_NOSIGNAL);
        if (n <= 0)
          break;
        sent += static_cast<size_t>(n);
      }
      std::lock_guard<std::mutex> l(m_);
      sides_.push_back(info_of(c.get()));
    }
  }
  bpf::UniqueFd listener_;
  std::atomic<bool> stop_{false};
  std::mutex m_;
  std::vector<tcp_info> sides_;
  std::thread thread_;
};

struct Fetch {
  bool ok = false;
  std::chrono::milliseconds connect{0};
  tcp_info client{};
  std::string why;
};

// One request from `src` (an address of the peer namespace), its whole reply
// read; everything bounded by a 3 s timeout.
Fetch fetch(const GatewayPair &t, const std::string &src) {
  Fetch f;
  auto fd = t.peer().socket(AF_INET, SOCK_STREAM);
  timeval tv{3, 0};
  setsockopt(fd.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  setsockopt(fd.get(), SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
  auto local = addr_of(src, 0);
  if (bind(fd.get(), reinterpret_cast<sockaddr *>(&local), sizeof(local)) != 0) {
    f.why = fmt::format("bind {}: {}", src, strerror(errno));
    return f;
  }
  auto to = addr_of(GatewayPair::kGatewayAddr, kPort);
  auto start = std::chrono::steady_clock::now();
  if (connect(fd.get(), reinterpret_cast<sockaddr *>(&to), sizeof(to)) != 0) {
    f.why = fmt::format("connect from {}: {}", src, strerror(errno));
    return f;
  }
  f.connect = std::chrono::duration_cast<std::chrono::milliseconds>(
      std::chrono::steady_clock::now() - start);
  if (send(fd.get(), "GET\n", 4, MSG_NOSIGNAL) != 4) {
    f.why = "send: " + std::string(strerror(errno));
    return f;
  }
  size_t got = 0;
  char buf[16384];
  while (got < kReply) {
    ssize_t n = recv(fd.get(), buf, sizeof(buf), 0);
    if (n <= 0)
      break;
    got += static_cast<size_t>(n);
  }
  f.client = info_of(fd.get());
  f.ok = got == kReply;
  if (!f.ok)
    f.why = fmt::format("{} of {} bytes from {}", got, kReply, src);
  return f;
}

uint64_t event(const nlohmann::json &status, const char *name) {
  return status["events"][name].get<uint64_t>();
}

TEST(SynProxy, NewClientsConnectThroughASpoofedSynFloodOnAnsweredSyns) {
  GatewayPair t;
  run_ok(t.gw().exec() + "sysctl -qw net.ipv4.tcp_syncookies=2 net.ipv4.tcp_timestamps=2");
  for (int i = 0; i < 20; i++)
    run_ok(t.peer().exec() + fmt::format("ip addr add 198.18.0.{}/24 dev {}", 10 + i, t.peer_if()));
  // A veth takes XDP_TX frames from its peer only while its NAPI runs: an
  // XDP program of its own (GRO alone is not enough on every kernel).
  run_ok(t.peer().exec() + fmt::format("ip link set dev {} xdpdrv obj {}/xdp_pass.bpf.o sec xdp",
                                       t.peer_if(), BPFGATE_BPF_DIR));
  // New sources and unproven ones each 100 a second: the flood uses both up.
  ASSERT_EQ(t.bpfgate(fmt::format("attach {} --mode native --rate 1000 --new-sources 100 "
                                  "--unproven 100 --max-sources 4096 --syn-proxy",
                                  t.gw_if()))
                .exit_code,
            0);
  ASSERT_EQ(t.status()["syn_proxy"]["enforced"], true) << t.status().dump();
  // The kernel marks its listener as sending cookies only for SYNs it can
  // answer (a route back first): a route to the flood's sources through the
  // peer, which drops what it gets, as a host with a default route has.
  run_ok(t.gw().exec() +
         fmt::format("ip route add 198.19.0.0/16 via {}", GatewayPair::kClientAddr));
  Server server(t);

  std::atomic<uint64_t> flood_sent{0};
  std::thread flood([&] {
    flood_sent = t.flood("198.19.0.0/16", 150000, 30000, "--proto tcp --dport 8080 --seed 3");
  });
  std::this_thread::sleep_for(500ms);
  std::vector<Fetch> fetched;
  for (int i = 0; i < 20; i++)
    fetched.push_back(fetch(t, fmt::format("198.18.0.{}", 10 + i)));
  flood.join();

  ASSERT_GT(flood_sent.load(), 100000u);
  int ok = 0;
  for (const auto &f : fetched) {
    ok += f.ok;
    EXPECT_TRUE(f.ok) << f.why;
    // Answered at once: no SYN of theirs waited for its 1 s retransmission.
    EXPECT_LT(f.connect, 900ms) << "a SYN was lost and sent again";
  }
  EXPECT_EQ(ok, 20);
  auto s = t.status();
  EXPECT_GE(event(s, "syns_answered"), flood_sent.load() / 2) << s.dump();
  EXPECT_GE(event(s, "sources_proven"), 15u) << s.dump();
  // Every connection, answered here or by the kernel, has the options both
  // ends agreed on: the window scale the client was offered is the one the
  // kernel uses, and timestamps and SACK are on.
  auto sides = server.sides();
  ASSERT_EQ(sides.size(), 20u);
  for (size_t i = 0; i < sides.size(); i++) {
    const uint8_t want = TCPI_OPT_TIMESTAMPS | TCPI_OPT_SACK | TCPI_OPT_WSCALE;
    EXPECT_EQ(sides[i].tcpi_options & want, want) << i;
    EXPECT_EQ(fetched[i].client.tcpi_snd_wscale, sides[i].tcpi_rcv_wscale) << i;
    EXPECT_EQ(fetched[i].client.tcpi_rcv_wscale, sides[i].tcpi_snd_wscale) << i;
  }
}

}  // namespace
}  // namespace bpfgate::test
