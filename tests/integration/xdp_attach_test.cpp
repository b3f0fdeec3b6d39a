// bpfgate attached for real to a veth in a namespace, driven by real UDP and
// TCP sockets and by floods from bpfgate-gen; every process is the real CLI.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cstdint>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <map>
#include <cstring>
#include <thread>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "bpfgate/abi/xdp.h"
#include "support/one_cpu.hpp"
#include "support/topology.hpp"

namespace bpfgate::test {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;

sockaddr_in addr_of(const char *ip, uint16_t port) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  inet_pton(AF_INET, ip, &a.sin_addr);
  return a;
}

void bind_to(int fd, const char *ip, uint16_t port) {
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  auto a = addr_of(ip, port);
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr *>(&a), sizeof(a)), 0) << strerror(errno);
}

void set_timeout(int fd, std::chrono::milliseconds t) {
  timeval tv{static_cast<time_t>(t.count() / 1000),
             static_cast<suseconds_t>(t.count() % 1000 * 1000)};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
}

// Counts datagrams waiting on a UDP socket (non-blocking drain).
int drain_udp(int fd) {
  int n = 0;
  char buf[2048];
  while (recv(fd, buf, sizeof(buf), MSG_DONTWAIT) > 0)
    n++;
  return n;
}

// Per-source entries from one `top -j` frame, keyed by address.
std::map<std::string, json> top_sources(const GatewayPair &t) {
  auto r = t.bpfgate(fmt::format("-j top {} -c 1 -i 0.2 -n 1000", t.gw_if()));
  EXPECT_EQ(r.exit_code, 0) << r.err;
  std::map<std::string, json> out;
  auto j = json::parse(r.out, nullptr, false);
  EXPECT_FALSE(j.is_discarded()) << r.out;
  if (j.is_discarded())
    return out;
  for (const auto &s : j["interfaces"][0]["sources"])
    out[s["addr"]] = s;
  return out;
}

// A UDP echo server on the gateway (port 7) and a client socket in the peer
// namespace; ask() sends a number and waits for it back, up to 3 tries.
class UdpEcho {
 public:
  explicit UdpEcho(const GatewayPair &t)
      : server_(t.gw().socket(AF_INET, SOCK_DGRAM)), client_(t.peer().socket(AF_INET, SOCK_DGRAM)) {
    bind_to(server_.get(), GatewayPair::kGatewayAddr, 7);
    bind_to(client_.get(), GatewayPair::kClientAddr, 0);
    set_timeout(client_.get(), 200ms);
    set_timeout(server_.get(), 100ms);
    echo_ = std::thread([this] {
      char buf[2048];
      while (!stop_) {
        sockaddr_in from{};
        socklen_t fl = sizeof(from);
        ssize_t n =
            recvfrom(server_.get(), buf, sizeof(buf), 0, reinterpret_cast<sockaddr *>(&from), &fl);
        if (n > 0)
          sendto(server_.get(), buf, n, 0, reinterpret_cast<sockaddr *>(&from), fl);
      }
    });
  }
  ~UdpEcho() {
    stop_ = true;
    echo_.join();
  }
  bool ask(uint32_t i) {
    auto dst = addr_of(GatewayPair::kGatewayAddr, 7);
    for (int attempt = 0; attempt < 3; attempt++) {
      sendto(client_.get(), &i, sizeof(i), 0, reinterpret_cast<sockaddr *>(&dst), sizeof(dst));
      uint32_t got = ~0U;
      if (recv(client_.get(), &got, sizeof(got), 0) == 4 && got == i)
        return true;
    }
    return false;
  }

 private:
  bpf::UniqueFd server_, client_;
  std::atomic<bool> stop_{false};
  std::thread echo_;
};

TEST(XdpAttach, NativeModeCarriesRealUdpAndTcp) {
  GatewayPair t;
  auto r = t.bpfgate("attach " + t.gw_if() + " --mode native --rate 1000");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("native mode"), std::string::npos) << r.out;
  EXPECT_NE(t.xdp_prog_id(), 0u);
  auto s = t.status();
  EXPECT_EQ(s["mode"], "native");
  EXPECT_EQ(s["limits"]["rate_pps"], 1000);
  EXPECT_EQ(s["prog_id"].get<uint32_t>(), t.xdp_prog_id());
  for (const char *pin : {"link", "prog", "sources", "counters", "config"}) {
    struct stat st {};
    ASSERT_EQ(stat((t.pin_dir() + "/" + pin).c_str(), &st), 0) << pin;
    EXPECT_EQ(st.st_mode & 0777, 0600u) << pin;
  }

  // UDP: 200 datagrams from the client, every one arrives intact.
  auto server = t.gw().socket(AF_INET, SOCK_DGRAM);
  bind_to(server.get(), GatewayPair::kGatewayAddr, 5000);
  set_timeout(server.get(), 2000ms);
  auto client = t.peer().socket(AF_INET, SOCK_DGRAM);
  bind_to(client.get(), GatewayPair::kClientAddr, 0);
  auto dst = addr_of(GatewayPair::kGatewayAddr, 5000);
  for (uint32_t i = 0; i < 200; i++) {
    ASSERT_EQ(
        sendto(client.get(), &i, sizeof(i), 0, reinterpret_cast<sockaddr *>(&dst), sizeof(dst)), 4);
    uint32_t got = ~0U;
    ASSERT_EQ(recv(server.get(), &got, sizeof(got), 0), 4) << "datagram " << i << " lost";
    EXPECT_EQ(got, i);
  }

  // TCP: 1 MiB from the client, echoed byte count and checksum match.
  auto listener = t.gw().socket(AF_INET, SOCK_STREAM);
  bind_to(listener.get(), GatewayPair::kGatewayAddr, 5001);
  ASSERT_EQ(listen(listener.get(), 4), 0);
  uint64_t received = 0, sum = 0;
  std::thread srv([&] {
    int c = accept(listener.get(), nullptr, nullptr);
    ASSERT_GE(c, 0);
    uint8_t buf[65536];
    for (ssize_t n; (n = recv(c, buf, sizeof(buf), 0)) > 0;) {
      received += n;
      for (ssize_t i = 0; i < n; i++)
        sum += buf[i];
    }
    close(c);
  });
  auto conn = t.peer().socket(AF_INET, SOCK_STREAM);
  bind_to(conn.get(), GatewayPair::kClientAddr, 0);
  auto tcp_dst = addr_of(GatewayPair::kGatewayAddr, 5001);
  ASSERT_EQ(connect(conn.get(), reinterpret_cast<sockaddr *>(&tcp_dst), sizeof(tcp_dst)), 0)
      << strerror(errno);
  std::vector<uint8_t> data(1 << 20);
  uint64_t want = 0;
  for (size_t i = 0; i < data.size(); i++)
    want += data[i] = static_cast<uint8_t>(i * 7);
  size_t off = 0;
  while (off < data.size()) {
    ssize_t n = send(conn.get(), data.data() + off, data.size() - off, 0);
    ASSERT_GT(n, 0) << strerror(errno);
    off += n;
  }
  shutdown(conn.get(), SHUT_WR);
  srv.join();
  EXPECT_EQ(received, data.size());
  EXPECT_EQ(sum, want);

  auto src = top_sources(t);
  ASSERT_TRUE(src.count(GatewayPair::kClientAddr)) << "client missing from top";
  EXPECT_GE(src[GatewayPair::kClientAddr]["packets"].get<uint64_t>(), 200u);
  EXPECT_EQ(src[GatewayPair::kClientAddr]["drops"], 0);
}

TEST(XdpAttach, FloodFromOneSourceIsDroppedWhileAnotherKeepsItsService) {
  GatewayPair t;
  ASSERT_EQ(t.bpfgate("attach " + t.gw_if() + " --mode native --rate 1000 --burst 1000").exit_code,
            0);
  UdpEcho echo(t);
  uint64_t flood_sent = 0;
  auto flood_start = std::chrono::steady_clock::now();
  std::thread flood([&] { flood_sent = t.flood(GatewayPair::kAttackerAddr, 400000, 100000); });

  // The client: 300 requests at ~100/s during the flood, each retried up to 3 times.
  std::this_thread::sleep_for(200ms);
  int answered = 0;
  for (uint32_t i = 0; i < 300; i++) {
    answered += echo.ask(i);
    std::this_thread::sleep_for(10ms);
  }
  flood.join();
  double flood_secs =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - flood_start).count();

  EXPECT_EQ(answered, 300);
  ASSERT_GT(flood_sent, 100000u);
  auto src = top_sources(t);
  ASSERT_TRUE(src.count(GatewayPair::kAttackerAddr));
  ASSERT_TRUE(src.count(GatewayPair::kClientAddr));
  EXPECT_EQ(src[GatewayPair::kClientAddr]["drops"], 0) << "the client lost packets to the filter";
  const auto &att = src[GatewayPair::kAttackerAddr];
  uint64_t seen = att["packets"], drops = att["drops"];
  EXPECT_LE(seen, flood_sent);
  EXPECT_GE(seen, flood_sent * 95 / 100) << "the veth lost much of the flood before XDP";
  uint64_t passed = seen - drops;
  EXPECT_LE(passed, 1000 + static_cast<uint64_t>(1000 * flood_secs * 1.1)) << "flood got through";
  EXPECT_GE(passed, 1000u) << "the burst should have passed";
  auto s = t.status();
  EXPECT_EQ(s["counters"]["drop"]["rate_limit"]["packets"].get<uint64_t>(), drops);
}

// A flood from random (spoofed) sources: new sources get state only at the
// new-source rate, the rest is dropped as new_source or unproven without state, so the
// sources map stays small; a client known before the flood keeps its service.
TEST(XdpAttach, SpoofedSourcesAreBoundedAndAKnownClientKeepsItsService) {
  GatewayPair t;
  constexpr uint64_t kNewPerSec = 200;
  // The share off: the UDP client cannot prove itself, so under the share it
  // would compete with the flood (tests/bpf/unproven_test.cpp covers that).
  ASSERT_EQ(t.bpfgate(fmt::format("attach {} --mode native --rate 1000 --new-sources {} "
                                  "--unproven 0 --max-sources 4096",
                                  t.gw_if(), kNewPerSec))
                .exit_code,
            0);
  EXPECT_EQ(t.status()["new_sources"]["rate_pps"], kNewPerSec);
  UdpEcho echo(t);
  ASSERT_TRUE(echo.ask(12345)) << "the client becomes known before the flood";

  uint64_t flood_sent = 0;
  auto flood_start = std::chrono::steady_clock::now();
  std::thread flood([&] { flood_sent = t.flood("198.19.0.0/16", 200000, 100000, "--seed 7"); });
  std::this_thread::sleep_for(200ms);
  int answered = 0;
  for (uint32_t i = 0; i < 150; i++) {
    answered += echo.ask(i);
    std::this_thread::sleep_for(10ms);
  }
  flood.join();
  double flood_secs =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - flood_start).count();

  EXPECT_EQ(answered, 150);
  ASSERT_GT(flood_sent, 100000u);
  auto s = t.status();
  // Held back without state: refused admission, or over the unproven
  // sources' share (which the refused ones use up).
  const auto &drop = s["counters"]["drop"];
  uint64_t refused = drop["new_source"]["packets"].get<uint64_t>() +
                     (drop.contains("unproven") ? drop["unproven"]["packets"].get<uint64_t>() : 0);
  EXPECT_GE(refused, flood_sent * 90 / 100) << s.dump();
  auto src = top_sources(t);
  ASSERT_TRUE(src.count(GatewayPair::kClientAddr));
  EXPECT_EQ(src[GatewayPair::kClientAddr]["drops"], 0) << "the client lost packets to the filter";
  uint64_t admitted_max = kNewPerSec + static_cast<uint64_t>(kNewPerSec * flood_secs * 1.2) + 2;
  EXPECT_LE(src.size(), 1 + admitted_max) << "sources with state: the client and those let in";
  EXPECT_GE(src.size(), 2u) << "some new sources were let in";
  // Changed at run time, from another process, like the other limits.
  auto set = t.bpfgate("set " + t.gw_if() + " --new-sources 0");
  EXPECT_EQ(set.exit_code, 0) << set.err;
  EXPECT_NE(set.out.find("new sources unbounded"), std::string::npos) << set.out;
  EXPECT_EQ(t.status()["new_sources"]["rate_pps"], 0);
  EXPECT_EQ(t.status()["limits"]["rate_pps"], 1000) << "the other limits stay";
  auto share = t.bpfgate("set " + t.gw_if() + " --unproven 5000");
  EXPECT_EQ(share.exit_code, 0) << share.err;
  EXPECT_NE(share.out.find("unproven sources 5000/s"), std::string::npos) << share.out;
  EXPECT_EQ(t.status()["unproven"]["rate_pps"], 5000);
  EXPECT_EQ(t.status()["new_sources"]["rate_pps"], 0) << "the other limits stay";
  auto none = t.bpfgate("-j set " + t.gw_if());
  EXPECT_EQ(none.exit_code, 2);
  auto err = nlohmann::json::parse(none.err, nullptr, false);
  ASSERT_FALSE(err.is_discarded()) << "not JSON under -j: " << none.err;
  EXPECT_NE(none.err.find("--unproven"), std::string::npos) << none.err;
}

// Entries of one of the filter's pinned tables.
size_t pinned_entries(const GatewayPair &t, const std::string &map) {
  auto r = run("bpftool -j map dump pinned " + t.pin_dir() + "/" + map);
  if (r.exit_code != 0)
    return SIZE_MAX;
  auto j = nlohmann::json::parse(r.out, nullptr, false);
  return j.is_array() ? j.size() : SIZE_MAX;
}

// A client that completed a handshake answered with a SYN cookie is known:
// a flood of spoofed sources that fills the per-source table many times over
// does not evict it, and it connects again during and after the flood.
TEST(XdpAttach, AProvenClientKeepsItsEntryThroughASpoofedFloodThatFillsTheTable) {
  GatewayPair t;
  run_ok(t.gw().exec() + "sysctl -qw net.ipv4.tcp_syncookies=2");
  ASSERT_EQ(t.bpfgate("attach " + t.gw_if() +
                      " --mode native --rate 100000 --new-sources 0 --max-sources 256")
                .exit_code,
            0);
  auto lfd = t.tcp_listen(8088);

  ASSERT_TRUE(t.tcp_connect(8088));
  EXPECT_EQ(pinned_entries(t, "known"), 1u) << "the handshake did not prove the client";
  // status counts the proof and the known entry (its ACK proved it; later
  // frames of a known source prove nothing again).
  auto s = t.status();
  EXPECT_EQ(s["events"]["sources_proven"], 1) << s.dump();
  EXPECT_EQ(s["events"]["proofs_failed"], 0) << s.dump();
  EXPECT_EQ(s["known_sources"]["entries"], 1) << s.dump();
  EXPECT_EQ(s["known_sources"]["max_entries"], 256) << s.dump();
  uint64_t sent = t.flood("198.19.0.0/16", 20000, 50000, "--seed 11");
  EXPECT_GT(sent, 10000u);
  // 20,000 sources through 256 entries: the LRU evicted all along (it keeps
  // some of its entries on per-CPU free lists, so it shows fewer than 256).
  EXPECT_GE(pinned_entries(t, "sources"), 128u) << "the flood did not fill the table";
  EXPECT_EQ(pinned_entries(t, "known"), 1u) << "the flood evicted the proven client";
  EXPECT_EQ(t.status()["known_sources"]["entries"], 1);
  EXPECT_TRUE(t.tcp_connect(8088)) << "the client lost its service";
}

// One request on a new TCP connection to an echo server on `lfd`: connect,
// send 4 bytes, read them back, each within `timeout`; true if they came.
bool tcp_request(const GatewayPair &t, int lfd, uint32_t i, std::chrono::seconds timeout) {
  std::thread server([&] {
    pollfd p{lfd, POLLIN, 0};
    if (poll(&p, 1, static_cast<int>(timeout.count() * 1000)) != 1)
      return;
    bpf::UniqueFd c(accept4(lfd, nullptr, nullptr, SOCK_CLOEXEC));
    if (c.get() < 0)
      return;
    set_timeout(c.get(), timeout);
    uint32_t got = 0;
    if (recv(c.get(), &got, sizeof(got), MSG_WAITALL) == sizeof(got))
      send(c.get(), &got, sizeof(got), MSG_NOSIGNAL);
  });
  bool ok = false;
  auto fd = t.peer().socket(AF_INET, SOCK_STREAM);
  timeval tv{static_cast<time_t>(timeout.count()), 0};
  setsockopt(fd.get(), SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
  set_timeout(fd.get(), timeout);
  auto a = addr_of(GatewayPair::kGatewayAddr, 8089);
  if (connect(fd.get(), reinterpret_cast<sockaddr *>(&a), sizeof(a)) == 0 &&
      send(fd.get(), &i, sizeof(i), MSG_NOSIGNAL) == sizeof(i)) {
    uint32_t got = ~i;
    ok = recv(fd.get(), &got, sizeof(got), MSG_WAITALL) == sizeof(got) && got == i;
  }
  server.join();
  return ok;
}

// One source flooding within its own limit takes the whole unproven share of
// the CPU that receives its frames. With the kernel's default
// tcp_syncookies=1 (no cookies while the SYN queue has room), a new TCP
// client's SYN passes on the SYN budget and the kernel keeps a request socket
// for it; its handshake ACK, which acknowledges the host's SYN-ACK, proves it,
// so it connects and is served through the flood. Everything runs on CPU 0
// (the threads and processes started here inherit it), so the client's frames
// and the flood's meet on one CPU's share, as they do behind one NIC queue.
TEST(XdpAttach, ANewTcpClientIsServedWhileOneSourceHoldsTheUnprovenShare) {
  OneCpu pin;
  GatewayPair t;
  run_ok(t.gw().exec() + "sysctl -qw net.ipv4.tcp_syncookies=1");
  // The share: one frame a second on each CPU, which the flood takes as it
  // comes back; the flooder's own limit is far above that.
  ASSERT_EQ(
      t.bpfgate("attach " + t.gw_if() + " --mode native --rate 2000 --burst 2000 --unproven 2")
          .exit_code,
      0);
  auto lfd = t.tcp_listen(8089);
  uint64_t flood_sent = 0;
  std::atomic<bool> flood_done{false};
  std::thread flood([&] {
    flood_sent = t.flood(GatewayPair::kAttackerAddr, 300000, 50000);
    flood_done = true;
  });
  std::this_thread::sleep_for(300ms);
  int served = 0;
  for (uint32_t i = 0; i < 3; i++)
    served += tcp_request(t, lfd.get(), i, 3s);
  const bool during = !flood_done;
  flood.join();

  auto s = t.status();
  EXPECT_EQ(served, 3) << s.dump();
  EXPECT_TRUE(during) << "the requests outlasted the flood";
  ASSERT_GT(flood_sent, 200000u);
  EXPECT_GE(t.counter("drop", "unproven"), flood_sent * 95 / 100) << s.dump();
  EXPECT_EQ(s["events"]["sources_proven_connected"], 1) << s.dump();
  EXPECT_EQ(s["events"]["sources_proven"], 0) << "no cookie was sent: " << s.dump();
  EXPECT_GE(s["events"]["syns_passed_stateless"].get<uint64_t>(), 1u) << s.dump();
  EXPECT_EQ(s["known_sources"]["entries"], 1) << "the client, not the flooder: " << s.dump();
}

TEST(XdpAttach, TopJsonCountsMatchWhatWasSent) {
  GatewayPair t;
  ASSERT_EQ(t.bpfgate("attach " + t.gw_if() + " --rate 1000000").exit_code, 0);
  uint64_t a = t.flood("198.18.0.50", 5000, 20000);
  uint64_t b = t.flood("198.18.0.51", 3000, 20000, "--size 200 --proto tcp --dport 443");
  ASSERT_EQ(a, 5000u);
  ASSERT_EQ(b, 3000u);
  auto src = top_sources(t);
  ASSERT_TRUE(src.count("198.18.0.50") && src.count("198.18.0.51"));
  EXPECT_EQ(src["198.18.0.50"]["packets"], 5000);
  EXPECT_EQ(src["198.18.0.50"]["bytes"], 5000 * 64);
  EXPECT_EQ(src["198.18.0.50"]["drops"], 0);
  EXPECT_EQ(src["198.18.0.51"]["packets"], 3000);
  EXPECT_EQ(src["198.18.0.51"]["bytes"], 3000 * 200);

  // Over the limit: what top reports as dropped is what the limit implies.
  ASSERT_EQ(t.bpfgate("set " + t.gw_if() + " --rate 1000 --burst 1000").exit_code, 0);
  auto start = std::chrono::steady_clock::now();
  ASSERT_EQ(t.flood("198.18.0.52", 5000, 50000), 5000u);
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  src = top_sources(t);
  uint64_t drops = src["198.18.0.52"]["drops"];
  EXPECT_EQ(src["198.18.0.52"]["packets"], 5000);
  EXPECT_LE(drops, 4000u);
  EXPECT_GE(drops, 4000u - static_cast<uint64_t>(1000 * secs * 1.1) - 10);
}

TEST(XdpAttach, DetachRestoresTheInterface) {
  GatewayPair t;
  auto sink = t.gw().socket(AF_INET, SOCK_DGRAM);
  bind_to(sink.get(), GatewayPair::kGatewayAddr, 9);
  int big = 8 << 20;
  setsockopt(sink.get(), SOL_SOCKET, SO_RCVBUFFORCE, &big, sizeof(big));

  ASSERT_EQ(t.bpfgate("attach " + t.gw_if() + " --rate 100 --burst 100").exit_code, 0);
  ASSERT_EQ(t.flood(GatewayPair::kAttackerAddr, 2000, 50000), 2000u);
  std::this_thread::sleep_for(100ms);
  int with_filter = drain_udp(sink.get());
  EXPECT_LE(with_filter, 110);
  EXPECT_GE(with_filter, 100);

  auto r = t.bpfgate("detach " + t.gw_if());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(t.xdp_prog_id(), 0u);
  EXPECT_FALSE(std::filesystem::exists(t.pin_dir()));
  ASSERT_EQ(t.flood(GatewayPair::kAttackerAddr, 2000, 50000), 2000u);
  std::this_thread::sleep_for(100ms);
  EXPECT_GE(drain_udp(sink.get()), 1990) << "traffic still limited after detach";
  auto st = t.bpfgate("-j status");
  EXPECT_EQ(st.out.find(t.gw_if()), std::string::npos) << st.out;
}

TEST(XdpAttach, FilterOutlivesItsProcessAndANewProcessChangesIt) {
  GatewayPair t;
  // The attaching process exits: nothing holds the filter but its pins.
  ASSERT_EQ(t.bpfgate("attach " + t.gw_if() + " --rate 100 --burst 100").exit_code, 0);
  uint32_t prog = t.xdp_prog_id();
  ASSERT_NE(prog, 0u);
  ASSERT_EQ(t.flood(GatewayPair::kAttackerAddr, 2000, 50000), 2000u);
  auto src = top_sources(t);  // a third process reads the pinned maps
  EXPECT_GE(src[GatewayPair::kAttackerAddr]["drops"].get<uint64_t>(), 1880u);

  auto r = t.bpfgate("set " + t.gw_if() + " --rate 1000000 --burst 1000000");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(t.xdp_prog_id(), prog) << "set must not reload the program";
  auto s = t.status();
  EXPECT_EQ(s["limits"]["rate_pps"], 1000000);
  EXPECT_EQ(s["limits"]["burst"], 1000000);
  uint64_t before = src[GatewayPair::kAttackerAddr]["drops"];
  ASSERT_EQ(t.flood(GatewayPair::kAttackerAddr, 2000, 50000), 2000u);
  src = top_sources(t);
  EXPECT_EQ(src[GatewayPair::kAttackerAddr]["drops"].get<uint64_t>(), before)
      << "the new limits did not take effect";
  EXPECT_EQ(src[GatewayPair::kAttackerAddr]["packets"], 4000);
}

// A filter of an older version (`object`'s program `prog`, whose pins lack
// `pin`) proved a client; `upgrade` brings the map, sets the known table's
// sources' bits before and after the swap, and the client stays known: its
// frames are counted in its known entry, and no entry is made for it as a
// new source (its bit clear, the new program would not look it up in the
// known table).
void upgrade_keeps_proven_clients_known(const char *object, const char *prog, const char *pin) {
  GatewayPair t;
  run_ok(t.gw().exec() + "sysctl -qw net.ipv4.tcp_syncookies=2");
  ASSERT_EQ(t.bpfgate("attach " + t.gw_if() + " --mode native").exit_code, 0);
  const std::string bits = t.pin_dir() + "/" + pin;
  ASSERT_TRUE(std::filesystem::exists(bits));
  ASSERT_NE(t.run_other_build(object, prog), 0u);
  std::filesystem::remove(bits);  // as that version left its pins
  auto lfd = t.tcp_listen(8088);
  ASSERT_TRUE(t.tcp_connect(8088));
  ASSERT_EQ(pinned_entries(t, "known"), 1u) << "the handshake did not prove the client";
  ASSERT_EQ(pinned_entries(t, "sources"), 0u);

  auto up = t.bpfgate("upgrade " + t.gw_if());
  ASSERT_EQ(up.exit_code, 0) << up.err;
  EXPECT_TRUE(contains(up.out, "replaced by")) << up.out;
  EXPECT_TRUE(std::filesystem::exists(bits));
  ASSERT_EQ(t.flood(GatewayPair::kClientAddr, 20, 20000), 20u);
  EXPECT_EQ(pinned_entries(t, "sources"), 0u)
      << "the upgraded filter did not find the client known";
  EXPECT_EQ(pinned_entries(t, "known"), 1u);
  auto s = t.status();
  EXPECT_EQ(s["known_sources"]["entries"], 1) << s.dump();
  EXPECT_TRUE(t.tcp_connect(8088));
}

// Before the known_bits map (a bitmap of the sources that may be in the known table).
TEST(XdpAttach, AnUpgradeBringingTheKnownBitsKeepsProvenClientsKnown) {
  upgrade_keeps_proven_clients_known("known_bits_off_filter.bpf.o", "bg_known_bits_off_filter",
                                     BG_PIN_KNOWN_BITS);
}

// Before its summary (known_sum): the older program set only the bitmap's bit.
TEST(XdpAttach, AnUpgradeBringingTheKnownSummaryKeepsProvenClientsKnown) {
  upgrade_keeps_proven_clients_known("known_sum_off_filter.bpf.o", "bg_known_sum_off_filter",
                                     BG_PIN_KNOWN_SUM);
}

// A filter pinned before the opstats map (the dry-run and bypass counters)
// existed, as the previous version left it: adopted by status, bypass refused
// with what to do, and `upgrade` pins the map, after which bypass works.
TEST(XdpAttach, PinsWithoutTheOpstatsMapAreAdoptedAndUpgradeMakesIt) {
  GatewayPair t;
  ASSERT_EQ(t.bpfgate("attach " + t.gw_if()).exit_code, 0);
  const std::string opstats = t.pin_dir() + "/opstats";
  ASSERT_TRUE(std::filesystem::exists(opstats));
  std::filesystem::remove(opstats);
  auto st = t.bpfgate("-j status " + t.gw_if());
  ASSERT_EQ(st.exit_code, 0) << st.err;
  EXPECT_EQ(t.status()["operations"]["supported"], false);
  auto refused = t.bpfgate("bypass " + t.gw_if() + " on");
  EXPECT_EQ(refused.exit_code, 1);
  EXPECT_NE(refused.err.find("`bpfgate upgrade IFACE` first"), std::string::npos) << refused.err;
  auto up = t.bpfgate("upgrade " + t.gw_if());
  ASSERT_EQ(up.exit_code, 0) << up.err;
  EXPECT_TRUE(std::filesystem::exists(opstats));
  EXPECT_EQ(t.bpfgate("bypass " + t.gw_if() + " on").exit_code, 0);
  EXPECT_EQ(t.status()["operations"]["bypass"], true);
  EXPECT_EQ(t.bpfgate("bypass " + t.gw_if() + " off").exit_code, 0);
}

}  // namespace
}  // namespace bpfgate::test
