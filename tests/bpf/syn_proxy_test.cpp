// The SYN answer (limits.syn_proxy): a held SYN, of a source without state
// or of an unproven one over the share, gets its SYN-ACK from the datapath
// (XDP_TX), carrying the cookie the host's kernel would have sent, so that
// its first ACK proves the client and the listener never sees the SYN.
// Crafted frames here; tests/integration/syn_proxy_test.cpp connects real
// clients through it.
#include <arpa/inet.h>
#include <linux/bpf.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <gtest/gtest.h>

#include <fmt/format.h>

#include "features/xdp/datapath.hpp"
#include "features/xdp/filter.hpp"
#include "core/packet.hpp"
#include "core/policy.hpp"
#include "support/filter_harness.hpp"
#include "support/one_cpu.hpp"
#include "support/prog_runner.hpp"
#include "support/system.hpp"

namespace bpfgate::test::syn_proxy {
namespace {

using core::PacketBuilder;
constexpr const char *kServer = "198.18.0.1";
constexpr const char *kServer6 = "2001:db8::1";
constexpr uint16_t kPort = 8080, kClosed = 9999;
constexpr uint8_t kSyn = 0x02, kAck = 0x10;
constexpr uint32_t kIsn = 0x10203040, kTsval = 0x01020304;

// A Linux client's SYN options: MSS 1460, SACK permitted, timestamps, NOP,
// window scale 7.
std::vector<uint8_t> linux_options() {
  return {2, 4, 0x05, 0xb4, 4, 2, 8, 10, 0x01, 0x02, 0x03, 0x04, 0, 0, 0, 0, 1, 3, 3, 7};
}

std::vector<uint8_t> syn(const std::string &src, uint16_t dport = kPort, bool options = true) {
  PacketBuilder b;
  if (src.find(':') != std::string::npos)
    b.ipv6(src, kServer6);
  else
    b.ipv4(src, kServer);
  b.tcp(40000, dport, kSyn).tcp_seq(kIsn, 0);
  if (options)
    b.tcp_options(linux_options());
  return b.build();
}

std::vector<uint8_t> ack(const std::string &src, uint32_t cookie) {
  PacketBuilder b;
  if (src.find(':') != std::string::npos)
    b.ipv6(src, kServer6);
  else
    b.ipv4(src, kServer);
  return b.tcp(40000, kPort, kAck).tcp_seq(kIsn + 1, cookie + 1).build();
}

std::vector<uint8_t> udp(const std::string &src) {
  return PacketBuilder().ipv4(src, kServer).udp(40000, 9).build();
}

uint16_t get16(const std::vector<uint8_t> &f, size_t at) {
  return static_cast<uint16_t>(f.at(at) << 8 | f.at(at + 1));
}
uint32_t get32(const std::vector<uint8_t> &f, size_t at) {
  return static_cast<uint32_t>(get16(f, at)) << 16 | get16(f, at + 2);
}

// The ones'-complement sum of 16-bit words, folded.
uint32_t sum16(const uint8_t *p, size_t n, uint32_t sum = 0) {
  for (size_t i = 0; i + 1 < n; i += 2)
    sum += static_cast<uint32_t>(p[i] << 8 | p[i + 1]);
  if (n & 1)
    sum += static_cast<uint32_t>(p[n - 1] << 8);
  while (sum >> 16)
    sum = (sum & 0xffff) + (sum >> 16);
  return sum;
}

// What the SYN-ACK says, read back from the frame (untagged Ethernet).
struct SynAck {
  bool v6 = false;
  std::string src, dst;
  uint16_t sport = 0, dport = 0;
  uint32_t seq = 0, ack = 0;
  uint8_t flags = 0, ttl = 0;
  uint16_t mss = 0;
  int wscale = -1;
  bool sack = false, ts = false;
  uint32_t tsval = 0, tsecr = 0;
  bool ip_csum_ok = false, tcp_csum_ok = false;
  size_t tcp_len = 0;
};

SynAck read_synack(const std::vector<uint8_t> &f) {
  SynAck a;
  if (f.size() < 14u + 20 + 20) {
    ADD_FAILURE() << "frame of " << f.size() << " bytes";
    return a;
  }
  a.v6 = get16(f, 12) == 0x86dd;
  size_t l4 = a.v6 ? 14 + 40 : 14 + 20;
  a.tcp_len = (f[l4 + 12] >> 4) * 4u;
  if (f.size() != l4 + a.tcp_len || a.tcp_len < 20) {
    ADD_FAILURE() << "frame of " << f.size() << " bytes, TCP header of " << a.tcp_len;
    return a;
  }
  const uint32_t len = static_cast<uint32_t>(a.tcp_len);
  char buf[INET6_ADDRSTRLEN];
  uint32_t pseudo;
  if (a.v6) {
    a.src = inet_ntop(AF_INET6, &f[14 + 8], buf, sizeof(buf));
    a.dst = inet_ntop(AF_INET6, &f[14 + 24], buf, sizeof(buf));
    a.ttl = f[14 + 7];
    a.ip_csum_ok = get16(f, 14 + 4) == len && f[14 + 6] == 6;
    pseudo = sum16(&f[14 + 8], 32, 6 + len);
  } else {
    a.src = inet_ntop(AF_INET, &f[14 + 12], buf, sizeof(buf));
    a.dst = inet_ntop(AF_INET, &f[14 + 16], buf, sizeof(buf));
    a.ttl = f[14 + 8];
    a.ip_csum_ok = sum16(&f[14], 20) == 0xffff && get16(f, 14 + 2) == 20 + len && f[14] == 0x45;
    pseudo = sum16(&f[14 + 12], 8, 6 + len);
  }
  a.tcp_csum_ok = sum16(&f[l4], len, pseudo) == 0xffff;
  a.sport = get16(f, l4), a.dport = get16(f, l4 + 2);
  a.seq = get32(f, l4 + 4), a.ack = get32(f, l4 + 8);
  a.flags = f[l4 + 13];
  for (size_t i = l4 + 20; i < l4 + len;) {
    uint8_t kind = f[i];
    if (kind == 0)
      break;
    if (kind == 1) {
      i++;
      continue;
    }
    uint8_t len = f[i + 1];
    if (kind == 2)
      a.mss = get16(f, i + 2);
    if (kind == 3)
      a.wscale = f[i + 2];
    if (kind == 4)
      a.sack = true;
    if (kind == 8)
      a.ts = true, a.tsval = get32(f, i + 2), a.tsecr = get32(f, i + 6);
    i += len ? len : 1;
  }
  return a;
}

// A namespace of its own with the sysctls the answer needs, a listener on
// kPort (IPv4 and IPv6), and the filter loaded there with the unproven share
// at one frame on this CPU, then one every 100 s: the first UDP frame takes
// it, every later new source is held.
struct Answering {
  Netns ns{unique_prefix() + "-synp"};
  bpf::UniqueFd listen4, listen6;
  std::optional<FilterHarness> h;

  explicit Answering(const std::string &sysctls =
                         "net.ipv4.tcp_syncookies=2 "
                         "net.ipv4.tcp_timestamps=2",
                     const std::string &extra = ", syn_proxy: on") {
    run_ok(ns.exec() + "ip link set lo up");
    run_ok(ns.exec() + "sysctl -qw " + sysctls);
    ns.within([&] {
      listen4 = listener(AF_INET);
      listen6 = listener(AF_INET6);
      const unsigned cpus = static_cast<unsigned>(libbpf_num_possible_cpus());
      h.emplace(FilterHarness::load_or_abort(
          policy_from_yaml(fmt::format("limits: {{rate: 100, burst: 100, new_sources: off, "
                                       "unproven: {{rate: 1, burst: {}}}{}}}\n",
                                       cpus, extra)),
          4096));
    });
  }

  static bpf::UniqueFd listener(int family) {
    bpf::UniqueFd fd(::socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0));
    int one = 1;
    setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    sockaddr_storage ss{};
    socklen_t len;
    if (family == AF_INET6) {
      auto *a = reinterpret_cast<sockaddr_in6 *>(&ss);
      a->sin6_family = AF_INET6;
      a->sin6_port = htons(kPort);
      setsockopt(fd.get(), IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
      len = sizeof(*a);
    } else {
      auto *a = reinterpret_cast<sockaddr_in *>(&ss);
      a->sin_family = AF_INET;
      a->sin_port = htons(kPort);
      len = sizeof(*a);
    }
    EXPECT_EQ(::bind(fd.get(), reinterpret_cast<sockaddr *>(&ss), len), 0) << strerror(errno);
    EXPECT_EQ(::listen(fd.get(), 16), 0);
    return fd;
  }

  RunResult run(const std::vector<uint8_t> &frame) {
    RunResult out;
    ns.within([&] {
      auto r = ProgRunner(h->prog_fd()).run(frame);
      EXPECT_TRUE(r.ok()) << r.error().what();
      if (r.ok())
        out = *r;
    });
    return out;
  }

  // The share used up, and the listener's port fresh (the first held SYN to
  // a port no SYN reached goes to the stack, whose cookie wakes its listener).
  void hold_and_refresh() {
    EXPECT_EQ(run(udp("198.19.0.1")).retval, XDP_PASS) << "takes the share";
    EXPECT_EQ(run(udp("198.19.0.2")).retval, XDP_DROP) << "held";
    EXPECT_EQ(run(syn("198.19.0.3")).retval, XDP_PASS) << "the port's first held SYN";
    EXPECT_EQ(h->stat(BG_STAT_SYN_REFRESH), 1u);
  }
};

TEST(SynProxy, AHeldSynIsAnsweredWithTheKernelsCookieAndItsAckProvesTheClient) {
  if (!agent::syncookie_helpers())
    GTEST_SKIP() << "this kernel has no bpf_tcp_raw_gen_syncookie (Linux 6.0)";
  OneCpu pin;
  Answering a;
  a.hold_and_refresh();
  const auto host = [&] {
    agent::SynAnswerHost h;
    a.ns.within([&] { h = agent::syn_answer_host(); });
    return h;
  }();
  EXPECT_EQ(host.syncookies, 2);

  auto r = a.run(syn("198.18.0.7"));
  ASSERT_EQ(r.retval, XDP_TX);
  EXPECT_EQ(a.h->stat(BG_STAT_SYN_ANSWERED), 1u);
  EXPECT_EQ(a.h->packets(BG_VERDICT_DROP, BG_REASON_UNPROVEN), 2u) << "held: not passed";
  EXPECT_FALSE(a.h->source("198.18.0.7").has_value()) << "an answered SYN leaves no state";
  auto s = read_synack(r.data_out);
  EXPECT_EQ(s.src, kServer);
  EXPECT_EQ(s.dst, "198.18.0.7");
  EXPECT_EQ(s.sport, kPort);
  EXPECT_EQ(s.dport, 40000);
  EXPECT_EQ(s.flags, 0x12) << "SYN|ACK";
  EXPECT_EQ(s.ack, kIsn + 1);
  EXPECT_EQ(s.ttl, 64);
  EXPECT_TRUE(s.ip_csum_ok);
  EXPECT_TRUE(s.tcp_csum_ok);
  EXPECT_EQ(s.tcp_len, 40u) << "MSS, SACK, timestamps and window scale: as long as the SYN's";
  // The MAC addresses swapped (the builder's are 02:..:01 from, 02:..:02 to).
  EXPECT_EQ(r.data_out[5], 1);
  EXPECT_EQ(r.data_out[11], 2);
  // The loopback's MTU (65536, capped at 65535) less the headers.
  EXPECT_EQ(s.mss, 65535 - 40);
  // The options the kernel will decode from the cookie's timestamp.
  EXPECT_TRUE(s.ts);
  EXPECT_TRUE(s.sack);
  EXPECT_EQ(s.wscale, host.wscale);
  EXPECT_EQ(s.tsecr, kTsval);
  EXPECT_EQ(s.tsval & 0x3f, 7u | 0x10u) << "window scale 7 and SACK in the low bits";

  // The client's ACK carries the cookie: it proves the client, which now
  // passes whatever the share says.
  EXPECT_EQ(a.run(ack("198.18.0.7", s.seq)).retval, XDP_PASS);
  EXPECT_EQ(a.h->stat(BG_STAT_PROVEN), 1u);
  EXPECT_TRUE(a.h->known("198.18.0.7"));
  // A wrong cookie proves nothing.
  EXPECT_EQ(a.run(ack("198.18.0.8", s.seq)).retval, XDP_DROP);
  EXPECT_FALSE(a.h->known("198.18.0.8"));
}

TEST(SynProxy, TheAnswerFitsInTheSynsFrame) {
  if (!agent::syncookie_helpers())
    GTEST_SKIP() << "this kernel has no bpf_tcp_raw_gen_syncookie (Linux 6.0)";
  OneCpu pin;
  Answering a;
  a.hold_and_refresh();
  // A padded SYN without options (what floods send): the answer is shorter,
  // never longer (a veth's frame has no tailroom to grow into).
  auto padded =
      PacketBuilder().ipv4("198.18.0.20", kServer).tcp(40000, kPort, kSyn).frame_size(64).build();
  auto r = a.run(padded);
  ASSERT_EQ(r.retval, XDP_TX);
  EXPECT_EQ(r.data_out.size(), 14u + 20 + 24);
  EXPECT_TRUE(read_synack(r.data_out).tcp_csum_ok);
  // Timestamps without a window scale: 16 bytes of options.
  auto ts_only = PacketBuilder()
                     .ipv4("198.18.0.21", kServer)
                     .tcp(40000, kPort, kSyn)
                     .tcp_options({2, 4, 5, 0xb4, 1, 1, 8, 10, 0, 0, 0, 9, 0, 0, 0, 0})
                     .build();
  r = a.run(ts_only);
  ASSERT_EQ(r.retval, XDP_TX);
  auto s = read_synack(r.data_out);
  EXPECT_EQ(s.tcp_len, 36u);
  EXPECT_TRUE(s.ts);
  EXPECT_EQ(s.tsecr, 9u);
  EXPECT_EQ(s.wscale, -1);
  EXPECT_EQ(s.tsval & 0x3f, 0xfu) << "no window scale, no SACK";
  EXPECT_TRUE(s.tcp_csum_ok);
  EXPECT_EQ(a.h->stat(BG_STAT_SYN_ANSWERED), 2u);
}

TEST(SynProxy, IPv6SynsAreAnsweredToo) {
  if (!agent::syncookie_helpers())
    GTEST_SKIP() << "this kernel has no bpf_tcp_raw_gen_syncookie (Linux 6.0)";
  OneCpu pin;
  Answering a;
  a.hold_and_refresh();
  auto r = a.run(syn("2001:db8::7"));
  ASSERT_EQ(r.retval, XDP_TX);
  auto s = read_synack(r.data_out);
  EXPECT_TRUE(s.v6);
  EXPECT_EQ(s.src, kServer6);
  EXPECT_EQ(s.dst, "2001:db8::7");
  EXPECT_EQ(s.ttl, 64);
  EXPECT_TRUE(s.ip_csum_ok);
  EXPECT_TRUE(s.tcp_csum_ok);
  EXPECT_EQ(s.mss, 65535 - 60);
  EXPECT_EQ(a.run(ack("2001:db8::7", s.seq)).retval, XDP_PASS);
  EXPECT_EQ(a.h->stat(BG_STAT_PROVEN), 1u);
}

TEST(SynProxy, AClosedPortASynWithoutOptionsAndAnOldHostEachGetWhatTheyShould) {
  if (!agent::syncookie_helpers())
    GTEST_SKIP() << "this kernel has no bpf_tcp_raw_gen_syncookie (Linux 6.0)";
  OneCpu pin;
  {
    Answering a;
    a.hold_and_refresh();
    // No listener: not answered (a scan sees the port closed); the SYN goes
    // on as a held one, here on the SYN budget (new sources unbounded).
    EXPECT_EQ(a.run(syn("198.18.0.9", kClosed)).retval, XDP_PASS);
    EXPECT_EQ(a.h->stat(BG_STAT_SYN_ANSWERED), 0u);
    EXPECT_EQ(a.h->stat(BG_STAT_SYN_PASSED), 1u);
    // Without options: the MSS only.
    auto r = a.run(syn("198.18.0.10", kPort, false));
    ASSERT_EQ(r.retval, XDP_TX);
    auto s = read_synack(r.data_out);
    EXPECT_TRUE(s.tcp_csum_ok);
    EXPECT_TRUE(s.ip_csum_ok);
    EXPECT_EQ(s.tcp_len, 24u) << "the MSS alone";
    EXPECT_NE(s.mss, 0);
    EXPECT_FALSE(s.ts);
    EXPECT_FALSE(s.sack);
    EXPECT_EQ(s.wscale, -1);
    EXPECT_EQ(a.run(ack("198.18.0.10", s.seq)).retval, XDP_PASS);
  }
  {
    // Timestamps with a per-peer offset (tcp_timestamps=1, Linux's default):
    // answered without options, which the kernel would lose with the offset.
    Answering a("net.ipv4.tcp_syncookies=2 net.ipv4.tcp_timestamps=1");
    a.hold_and_refresh();
    auto r = a.run(syn("198.18.0.11"));
    ASSERT_EQ(r.retval, XDP_TX);
    auto s = read_synack(r.data_out);
    EXPECT_TRUE(s.tcp_csum_ok);
    EXPECT_EQ(s.tcp_len, 24u);
    EXPECT_FALSE(s.ts);
    EXPECT_EQ(s.wscale, -1);
  }
  {
    // Cookies only while the SYN queue overflows (tcp_syncookies=1): the
    // kernel would refuse the ACK of an answered SYN, so none is answered.
    Answering a("net.ipv4.tcp_syncookies=1");
    auto cfg = a.h->datapath().config();
    ASSERT_TRUE(cfg.ok());
    const auto &set = cfg->gen[cfg->active % BG_GENERATIONS];
    EXPECT_FALSE(set.flags & BG_SET_SYN_PROXY);
    EXPECT_TRUE(set.syn_opts & BG_SYN_OPT_ASKED);
    EXPECT_EQ(a.run(udp("198.19.0.1")).retval, XDP_PASS);
    EXPECT_EQ(a.run(syn("198.18.0.12")).retval, XDP_PASS) << "the SYN budget, as before";
    EXPECT_EQ(a.h->stat(BG_STAT_SYN_ANSWERED), 0u);
  }
  {
    Answering a("net.ipv4.tcp_syncookies=2", ", syn_proxy: off");
    EXPECT_EQ(a.run(udp("198.19.0.1")).retval, XDP_PASS);
    EXPECT_EQ(a.run(syn("198.18.0.13")).retval, XDP_PASS);
    EXPECT_EQ(a.h->stat(BG_STAT_SYN_ANSWERED), 0u);
  }
  {
    // Off by default.
    Answering a("net.ipv4.tcp_syncookies=2", "");
    EXPECT_EQ(a.run(udp("198.19.0.1")).retval, XDP_PASS);
    EXPECT_EQ(a.run(syn("198.18.0.13")).retval, XDP_PASS);
    EXPECT_EQ(a.h->stat(BG_STAT_SYN_ANSWERED), 0u);
    EXPECT_EQ(a.h->stat(BG_STAT_SYN_REFRESH), 0u);
  }
}

}  // namespace
}  // namespace bpfgate::test::syn_proxy
