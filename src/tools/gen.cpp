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

}  // namespace

int main(int argc, char **argv) {
  Options o;
  CLI::App app{"bpfgate-gen: bounded AF_PACKET traffic generator"};
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
  CLI11_PARSE(app, argc, argv);

  bool v6 = o.src.find(':') != std::string::npos;
  uint32_t src_base = 0, src_mask = 0;
  std::array<uint8_t, 16> src6_base{}, src6_mask{};
  if (v6 ? !parse_v6_prefix(o.src, src6_base, src6_mask)
         : !parse_v4_prefix(o.src, src_base, src_mask)) {
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
  int fd = socket(AF_PACKET, SOCK_RAW, 0);
  if (fd < 0) {
    fmt::print(stderr, "bpfgate-gen: AF_PACKET socket: {}\n", std::strerror(errno));
    return 1;
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
    return 1;
  }

  core::PacketBuilder b;
  b.eth(smac, dmac);
  if (o.vlan >= 0)
    b.vlan(static_cast<uint16_t>(o.vlan));
  if (v6) {
    std::array<uint8_t, 16> dst{};
    if (inet_pton(AF_INET6, o.dst.c_str(), dst.data()) != 1) {
      fmt::print(stderr, "bpfgate-gen: bad --dst '{}' for IPv6 sources\n", o.dst);
      return 2;
    }
    b.ipv6(src6_base, dst);
  } else
    b.ipv4(src_base | (src_mask ? 1 : 0), [&] {
      in_addr d{};
      inet_pton(AF_INET, o.dst.c_str(), &d);
      return ntohl(d.s_addr);
    }());
  if (o.proto == "tcp")
    b.tcp(o.sport, o.dport);
  else
    b.udp(o.sport, o.dport);
  b.frame_size(o.size);
  const std::vector<uint8_t> tmpl = b.build();
  const size_t ip_off = 14 + (o.vlan >= 0 ? 4 : 0);

  std::vector<std::vector<uint8_t>> frames(o.batch, tmpl);
  std::vector<iovec> iov(o.batch);
  std::vector<mmsghdr> msgs(o.batch);
  for (unsigned i = 0; i < o.batch; i++) {
    iov[i] = {frames[i].data(), frames[i].size()};
    msgs[i].msg_hdr = {};
    msgs[i].msg_hdr.msg_iov = &iov[i];
    msgs[i].msg_hdr.msg_iovlen = 1;
  }
  std::mt19937 rng(o.seed);
  const bool random_src = !v6 && src_mask != 0;
  const bool random_src6 =
      v6 && std::any_of(src6_mask.begin(), src6_mask.end(), [](uint8_t m) { return m != 0; });
  if (random_src && o.proto == "udp") {
    // UDP checksum 0 (none) so that each source rewrite only touches the IP header.
    for (auto &f : frames)
      f[ip_off + 20 + 6] = f[ip_off + 20 + 7] = 0;
  }

  uint64_t sent = 0, errors = 0;
  auto start = Clock::now();
  auto deadline = start + std::chrono::duration<double>(o.duration);
  while (sent < o.count && Clock::now() < deadline) {
    unsigned n = static_cast<unsigned>(std::min<uint64_t>(o.batch, o.count - sent));
    if (random_src) {
      for (unsigned i = 0; i < n; i++) {
        uint8_t *ip = frames[i].data() + ip_off;
        uint32_t s = htonl(src_base | (rng() & src_mask));
        std::memcpy(ip + 12, &s, 4);
        ip[10] = ip[11] = 0;
        uint16_t c = core::inet_checksum(ip, 20);
        ip[10] = c >> 8, ip[11] = c & 0xff;
        if (o.proto == "tcp") {  // recompute TCP checksum over pseudo header
          uint8_t *th = ip + 20;
          size_t l4len = frames[i].size() - ip_off - 20;
          th[16] = th[17] = 0;
          uint32_t ps = ((ip[12] << 8) | ip[13]) + ((ip[14] << 8) | ip[15]) +
                        ((ip[16] << 8) | ip[17]) + ((ip[18] << 8) | ip[19]) + 6 +
                        static_cast<uint32_t>(l4len);
          uint16_t tc = core::inet_checksum(th, l4len, ps);
          th[16] = tc >> 8, th[17] = tc & 0xff;
        }
      }
    }
    if (random_src6) {
      for (unsigned i = 0; i < n; i++) {
        uint8_t *ip6 = frames[i].data() + ip_off;
        for (int k = 0; k < 16; k += 4) {
          uint32_t r = rng();
          for (int j = 0; j < 4; j++)
            ip6[8 + k + j] =
                static_cast<uint8_t>(src6_base[k + j] | ((r >> (8 * j)) & src6_mask[k + j]));
        }
        v6_l4_checksum(ip6, frames[i].size() - ip_off - 40, o.proto == "tcp");
      }
    }
    int r = sendmmsg(fd, msgs.data(), n, 0);
    if (r < 0) {
      if (errno == ENOBUFS || errno == EAGAIN) {
        errors++;
        std::this_thread::yield();
        continue;
      }
      fmt::print(stderr, "bpfgate-gen: sendmmsg: {}\n", std::strerror(errno));
      return 1;
    }
    sent += static_cast<uint64_t>(r);
    if (o.rate > 0) {
      auto due = start + std::chrono::duration<double>(sent / o.rate);
      auto now = Clock::now();
      if (due > now)
        std::this_thread::sleep_until(std::min(due, deadline));
    }
  }
  double secs = std::chrono::duration<double>(Clock::now() - start).count();
  if (o.json)
    fmt::print("{{\"sent\":{},\"seconds\":{:.6f},\"pps\":{:.1f},\"send_errors\":{}}}\n", sent, secs,
               secs > 0 ? sent / secs : 0.0, errors);
  else
    fmt::print("sent {} frames in {:.3f}s ({:.0f} pps), {} send errors\n", sent, secs,
               secs > 0 ? sent / secs : 0.0, errors);
  close(fd);
  return 0;
}
