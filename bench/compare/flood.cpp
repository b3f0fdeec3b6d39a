// bgcmp-flood: the comparison's flood generator. Runs bench/compare/flood.bpf.c
// with BPF_PROG_RUN in live-frames mode (BPF_F_TEST_XDP_LIVE_FRAMES, kernel 5.18+):
// the kernel builds each frame from a template and redirects it out of one
// interface, several Mpps on one core, where an AF_PACKET sender (bpfgate-gen)
// stops near 1 Mpps. On a veth the frames reach the peer as xdp_frames, so the
// receiving side allocates the skb (or not, if XDP drops the frame first) as a
// NIC driver would. xdp-trafficgen does the same, but xdp-tools 1.3.1 fails to
// load on kernels without the xdp_redirect_map_err tracepoint, and it has no
// random sources.
//
// Its options follow bpfgate-gen's: --proto udp (default) or tcp (SYNs);
// --src takes an address or a prefix, IPv4 or IPv6, for random sources drawn
// from it (every checksum that covers the source is fixed per frame); -j prints
// {"sent","seconds","pps","send_errors"} where sent counts frames handed to the
// interface (a full ring at the peer refuses some: count them there).
#include <CLI/CLI.hpp>
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <net/if.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstring>

#include <fmt/format.h>

#include "core/packet.hpp"
#include "util/netif.hpp"
#include "flood_gen.skel.h"

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
  bool json = false;
};

// An address or prefix, IPv4 or IPv6, as 16 bytes of address and of host mask
// (IPv4 in the first 4 bytes).
struct Prefix {
  bool v6 = false;
  std::array<uint8_t, 16> addr{}, host{};
};

bool parse_prefix(const std::string &s, Prefix &p) {
  auto slash = s.find('/');
  std::string a = s.substr(0, slash);
  p.v6 = a.find(':') != std::string::npos;
  if (inet_pton(p.v6 ? AF_INET6 : AF_INET, a.c_str(), p.addr.data()) != 1)
    return false;
  int bits = p.v6 ? 128 : 32, len = bits;
  if (slash != std::string::npos) {
    try {
      len = std::stoi(s.substr(slash + 1));
    } catch (...) {
      return false;
    }
  }
  if (len < 0 || len > bits)
    return false;
  for (int i = 0; i < bits; i++) {
    if (i < len)
      continue;
    p.host[i / 8] |= static_cast<uint8_t>(0x80 >> (i % 8));
    p.addr[i / 8] &= static_cast<uint8_t>(~(0x80 >> (i % 8)));
  }
  return true;
}

int silent_libbpf(enum libbpf_print_level level, const char *fmt, va_list args) {
  return level == LIBBPF_WARN ? vfprintf(stderr, fmt, args) : 0;
}

}  // namespace

int main(int argc, char **argv) {
  Options o;
  CLI::App app{"bgcmp-flood: bounded XDP live-frames flood generator (UDP, TCP SYN)"};
  app.add_option("-i,--iface", o.iface, "interface to send on")->required();
  app.add_option("--dst-mac", o.dst_mac, "destination MAC")->capture_default_str();
  app.add_option("--src", o.src, "source address, or prefix (IPv4 or IPv6) for random sources")
      ->capture_default_str();
  app.add_option("--dst", o.dst, "destination address")->capture_default_str();
  app.add_option("--proto", o.proto, "udp, or tcp: SYNs")
      ->check(CLI::IsMember({"udp", "tcp"}))
      ->capture_default_str();
  app.add_option("--sport", o.sport)->capture_default_str();
  app.add_option("--dport", o.dport)->capture_default_str();
  app.add_option("--size", o.size, "frame size in bytes")->check(CLI::Range(64, 1500));
  app.add_option("-n,--count", o.count, "packets to send")->capture_default_str();
  app.add_option("--rate", o.rate, "packets per second (0: as fast as possible)");
  app.add_option("--duration", o.duration, "stop after this many seconds at the latest")
      ->check(CLI::Range(0.001, 3600.0))
      ->capture_default_str();
  app.add_option("--batch", o.batch, "frames per live-frames batch")->check(CLI::Range(1, 256));
  app.add_flag("-j,--json", o.json, "print the summary as JSON");
  CLI11_PARSE(app, argc, argv);

  Prefix src;
  if (!parse_prefix(o.src, src)) {
    fmt::print(stderr, "bgcmp-flood: bad --src '{}'\n", o.src);
    return 2;
  }
  std::array<uint8_t, 16> dst{};
  if (inet_pton(src.v6 ? AF_INET6 : AF_INET, o.dst.c_str(), dst.data()) != 1) {
    fmt::print(stderr, "bgcmp-flood: bad --dst '{}' (same family as --src)\n", o.dst);
    return 2;
  }
  core::Mac smac{}, dmac{};
  if (!core::parse_mac(o.dst_mac, dmac)) {
    fmt::print(stderr, "bgcmp-flood: bad --dst-mac '{}'\n", o.dst_mac);
    return 2;
  }
  unsigned ifindex = if_nametoindex(o.iface.c_str());
  if (!ifindex || !util::read_mac(o.iface, smac)) {
    fmt::print(stderr, "bgcmp-flood: no interface '{}'\n", o.iface);
    return 1;
  }

  core::PacketBuilder b;
  b.eth(smac, dmac);
  if (src.v6)
    b.ipv6(src.addr, dst);
  else
    b.ipv4(ntohl([&] {
             uint32_t a;
             std::memcpy(&a, src.addr.data(), 4);
             return a;
           }()),
           ntohl([&] {
             uint32_t a;
             std::memcpy(&a, dst.data(), 4);
             return a;
           }()));
  const bool tcp = o.proto == "tcp";
  if (tcp)
    b.tcp(o.sport, o.dport, 0x02 /* SYN */);
  else
    b.udp(o.sport, o.dport);
  b.frame_size(o.size);
  std::vector<uint8_t> frame = b.build();
  const bool random = std::any_of(src.host.begin(), src.host.end(), [](uint8_t x) { return x; });
  const uint32_t src_off = src.v6 ? 14 + 8 : 14 + 12;
  const uint32_t l4_off = src.v6 ? 14 + 40 : 14 + 20;
  const uint32_t l4_csum_off = l4_off + (tcp ? 16 : 6);
  // IPv4: the header checksum, and TCP's (UDP's is set to 0, none: a new source then
  // changes only the IP header); IPv6: the transport's, the only one there.
  const uint32_t csum_off = src.v6 ? l4_csum_off : 14 + 10;
  const uint32_t csum2_off = !src.v6 && tcp ? l4_csum_off : 0;
  if (random && !src.v6 && !tcp)
    frame[l4_csum_off] = frame[l4_csum_off + 1] = 0;

  libbpf_set_print(silent_libbpf);
  flood_gen *skel = flood_gen__open();
  if (!skel) {
    fmt::print(stderr, "bgcmp-flood: open BPF object: {}\n", std::strerror(errno));
    return 1;
  }
  auto *ro = skel->rodata;
  ro->flood_ifindex = ifindex;
  ro->flood_random = random;
  ro->flood_src_off = src_off;
  ro->flood_src_words = src.v6 ? 4 : 1;
  ro->flood_csum_off = csum_off;
  ro->flood_csum_udp6 = src.v6 && !tcp;
  std::memcpy(const_cast<uint16_t *>(&ro->flood_csum), frame.data() + csum_off, 2);
  ro->flood_csum2_off = csum2_off;
  if (csum2_off)
    std::memcpy(const_cast<uint16_t *>(&ro->flood_csum2), frame.data() + csum2_off, 2);
  for (unsigned i = 0; i < (src.v6 ? 4u : 1u); i++) {
    uint32_t base, mask;
    std::memcpy(&base, frame.data() + src_off + 4 * i, 4);
    std::memcpy(&mask, src.host.data() + 4 * i, 4);
    const_cast<uint32_t &>(ro->flood_base[i]) = base;
    const_cast<uint32_t &>(ro->flood_mask[i]) = mask;
  }
  // A --rate is paced by the program itself (see flood.bpf.c), which also stops sending
  // after --count frames: the loop below only makes calls until then.
  if (o.rate > 0)
    ro->flood_gap_ns = std::max<uint64_t>(1, static_cast<uint64_t>(1e9 / o.rate));
  ro->flood_limit = o.count;
  if (int err = flood_gen__load(skel)) {
    fmt::print(stderr, "bgcmp-flood: load BPF program: {}\n", std::strerror(-err));
    flood_gen__destroy(skel);
    return 1;
  }
  const int prog_fd = bpf_program__fd(skel->progs.flood_xdp);

  // Runs per call: each call sets up and tears down a page pool, which takes milliseconds
  // on a busy machine, so calls are long (128k runs); a paced run that drops its frame
  // costs tens of nanoseconds, so a call never overshoots the deadline by much.
  const uint64_t chunk = 1 << 17;
  uint64_t errors = 0;
  const volatile __u64 &sent = skel->bss->flood_sent;
  auto start = Clock::now();
  auto deadline = start + std::chrono::duration<double>(o.duration);
  int rc = 0;
  for (uint64_t calls = 0; sent < o.count && Clock::now() < deadline && calls < (1ull << 40);
       calls++) {
    uint64_t n = o.rate > 0 ? chunk : std::min<uint64_t>(chunk, o.count - sent);
    LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = frame.data(),
                .data_size_in = static_cast<__u32>(frame.size()), .repeat = static_cast<int>(n),
                .flags = BPF_F_TEST_XDP_LIVE_FRAMES, .batch_size = o.batch);
    if (bpf_prog_test_run_opts(prog_fd, &opts) != 0) {
      if (errno == EINTR) {
        errors++;
        continue;
      }
      fmt::print(stderr, "bgcmp-flood: BPF_PROG_RUN (live frames): {}\n", std::strerror(errno));
      rc = 1;
      break;
    }
  }
  double secs = std::chrono::duration<double>(Clock::now() - start).count();
  const uint64_t total = sent;
  flood_gen__destroy(skel);
  if (rc)
    return rc;
  if (o.json)
    fmt::print("{{\"sent\":{},\"seconds\":{:.6f},\"pps\":{:.1f},\"send_errors\":{}}}\n", total,
               secs, secs > 0 ? total / secs : 0.0, errors);
  else
    fmt::print("sent {} frames in {:.3f}s ({:.0f} pps)\n", total, secs,
               secs > 0 ? total / secs : 0.0);
  return 0;
}
