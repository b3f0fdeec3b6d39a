// Unproven sources share one rate (limits.unproven): a flood spread over many
// spoofed sources, each under its own limit, passes at most that rate, while
// sources that proved themselves are not charged. A source proves itself with
// a SYN cookie (proof_test.cpp) or with a frame of a TCP connection the host
// has established, which a connection older than the filter can do too.
#include <arpa/inet.h>
#include <linux/bpf.h>
#include <linux/tcp.h>
#include <netinet/in.h>
#include <sched.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cstring>

#include <fmt/format.h>

#include "bpf/fd.hpp"
#include "core/packet.hpp"
#include "support/filter_harness.hpp"
#include "support/one_cpu.hpp"
#include "support/system.hpp"

namespace bpfgate::test::unproven {
namespace {

using core::PacketBuilder;
constexpr const char *kServer = "198.18.0.1";
constexpr uint8_t kSyn = 0x02, kAck = 0x10;

std::vector<uint8_t> udp(const std::string &src) {
  return PacketBuilder().ipv4(src, kServer).udp(40000, 9).build();
}
std::vector<uint8_t> tcp(const std::string &src, uint16_t sport, uint16_t dport, uint8_t flags) {
  return PacketBuilder().ipv4(src, kServer).tcp(sport, dport, flags).tcp_seq(1000, 2000).build();
}

// A policy whose unproven share lets `burst` frames through on each CPU at
// once, then `rate` a second on each (0: one every 100 s for all of them, so
// no token comes back while a test runs); `others` are its other limits.
std::string share_policy(unsigned burst, unsigned rate = 0,
                         const std::string &others = "rate: 100, burst: 100, new_sources: off") {
  const unsigned cpus = static_cast<unsigned>(libbpf_num_possible_cpus());
  return fmt::format("limits: {{{}, unproven: {{rate: {}, burst: {}}}}}\n", others,
                     rate ? rate * cpus : 1, burst * cpus);
}

// 200 sources, one frame each: every one under its own limit.
uint64_t spread_flood(FilterHarness &h, int n = 200) {
  uint64_t passed = 0;
  for (int i = 0; i < n; i++)
    passed += h.run(udp(fmt::format("198.19.{}.{}", i / 200, 1 + i % 200))) == XDP_PASS;
  return passed;
}

TEST(UnprovenShare, ManySourcesEachUnderItsLimitShareOneRate) {
  OneCpu pin;
  auto h = FilterHarness::load_or_abort(policy_from_yaml(share_policy(10)), 4096);
  EXPECT_EQ(spread_flood(h), 10u) << "the share is 10 frames at once on this CPU";
  EXPECT_EQ(h.packets(BG_VERDICT_DROP, BG_REASON_UNPROVEN), 190u);
  EXPECT_EQ(h.packets(BG_VERDICT_DROP, BG_REASON_RATE_LIMIT), 0u);
  // A frame the share refuses touches no state: no entry for its source.
  EXPECT_FALSE(h.source("198.19.0.100").has_value());
  EXPECT_EQ(h.source_count(), 10u);
}

TEST(UnprovenShare, AnAllowListedSourceIsNeverHeldBackNorCharged) {
  OneCpu pin;
  auto h = FilterHarness::load_or_abort(
      policy_from_yaml("allow: [198.18.9.0/24]\n" +
                       share_policy(1, 0, "rate: 100, new_sources: off")),
      4096);
  // While the share has its token, an allowed frame gives back what it took.
  EXPECT_EQ(h.run(udp("198.18.9.5")), XDP_PASS);
  EXPECT_EQ(h.run(udp("198.19.2.1")), XDP_PASS) << "the allowed frame kept the share's token";
  EXPECT_EQ(h.run(udp("198.19.2.2")), XDP_DROP);
  EXPECT_EQ(h.run(udp("198.18.9.6")), XDP_PASS) << "held back with the share used up";
  EXPECT_EQ(h.packets(BG_VERDICT_PASS, BG_REASON_ALLOW), 2u);
}

// IPv6 neighbour discovery from the link (hop limit 255) is IPv6's ARP: a new
// host's solicitations and advertisements pass while a flood has used up the
// new-source and unproven shares (a host the gateway cannot resolve cannot
// connect), through the ACL and the blocklist, counted as allowed, leaving
// no state; anything else of ICMPv6, or with another hop limit (not from the
// link: RFC 4861 has receivers discard it), waits for the shares as before.
TEST(UnprovenShare, NeighbourDiscoveryFromTheLinkIsNeverHeldBack) {
  OneCpu pin;
  auto h = FilterHarness::load_or_abort(
      policy_from_yaml("deny: [2001:db8:66::/48]\n" +
                       share_policy(1, 0, "rate: 100, new_sources: {rate: 1, burst: 1}")),
      4096);
  auto icmp6 = [](const std::string &src, uint8_t type, uint8_t code, uint8_t hops) {
    return PacketBuilder().ipv6(src, "2001:db8::1").ttl(hops).icmp(type, code).build();
  };
  for (int i = 0; i < 20; i++)  // a flood of new sources uses up both shares
    h.run(PacketBuilder()
              .ipv6(fmt::format("2001:db8:99::{:x}", i + 1), "2001:db8::1")
              .udp(40000, 9)
              .build());
  ASSERT_GT(h.packets(BG_VERDICT_DROP, BG_REASON_NEW_SOURCE) +
                h.packets(BG_VERDICT_DROP, BG_REASON_UNPROVEN),
            15u);
  for (uint8_t type : {133, 134, 135, 136, 137})
    EXPECT_EQ(h.run(icmp6("2001:db8:5::7", type, 0, 255)), XDP_PASS) << "type " << int(type);
  EXPECT_EQ(h.packets(BG_VERDICT_PASS, BG_REASON_ALLOW), 5u);
  EXPECT_FALSE(h.source("2001:db8:5::7").has_value()) << "no state for neighbour discovery";
  // Not neighbour discovery from the link: the shares decide, and they are used up.
  EXPECT_EQ(h.run(icmp6("2001:db8:5::8", 135, 0, 254)), XDP_DROP) << "routed: not from the link";
  EXPECT_EQ(h.run(icmp6("2001:db8:5::9", 135, 1, 255)), XDP_DROP) << "code 1";
  EXPECT_EQ(h.run(icmp6("2001:db8:5::a", 128, 0, 255)), XDP_DROP) << "an echo request";
  EXPECT_EQ(h.run(icmp6("2001:db8:5::b", 138, 0, 255)), XDP_DROP) << "router renumbering";
  // The lists still apply.
  EXPECT_EQ(h.run(icmp6("2001:db8:66::1", 135, 0, 255)), XDP_DROP);
  EXPECT_EQ(h.packets(BG_VERDICT_DROP, BG_REASON_DENY), 1u);
  EXPECT_EQ(h.packets(BG_VERDICT_PASS, BG_REASON_ALLOW), 5u);
}

// A source over its own limit gives its share tokens back, so one heavy
// source cannot hold every other one back; a new source refused admission
// keeps its token used, so a flood of new sources exhausts the share and is
// then dropped before the admitted table is looked up.
TEST(UnprovenShare, OneHeavySourceLeavesTheShareButANewSourceFloodUsesItUp) {
  OneCpu pin;
  auto heavy = FilterHarness::load_or_abort(
      policy_from_yaml(share_policy(10, 0, "rate: 1, burst: 1, new_sources: off")), 4096);
  for (int i = 0; i < 100; i++)
    heavy.run(udp("198.19.9.9"));
  EXPECT_EQ(heavy.packets(BG_VERDICT_DROP, BG_REASON_RATE_LIMIT), 99u);
  EXPECT_EQ(spread_flood(heavy, 20), 9u) << "the heavy source used one token of 10";

  auto fresh = FilterHarness::load_or_abort(
      policy_from_yaml(share_policy(10, 0, "rate: 100, new_sources: {rate: 1, burst: 1}")), 4096);
  EXPECT_EQ(spread_flood(fresh, 50), 1u) << "one new source admitted on this CPU";
  EXPECT_EQ(fresh.packets(BG_VERDICT_DROP, BG_REASON_NEW_SOURCE), 9u);
  EXPECT_EQ(fresh.packets(BG_VERDICT_DROP, BG_REASON_UNPROVEN), 40u);
}

TEST(UnprovenShare, OffOrWithoutProofsNothingIsShared) {
  OneCpu pin;
  auto off = FilterHarness::load_or_abort(
      policy_from_yaml("limits: {rate: 100, new_sources: off, unproven: off}\n"), 4096);
  EXPECT_EQ(spread_flood(off), 200u);
  // With proofs off no source could ever leave the class: the share is not
  // enforced (status says so), rather than every client capped.
  auto noproof = FilterHarness::load_or_abort(
      policy_from_yaml(share_policy(10, 0, "rate: 100, burst: 100, new_sources: off, prove: off")),
      4096);
  EXPECT_EQ(spread_flood(noproof), 200u);
  auto cfg = noproof.datapath().config();
  ASSERT_TRUE(cfg.ok());
  EXPECT_FALSE(cfg->gen[cfg->active % BG_GENERATIONS].flags & BG_SET_UNPROVEN);
  EXPECT_EQ(noproof.packets(BG_VERDICT_DROP, BG_REASON_UNPROVEN), 0u);
}

TEST(UnprovenShare, TheRateComesBack) {
  OneCpu pin;
  // 10 a second on each CPU, 1 at once: a token every 100 ms (wide enough for a slow VM).
  auto h = FilterHarness::load_or_abort(
      policy_from_yaml(share_policy(1, 10, "rate: 100, new_sources: off")), 4096);
  EXPECT_EQ(h.run(udp("198.19.1.1")), XDP_PASS);
  EXPECT_EQ(h.run(udp("198.19.1.2")), XDP_DROP);
  usleep(250'000);  // two tokens' time and more
  EXPECT_EQ(h.run(udp("198.19.1.3")), XDP_PASS);
}

// One source within its own limit takes at most half of a CPU's share: the
// rest of its frames are held back as unproven before its bucket (which they
// do not reach), and the other half is left to every other source.
TEST(UnprovenShare, OneSourceTakesAtMostHalfOfACpusShare) {
  OneCpu pin;
  auto h = FilterHarness::load_or_abort(policy_from_yaml(share_policy(10)), 4096);
  int passed = 0;
  for (int i = 0; i < 20; i++)
    passed += h.run(udp("198.19.9.9")) == XDP_PASS;
  EXPECT_EQ(passed, 5) << "half of the 10 frames the share lets through at once";
  EXPECT_EQ(h.packets(BG_VERDICT_DROP, BG_REASON_UNPROVEN), 15u);
  EXPECT_EQ(h.packets(BG_VERDICT_DROP, BG_REASON_RATE_LIMIT), 0u) << "it is within its limit";
  auto st = h.source("198.19.9.9");
  ASSERT_TRUE(st.has_value());
  EXPECT_EQ(st->packets, 5u);
  EXPECT_EQ(st->drops, 0u);
  // The other half is the other sources'.
  EXPECT_EQ(spread_flood(h, 20), 5u);
}

// The client's address on the pair's loopback, by family.
const char *client_of(bool v6) {
  return v6 ? "2001:db8::2" : "198.18.0.2";
}

// `ip` and `port` as a socket address of its family; `len` gets its size.
sockaddr_storage sockaddr_of(const char *ip, uint16_t port, socklen_t *len) {
  sockaddr_storage ss{};
  if (std::strchr(ip, ':')) {
    auto *a = reinterpret_cast<sockaddr_in6 *>(&ss);
    a->sin6_family = AF_INET6;
    a->sin6_port = htons(port);
    inet_pton(AF_INET6, ip, &a->sin6_addr);
    *len = sizeof(*a);
  } else {
    auto *a = reinterpret_cast<sockaddr_in *>(&ss);
    a->sin_family = AF_INET;
    a->sin_port = htons(port);
    inet_pton(AF_INET, ip, &a->sin_addr);
    *len = sizeof(*a);
  }
  return ss;
}

// Two addresses (IPv4, or IPv6 with `v6`) on the loopback of a namespace made
// here (`name`), a listener on the first at `port` (waiting `defer` s for
// data before it accepts, 0: not) and a client from the second that
// connected to it.
struct LoopbackPair {
  Netns ns;
  bpf::UniqueFd listener, client;
  uint16_t client_port = 0;

  LoopbackPair(const std::string &name, uint16_t port, int defer, bool v6 = false)
      : ns(unique_prefix() + name) {
    run_ok(ns.exec() + "ip link set lo up");
    run_ok(ns.exec() + "ip addr add 198.18.0.1/32 dev lo");
    run_ok(ns.exec() + "ip addr add 198.18.0.2/32 dev lo");
    run_ok(ns.exec() + "ip addr add 2001:db8::1/128 dev lo");
    run_ok(ns.exec() + "ip addr add 2001:db8::2/128 dev lo");
    run_ok(ns.exec() + "sysctl -qw net.ipv4.tcp_syncookies=1");
    const int family = v6 ? AF_INET6 : AF_INET;
    ns.within([&] {
      listener = bpf::UniqueFd(::socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0));
      if (defer) {
        ASSERT_EQ(
            ::setsockopt(listener.get(), IPPROTO_TCP, TCP_DEFER_ACCEPT, &defer, sizeof(defer)), 0);
      }
      socklen_t alen = 0, clen = 0;
      auto a = sockaddr_of(v6 ? "2001:db8::1" : kServer, port, &alen);
      ASSERT_EQ(::bind(listener.get(), reinterpret_cast<sockaddr *>(&a), alen), 0);
      ASSERT_EQ(::listen(listener.get(), 4), 0);
      client = bpf::UniqueFd(::socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0));
      auto c = sockaddr_of(client_of(v6), 0, &clen);
      ASSERT_EQ(::bind(client.get(), reinterpret_cast<sockaddr *>(&c), clen), 0);
      ASSERT_EQ(::connect(client.get(), reinterpret_cast<sockaddr *>(&a), alen), 0);
      ::getsockname(client.get(), reinterpret_cast<sockaddr *>(&c), &clen);
      client_port = ntohs(v6 ? reinterpret_cast<sockaddr_in6 *>(&c)->sin6_port
                             : reinterpret_cast<sockaddr_in *>(&c)->sin_port);
    });
  }
};

// A TCP connection between the pair: the server's side is the socket the
// filter finds.
struct Connected : LoopbackPair {
  bpf::UniqueFd server;
  static constexpr uint16_t kPort = 8080;

  Connected() : LoopbackPair("unpr", kPort, 0) {
    ns.within([&] { server = bpf::UniqueFd(::accept(listener.get(), nullptr, nullptr)); });
    EXPECT_GE(server.get(), 0);
  }
};

TEST(ConnectedProof, AFrameOfAnEstablishedConnectionProvesItsSourceOverTheShare) {
  OneCpu pin;
  Connected conn;
  ASSERT_NE(conn.client_port, 0);
  auto h = FilterHarness::load_or_abort(policy_from_yaml(share_policy(1)), 4096);
  conn.ns.within([&] {
    // The share is used up by a flood of sources under their own limits.
    EXPECT_EQ(spread_flood(h, 20), 1u);
    // A forged frame to the same port from a port with no connection proves
    // nothing (the listener is found, no connection): held back.
    EXPECT_EQ(h.run(tcp("198.18.0.2", conn.client_port + 1, Connected::kPort, kAck)), XDP_DROP);
    EXPECT_EQ(h.stat(BG_STAT_PROOF_FAILED), 1u);
    EXPECT_FALSE(h.known("198.18.0.2"));
    // The client's own next frame: its connection exists, so it is no forgery.
    EXPECT_EQ(h.run(tcp("198.18.0.2", conn.client_port, Connected::kPort, kAck | 0x08)), XDP_PASS);
    EXPECT_EQ(h.stat(BG_STAT_PROVEN_CONNECTED), 1u);
    EXPECT_TRUE(h.known("198.18.0.2"));
    // Known, it is charged to its own bucket only, whatever the share says.
    for (int i = 0; i < 20; i++)
      EXPECT_EQ(h.run(udp("198.18.0.2")), XDP_PASS) << i;
  });
  EXPECT_EQ(h.packets(BG_VERDICT_DROP, BG_REASON_UNPROVEN), 20u);
}

// A handshake the host's kernel has not finished: a listener that waits for
// data (TCP_DEFER_ACCEPT) keeps its request socket after the client's ACK, so
// the socket a frame's lookup finds is that request socket, as it is between
// a SYN that went to the stack (tcp_syncookies=1 while the SYN queue does not
// overflow, or 0) and the handshake's ACK. `ack` is what the client's ACK
// acknowledges: the ISN of the host's SYN-ACK plus one.
struct HalfOpen : LoopbackPair {
  uint32_t ack = 0;
  static constexpr uint16_t kPort = 8081;

  explicit HalfOpen(bool v6) : LoopbackPair("half", kPort, 30, v6) {
    ns.within([&] {
      // The client's next expected byte (rcv_nxt), read in repair mode; the
      // socket then closes without a FIN or a reset.
      int on = 1, queue = TCP_RECV_QUEUE;
      ASSERT_EQ(::setsockopt(client.get(), IPPROTO_TCP, TCP_REPAIR, &on, sizeof(on)), 0)
          << strerror(errno);
      ASSERT_EQ(::setsockopt(client.get(), IPPROTO_TCP, TCP_REPAIR_QUEUE, &queue, sizeof(queue)),
                0);
      socklen_t len = sizeof(ack);
      ASSERT_EQ(::getsockopt(client.get(), IPPROTO_TCP, TCP_QUEUE_SEQ, &ack, &len), 0);
    });
  }
};

std::vector<uint8_t> tcp_ack(bool v6, uint16_t sport, uint16_t dport, uint32_t ack,
                             uint8_t flags = kAck) {
  PacketBuilder b;
  if (v6)
    b.ipv6(client_of(true), "2001:db8::1");
  else
    b.ipv4(client_of(false), kServer);
  return b.tcp(sport, dport, flags).tcp_seq(1000, ack).build();
}

TEST(ConnectedProof, TheAckThatCompletesAHandshakeProvesItsSourceAndAGuessedOneDoesNot) {
  OneCpu pin;
  for (bool v6 : {false, true}) {
    SCOPED_TRACE(v6 ? "IPv6" : "IPv4");
    HalfOpen half(v6);
    ASSERT_NE(half.client_port, 0);
    const uint16_t p = half.client_port;
    auto h = FilterHarness::load_or_abort(policy_from_yaml(share_policy(1)), 4096);
    half.ns.within([&] {
      EXPECT_EQ(spread_flood(h, 20), 1u) << "the share is used up";
      // The request socket's tuple with any other acknowledgment number, or
      // with the right one on a reset, proves nothing: held back.
      EXPECT_EQ(h.run(tcp_ack(v6, p, HalfOpen::kPort, half.ack + 1)), XDP_DROP);
      EXPECT_EQ(h.run(tcp_ack(v6, p, HalfOpen::kPort, half.ack - 1)), XDP_DROP);
      EXPECT_EQ(h.run(tcp_ack(v6, p, HalfOpen::kPort, half.ack, kAck | 0x04)), XDP_DROP);
      EXPECT_EQ(h.stat(BG_STAT_PROOF_FAILED), 3u);
      EXPECT_FALSE(h.known(client_of(v6)));
      // The client's ACK: it acknowledges the host's SYN-ACK, so it is no forgery.
      EXPECT_EQ(h.run(tcp_ack(v6, p, HalfOpen::kPort, half.ack)), XDP_PASS);
      EXPECT_EQ(h.stat(BG_STAT_PROVEN_CONNECTED), 1u);
      EXPECT_TRUE(h.known(client_of(v6)));
    });
  }
}

TEST(ConnectedProof, ASynOverTheShareGoesToTheSynBudget) {
  OneCpu pin;
  auto h = FilterHarness::load_or_abort(policy_from_yaml(share_policy(1)), 4096);
  EXPECT_EQ(h.run(udp("198.18.70.1")), XDP_PASS);  // takes the share
  EXPECT_EQ(h.run(udp("198.18.70.2")), XDP_DROP);  // admitted, over the share
  // The second source's SYN: over the share, it passes on the SYN budget,
  // which a UDP flood does not touch, so a client can still connect.
  EXPECT_EQ(h.run(tcp("198.18.70.2", 40000, 80, kSyn)), XDP_PASS);
  EXPECT_EQ(h.stat(BG_STAT_SYN_PASSED), 1u);
}

// A frame of a source not known under the default rule is held back before
// the policy stage once the full pipeline has brought one such frame to the
// unproven share in the policy's generation on its CPU (bg_early): the same
// verdicts and counts, for less. The generation a CPU armed for ends with the
// next apply, whose policy then decides from its first frame; a frame another
// rule takes is never held there.
TEST(EarlyHold, TheFirstFrameOfAGenerationArmsItsCpu) {
  OneCpu pin;
  auto h = FilterHarness::load_or_abort(policy_from_yaml(share_policy(10)), 4096);
  EXPECT_FALSE(h.early(0).armed);
  EXPECT_EQ(h.run(udp("198.18.77.1")), XDP_PASS);
  auto cfg = h.datapath().config();
  ASSERT_TRUE(cfg.ok());
  EXPECT_TRUE(h.early(0).armed);
  EXPECT_EQ(h.early(0).generation, cfg->generation);
  EXPECT_EQ(spread_flood(h, 59), 9u) << "the share's other 9 tokens";
  EXPECT_EQ(h.packets(BG_VERDICT_DROP, BG_REASON_UNPROVEN), 50u);
  EXPECT_EQ(h.source_count(), 10u) << "a frame held back touches no state";
}

TEST(EarlyHold, ANewPolicyDecidesFromItsFirstFrame) {
  OneCpu pin;
  auto h = FilterHarness::load_or_abort(policy_from_yaml(share_policy(10)), 4096);
  EXPECT_EQ(spread_flood(h, 50), 10u);
  ASSERT_TRUE(h.early(0).armed);
  // Dry-run: the held frames pass, counted as what they would have been.
  ASSERT_TRUE(h.datapath().apply(policy_from_yaml("dry_run: on\n" + share_policy(10))).ok());
  EXPECT_EQ(spread_flood(h, 20), 20u);
  EXPECT_EQ(h.packets(BG_VERDICT_DROP, BG_REASON_UNPROVEN), 40u) << "none more dropped";
  EXPECT_FALSE(h.early(0).armed && h.early(0).generation == h.datapath().config()->generation)
      << "a dry-run generation is never armed";
  // No share: every source under its limit passes.
  ASSERT_TRUE(h.datapath()
                  .apply(policy_from_yaml(
                      "limits: {rate: 100, burst: 100, new_sources: off, unproven: off}\n"))
                  .ok());
  EXPECT_EQ(spread_flood(h, 20), 20u);
  // A rule of the protocol's passes every UDP frame.
  ASSERT_TRUE(
      h.datapath()
          .apply(policy_from_yaml(share_policy(10) + "rules: [{match: udp, action: pass}]\n"))
          .ok());
  EXPECT_EQ(spread_flood(h, 20), 20u);
  // The share again: used up, as the admission map kept it.
  ASSERT_TRUE(h.datapath().apply(policy_from_yaml(share_policy(10))).ok());
  EXPECT_EQ(spread_flood(h, 20), 0u);
  EXPECT_EQ(h.packets(BG_VERDICT_DROP, BG_REASON_UNPROVEN), 60u);
}

TEST(EarlyHold, AFrameOfAnotherRuleIsDecidedByIt) {
  OneCpu pin;
  auto h = FilterHarness::load_or_abort(
      policy_from_yaml(share_policy(10) + "rules: [{match: udp/53, action: pass}, {match: "
                                          "udp/54, action: drop}, {match: udp/55, rate: 1000}]\n"),
      4096);
  EXPECT_EQ(spread_flood(h, 50), 10u);
  ASSERT_TRUE(h.early(0).armed);
  auto to = [](const std::string &src, uint16_t port) {
    return PacketBuilder().ipv4(src, kServer).udp(40000, port).build();
  };
  EXPECT_EQ(h.run(to("198.19.50.1", 53)), XDP_PASS);
  EXPECT_EQ(h.run(to("198.19.50.2", 54)), XDP_DROP);
  EXPECT_EQ(h.packets(BG_VERDICT_PASS, BG_REASON_RULE), 1u);
  EXPECT_EQ(h.packets(BG_VERDICT_DROP, BG_REASON_RULE), 1u);
  // A limiting rule of its own: its sources share the unproven share too.
  EXPECT_EQ(h.run(to("198.19.50.3", 55)), XDP_DROP);
  EXPECT_EQ(h.run(to("198.19.50.4", 9)), XDP_DROP);
  EXPECT_EQ(h.packets(BG_VERDICT_DROP, BG_REASON_UNPROVEN), 42u);
}

TEST(EarlyHold, TheListsStillDecideAHeldFrame) {
  OneCpu pin;
  auto h = FilterHarness::load_or_abort(
      policy_from_yaml("allow: [198.18.9.0/24]\ndeny: [198.18.10.0/24]\n" + share_policy(10)),
      4096);
  EXPECT_EQ(spread_flood(h, 50), 10u);
  ASSERT_TRUE(h.early(0).armed);
  EXPECT_EQ(h.run(udp("198.18.9.5")), XDP_PASS);
  EXPECT_EQ(h.run(udp("198.18.10.5")), XDP_DROP);
  EXPECT_EQ(h.packets(BG_VERDICT_PASS, BG_REASON_ALLOW), 1u);
  EXPECT_EQ(h.packets(BG_VERDICT_DROP, BG_REASON_DENY), 1u);
}

TEST(EarlyHold, ASynStillGoesToTheSynBudgetAndAnAckToItsProof) {
  OneCpu pin;
  const unsigned cpus = static_cast<unsigned>(libbpf_num_possible_cpus());
  auto h = FilterHarness::load_or_abort(
      policy_from_yaml(share_policy(
          10, 0,
          fmt::format("rate: 100, burst: 100, new_sources: {{rate: 1, burst: {}}}", 3 * cpus))),
      4096);
  spread_flood(h, 50);
  ASSERT_TRUE(h.early(0).armed);
  int passed = 0;
  for (int i = 0; i < 5; i++)
    passed += h.run(tcp(fmt::format("198.19.60.{}", i + 1), 40000, 80, kSyn)) == XDP_PASS;
  EXPECT_EQ(passed, 3) << "the SYN budget: 3 at once on this CPU";
  EXPECT_EQ(h.stat(BG_STAT_SYN_PASSED), 3u);
  // A bare ACK without a cookie or a socket tries its proof, and fails.
  EXPECT_EQ(h.run(tcp("198.19.60.9", 40000, 80, kAck)), XDP_DROP);
  EXPECT_EQ(h.stat(BG_STAT_PROOF_FAILED), 1u);
}

// One source its part of the share held back (the share had room) is held
// back on its CPU at the cost of a compare until its part has room again
// (bg_early.held_until_ns), then its part lets it through as before.
TEST(EarlyHold, OneSourceHeldByItsPartIsHeldUntilItsPartHasRoom) {
  OneCpu pin;
  // 20 a second on each CPU, 2 at once: its part is 10 a second, 1 at once.
  auto h = FilterHarness::load_or_abort(
      policy_from_yaml(share_policy(2, 20, "rate: 100, new_sources: off")), 4096);
  EXPECT_EQ(h.run(udp("198.19.9.9")), XDP_PASS);
  EXPECT_EQ(h.run(udp("198.19.9.9")), XDP_DROP);
  const bg_early e = h.early(0);
  EXPECT_GT(e.held_until_ns, 0u);
  EXPECT_EQ(std::memcmp(e.held_addr + 12, "\xc6\x13\x09\x09", 4), 0) << "198.19.9.9";
  for (int i = 0; i < 5; i++)
    EXPECT_EQ(h.run(udp("198.19.9.9")), XDP_DROP);
  EXPECT_EQ(h.run(udp("198.19.9.10")), XDP_PASS) << "another source: the other half";
  EXPECT_EQ(h.packets(BG_VERDICT_DROP, BG_REASON_UNPROVEN), 6u);
  usleep(250 * 1000);  // its part's token comes back in 100 ms
  EXPECT_EQ(h.run(udp("198.19.9.9")), XDP_PASS);
  EXPECT_EQ(h.source("198.19.9.9")->packets, 2u);

  // Held again; then a policy that allows it decides its next frame.
  EXPECT_EQ(h.run(udp("198.19.9.9")), XDP_DROP);
  ASSERT_GT(h.early(0).held_until_ns, 0u);
  ASSERT_TRUE(h.datapath()
                  .apply(policy_from_yaml("allow: [198.19.9.9/32]\n" +
                                          share_policy(2, 20, "rate: 100, new_sources: off")))
                  .ok());
  EXPECT_EQ(h.run(udp("198.19.9.11")), XDP_PASS) << "arms the new generation";
  EXPECT_EQ(h.run(udp("198.19.9.9")), XDP_PASS);
  EXPECT_EQ(h.packets(BG_VERDICT_PASS, BG_REASON_ALLOW), 1u);
}

}  // namespace
}  // namespace bpfgate::test::unproven
