// bpfgate-gen: a bounded traffic generator for tests, the demo and benchmarks.
// Sends crafted Ethernet frames on one interface through AF_PACKET with
// PACKET_QDISC_BYPASS and sendmmsg batches; sources may be one address or
// random addresses drawn from a prefix (spoofed-source floods).
#include <CLI/CLI.hpp>
#include <arpa/inet.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstring>
#include <random>
#include <thread>

#include <fmt/format.h>

#include "core/packet.hpp"
#include "util/netif.hpp"

using namespace bpfgate;
using Clock = std::chrono::steady_clock;

namespace {

struct Options {
  std::string iface, dst_mac = "ff:ff:ff:ff:ff:ff", src = "198.18.0.2", dst = "198.18.0.1";
  std::string proto = "udp";
  uint16_t sport = 40000, dport = 9;
  size_t size = 64;
  uint64_t count = 1000;
  double rate = 0;       // packets/s; 0 = as fast as possible
  double duration = 10;  // seconds, upper bound
  unsigned batch = 64;
  int vlan = -1;
  bool json = false;
  uint32_t seed = 1;
};

// "198.18.0.0/15" -> base and host mask; a plain address -> mask 0.
bool parse_v4_prefix(const std::string &s, uint32_t &base, uint32_t &host_mask) {
  auto slash = s.find('/');
  in_addr a{};
  if (inet_pton(AF_INET, s.substr(0, slash).c_str(), &a) != 1)
    return false;
  int len = slash == std::string::npos ? 32 : std::stoi(s.substr(slash + 1));
  if (len < 0 || len > 32)
    return false;
  host_mask = len == 32 ? 0 : (0xffffffffu >> len);
  base = ntohl(a.s_addr) & ~host_mask;
  return true;
}

// "2001:db8::/32" -> the address and the mask of its host bits, byte by
// byte; a plain address -> an all-zero mask.
bool parse_v6_prefix(const std::string &s, std::array<uint8_t, 16> &base,
                     std::array<uint8_t, 16> &host_mask) {
  auto slash = s.find('/');
  in6_addr a{};
  if (inet_pton(AF_INET6, s.substr(0, slash).c_str(), &a) != 1)
    return false;
  int len = 128;
  if (slash != std::string::npos) {
    try {
      len = std::stoi(s.substr(slash + 1));
    } catch (...) {
      return false;
    }
  }
  if (len < 0 || len > 128)
    return false;
  for (int i = 0; i < 16; i++) {
    int bits = std::clamp(len - 8 * i, 0, 8);  // prefix bits in this byte
    host_mask[i] = static_cast<uint8_t>(0xff >> bits);
    base[i] = a.s6_addr[i] & static_cast<uint8_t>(~host_mask[i]);
  }
  return true;
}

// The transport checksum of an IPv6 frame's UDP or TCP header at l4 (IPv6
// header right before it), computed again after its source changed.
void v6_l4_checksum(uint8_t *ip6, size_t l4len, bool tcp) {
  uint8_t *l4 = ip6 + 40;
  size_t at = tcp ? 16 : 6;
  l4[at] = l4[at + 1] = 0;
  uint32_t ps = tcp ? 6 : 17;
  ps += static_cast<uint32_t>(l4len);
  for (int i = 8; i < 40; i += 2)
    ps += static_cast<uint32_t>(ip6[i] << 8 | ip6[i + 1]);
  uint16_t c = core::inet_checksum(l4, l4len, ps);
  if (!tcp && c == 0)
    c = 0xffff;
  l4[at] = c >> 8, l4[at + 1] = c & 0xff;
}

void add_options(CLI::App &app, Options &o) {
  app.add_option("-i,--iface", o.iface, "interface to send on")->required();
  app.add_option("--dst-mac", o.dst_mac, "destination MAC")->capture_default_str();
  app.add_option("--src", o.src, "source address, or IPv4 or IPv6 prefix for random sources")
      ->capture_default_str();
  app.add_option("--dst", o.dst, "destination address")->capture_default_str();
  app.add_option("--proto", o.proto, "udp|tcp")->check(CLI::IsMember({"udp", "tcp"}));
  app.add_option("--sport", o.sport)->capture_default_str();
  app.add_option("--dport", o.dport)->capture_default_str();
  app.add_option("--size", o.size, "frame size in bytes")->check(CLI::Range(60, 9000));
  app.add_option("-n,--count", o.count, "packets to send")->capture_default_str();
  app.add_option("--rate", o.rate, "packets per second (0: as fast as possible)");
  app.add_option("--duration", o.duration, "stop after this many seconds at the latest")
      ->check(CLI::Range(0.001, 3600.0))
      ->capture_default_str();
  app.add_option("--batch", o.batch, "frames per sendmmsg")->check(CLI::Range(1, 1024));
  app.add_option("--vlan", o.vlan, "802.1Q tag")->check(CLI::Range(0, 4095));
  app.add_option("--seed", o.seed, "random seed for sources");
  app.add_flag("-j,--json", o.json, "print the summary as JSON");
}

// --src: one address, or a prefix random sources are drawn from.
struct Sources {
  bool v6 = false;
  uint32_t base = 0, mask = 0;
  std::array<uint8_t, 16> base6{}, mask6{};
  bool random() const {
    return v6 ? std::any_of(mask6.begin(), mask6.end(), [](uint8_t m) { return m != 0; })
              : mask != 0;
  }
};

// An AF_PACKET socket bound to the interface, bypassing the qdisc; -1 (said
// on stderr) when it cannot be had.
int open_socket(unsigned ifindex, const core::Mac &dmac) {
  int fd = socket(AF_PACKET, SOCK_RAW, 0);
  if (fd < 0) {
    fmt::print(stderr, "bpfgate-gen: AF_PACKET socket: {}\n", std::strerror(errno));
    return -1;
  }
  int one = 1;
  setsockopt(fd, SOL_PACKET, PACKET_QDISC_BYPASS, &one, sizeof(one));
  sockaddr_ll sll{};
  sll.sll_family = AF_PACKET;
  sll.sll_ifindex = static_cast<int>(ifindex);
  sll.sll_halen = 6;
  std::memcpy(sll.sll_addr, dmac.data(), 6);
  if (bind(fd, reinterpret_cast<sockaddr *>(&sll), sizeof(sll)) != 0) {
    fmt::print(stderr, "bpfgate-gen: bind: {}\n", std::strerror(errno));
    return -1;
  }
  return fd;
}

// The frame every send starts from (the first address of a prefix); false
// (said on stderr) on a bad --dst.
bool frame_template(const Options &o, const Sources &src, const core::Mac &smac,
                    const core::Mac &dmac, std::vector<uint8_t> &out) {
  core::PacketBuilder b;
  b.eth(smac, dmac);
  if (o.vlan >= 0)
    b.vlan(static_cast<uint16_t>(o.vlan));
  if (src.v6) {
    std::array<uint8_t, 16> dst{};
    if (inet_pton(AF_INET6, o.dst.c_str(), dst.data()) != 1) {
      fmt::print(stderr, "bpfgate-gen: bad --dst '{}' for IPv6 sources\n", o.dst);
      return false;
    }
    b.ipv6(src.base6, dst);
  } else
    b.ipv4(src.base | (src.mask ? 1 : 0), [&] {
      in_addr d{};
      inet_pton(AF_INET, o.dst.c_str(), &d);
      return ntohl(d.s_addr);
    }());
  if (o.proto == "tcp")
    b.tcp(o.sport, o.dport);
  else
    b.udp(o.sport, o.dport);
  b.frame_size(o.size);
  out = b.build();
  return true;
}

// A random IPv4 source from the prefix, with the IP checksum and (TCP) the
// transport checksum over the pseudo header made again.
void random_v4_source(std::vector<uint8_t> &frame, size_t ip_off, const Sources &src,
                      std::mt19937 &rng, bool tcp) {
  uint8_t *ip = frame.data() + ip_off;
  uint32_t s = htonl(src.base | (rng() & src.mask));
  std::memcpy(ip + 12, &s, 4);
  ip[10] = ip[11] = 0;
  uint16_t c = core::inet_checksum(ip, 20);
  ip[10] = c >> 8, ip[11] = c & 0xff;
  if (!tcp)
    return;
  uint8_t *th = ip + 20;
  size_t l4len = frame.size() - ip_off - 20;
  th[16] = th[17] = 0;
  uint32_t ps = ((ip[12] << 8) | ip[13]) + ((ip[14] << 8) | ip[15]) + ((ip[16] << 8) | ip[17]) +
                ((ip[18] << 8) | ip[19]) + 6 + static_cast<uint32_t>(l4len);
  uint16_t tc = core::inet_checksum(th, l4len, ps);
  th[16] = tc >> 8, th[17] = tc & 0xff;
}

void random_v6_source(std::vector<uint8_t> &frame, size_t ip_off, const Sources &src,
                      std::mt19937 &rng, bool tcp) {
  uint8_t *ip6 = frame.data() + ip_off;
  for (int k = 0; k < 16; k += 4) {
    uint32_t r = rng();
    for (int j = 0; j < 4; j++)
      ip6[8 + k + j] = static_cast<uint8_t>(src.base6[k + j] | ((r >> (8 * j)) & src.mask6[k + j]));
  }
  v6_l4_checksum(ip6, frame.size() - ip_off - 40, tcp);
}

// One sendmmsg batch of copies of the template.
struct Batch {
  std::vector<std::vector<uint8_t>> frames;
  std::vector<iovec> iov;
  std::vector<mmsghdr> msgs;
  Batch(unsigned n, const std::vector<uint8_t> &tmpl) : frames(n, tmpl), iov(n), msgs(n) {
    for (unsigned i = 0; i < n; i++) {
      iov[i] = {frames[i].data(), frames[i].size()};
      msgs[i].msg_hdr = {};
      msgs[i].msg_hdr.msg_iov = &iov[i];
      msgs[i].msg_hdr.msg_iovlen = 1;
    }
  }
};

struct Sent {
  uint64_t frames = 0, errors = 0;
  double seconds = 0;
};

// Sends until --count frames or --duration, at --rate; false (said on
// stderr) when sendmmsg fails for another reason than a full queue.
bool send_frames(int fd, const Options &o, const Sources &src, const std::vector<uint8_t> &tmpl,
                 Sent &out) {
  const size_t ip_off = 14 + (o.vlan >= 0 ? 4 : 0);
  const bool tcp = o.proto == "tcp";
  Batch batch(o.batch, tmpl);
  std::mt19937 rng(o.seed);
  const bool random = src.random();
  if (random && !src.v6 && !tcp) {
    // UDP checksum 0 (none) so that each source rewrite only touches the IP header.
    for (auto &f : batch.frames)
      f[ip_off + 20 + 6] = f[ip_off + 20 + 7] = 0;
  }
  auto start = Clock::now();
  auto deadline = start + std::chrono::duration<double>(o.duration);
  while (out.frames < o.count && Clock::now() < deadline) {
    unsigned n = static_cast<unsigned>(std::min<uint64_t>(o.batch, o.count - out.frames));
    for (unsigned i = 0; random && i < n; i++)
      (src.v6 ? random_v6_source : random_v4_source)(batch.frames[i], ip_off, src, rng, tcp);
    int r = sendmmsg(fd, batch.msgs.data(), n, 0);
    if (r < 0) {
      if (errno == ENOBUFS || errno == EAGAIN) {
        out.errors++;
        std::this_thread::yield();
        continue;
      }
      fmt::print(stderr, "bpfgate-gen: sendmmsg: {}\n", std::strerror(errno));
      return false;
    }
    out.frames += static_cast<uint64_t>(r);
    if (o.rate > 0) {
      auto due = start + std::chrono::duration<double>(out.frames / o.rate);
      auto now = Clock::now();
      if (due > now)
        std::this_thread::sleep_until(std::min(due, deadline));
    }
  }
  out.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  return true;
}

}  // namespace

int main(int argc, char **argv) {
  Options o;
  CLI::App app{"bpfgate-gen: bounded AF_PACKET traffic generator"};
  add_options(app, o);
  CLI11_PARSE(app, argc, argv);

  Sources src;
  src.v6 = o.src.find(':') != std::string::npos;
  if (src.v6 ? !parse_v6_prefix(o.src, src.base6, src.mask6)
             : !parse_v4_prefix(o.src, src.base, src.mask)) {
    fmt::print(stderr, "bpfgate-gen: bad --src '{}'\n", o.src);
    return 2;
  }
  core::Mac smac{}, dmac{};
  if (!core::parse_mac(o.dst_mac, dmac)) {
    fmt::print(stderr, "bpfgate-gen: bad --dst-mac '{}'\n", o.dst_mac);
    return 2;
  }
  unsigned ifindex = if_nametoindex(o.iface.c_str());
  if (!ifindex || !util::read_mac(o.iface, smac)) {
    fmt::print(stderr, "bpfgate-gen: no interface '{}'\n", o.iface);
    return 1;
  }
  int fd = open_socket(ifindex, dmac);
  if (fd < 0)
    return 1;
  std::vector<uint8_t> tmpl;
  if (!frame_template(o, src, smac, dmac, tmpl))
    return 2;
  Sent sent;
  if (!send_frames(fd, o, src, tmpl, sent))
    return 1;
  const double pps = sent.seconds > 0 ? sent.frames / sent.seconds : 0.0;
  if (o.json)
    fmt::print("{{\"sent\":{},\"seconds\":{:.6f},\"pps\":{:.1f},\"send_errors\":{}}}\n",
               sent.frames, sent.seconds, pps, sent.errors);
  else
    fmt::print("sent {} frames in {:.3f}s ({:.0f} pps), {} send errors\n", sent.frames,
               sent.seconds, pps, sent.errors);
  close(fd);
  return 0;
}
