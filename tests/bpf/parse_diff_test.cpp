// The datapath's packet parser (bg_parse, run in the kernel through
// tests/bpf/parse_probe.bpf.c) against the reference parser
// (tests/support/reference_parse.hpp) on frames from a seeded generator:
// VLAN tags (up to three), IPv4 with options and fragments, IPv6 with
// extension headers (AH and fragments among them), TCP/UDP/ICMP, then
// mutated (bytes overwritten at the fields that steer parsing, random bytes,
// truncation). Bounded: a fixed seed and count, about two seconds. The libFuzzer
// target tests/fuzz/packet_fuzz.cpp explores further (scripts/fuzz.sh).
#include <gtest/gtest.h>

#include <cstdint>
#include <random>
#include <vector>

#include <fmt/format.h>

#include "core/packet.hpp"
#include "support/parse_probe.hpp"
#include "support/reference_parse.hpp"

namespace bpfgate::test {
namespace {

using core::PacketBuilder;
using Rng = std::mt19937_64;

unsigned pick(Rng &rng, unsigned n) {
  return std::uniform_int_distribution<unsigned>(0, n - 1)(rng);
}

std::vector<uint8_t> generated_frame(Rng &rng) {
  PacketBuilder b;
  for (unsigned i = 0, n = pick(rng, 8) < 5 ? 0 : 1 + pick(rng, 3); i < n; i++)
    b.vlan(static_cast<uint16_t>(pick(rng, 4096)), pick(rng, 2) ? 0x8100 : 0x88a8);
  unsigned l3 = pick(rng, 5);  // 0-1 IPv4, 2-3 IPv6, 4 neither
  if (l3 < 2) {
    b.ipv4(static_cast<uint32_t>(rng()), static_cast<uint32_t>(rng()));
    if (pick(rng, 3) == 0) {
      std::vector<uint8_t> opts(1 + pick(rng, 40));
      for (auto &o : opts)
        o = static_cast<uint8_t>(rng());
      b.ipv4_options(opts);
    }
    if (pick(rng, 3) == 0)
      b.fragment(static_cast<uint16_t>(pick(rng, 3) * 8 * pick(rng, 200)), pick(rng, 2));
  } else if (l3 < 4) {
    std::array<uint8_t, 16> s, d;
    for (auto &x : s)
      x = static_cast<uint8_t>(rng());
    for (auto &x : d)
      x = static_cast<uint8_t>(rng());
    b.ipv6(s, d);
    static const uint8_t kExt[] = {0, 43, 60, 44};
    for (unsigned i = 0, n = pick(rng, 2) ? 0 : pick(rng, 8); i < n; i++)
      b.ipv6_ext(kExt[pick(rng, 4)], static_cast<uint8_t>(pick(rng, 3)));
    if (pick(rng, 4) == 0)
      b.fragment(static_cast<uint16_t>(pick(rng, 2) * 8 * pick(rng, 200)), pick(rng, 2));
  }
  switch (pick(rng, 4)) {
    case 0:
      b.tcp(static_cast<uint16_t>(rng()), static_cast<uint16_t>(rng()),
            static_cast<uint8_t>(rng()));
      break;
    case 1:
      b.udp(static_cast<uint16_t>(rng()), static_cast<uint16_t>(rng()));
      break;
    case 2:
      b.icmp(static_cast<uint8_t>(rng()), static_cast<uint8_t>(rng()));
      break;
    default:
      break;
  }
  b.payload(pick(rng, 64), static_cast<uint8_t>(rng()));
  return b.build();
}

// Overwrites the bytes that steer parsing (ethertypes, version and IHL,
// lengths, protocol and next-header fields, TCP data offset) as often as
// random ones, then maybe cuts the frame short.
void mutate(Rng &rng, std::vector<uint8_t> &f) {
  static const uint8_t kSteering[] = {0x81, 0x88, 0xa8, 0x08, 0x86, 0xdd, 0x45, 0x4f,
                                      0x60, 0x00, 0x06, 0x11, 0x01, 0x3a, 0x2b, 0x2c,
                                      0x33, 0x3c, 0x3b, 0x20, 0x50, 0xff, 0x40, 0x02};
  for (unsigned i = 0, n = pick(rng, 4); i < n && !f.empty(); i++) {
    size_t at = pick(rng, 3) == 0 ? 12 + pick(rng, 64) : pick(rng, static_cast<unsigned>(f.size()));
    if (at < f.size())
      f[at] = pick(rng, 2) ? kSteering[pick(rng, sizeof(kSteering))] : static_cast<uint8_t>(rng());
  }
  if (pick(rng, 3) == 0 && !f.empty())
    f.resize(pick(rng, static_cast<unsigned>(f.size()) + 1));
}

std::string hex(const std::vector<uint8_t> &f) {
  std::string s;
  for (uint8_t c : f)
    s += fmt::format("{:02x}", c);
  return s;
}

TEST(ParseDiff, KernelParserMatchesTheReferenceOnGeneratedAndMutatedFrames) {
  ParseProbe probe;
  ASSERT_TRUE(probe.loaded()) << probe.error();
  constexpr uint64_t kSeed = 13;
  constexpr int kFrames = 100000;
  Rng rng(kSeed);
  int differ = 0, run = 0, short_frames = 0;
  int by_status[5] = {};
  for (int i = 0; i < kFrames && differ < 5; i++) {
    auto f = generated_frame(rng);
    if (pick(rng, 4) != 0)
      mutate(rng, f);
    auto ref = reference_parse(f);
    if (f.size() < 14) {  // the kernel runs no program on it
      EXPECT_EQ(ref.status, BG_PARSE_BAD_L2);
      short_frames++;
      continue;
    }
    auto bpf = probe.run(f);
    ASSERT_TRUE(bpf) << probe.error();
    run++;
    by_status[ref.status]++;
    if (!(*bpf == ref)) {
      differ++;
      ADD_FAILURE() << "seed " << kSeed << " frame " << i << " (" << f.size()
                    << " bytes): " << hex(f) << "\n"
                    << describe_difference(*bpf, ref);
    }
  }
  // The generator reaches every outcome, or the comparison proves little.
  for (int s = BG_PARSE_OK; s <= BG_PARSE_BAD_L4; s++)
    EXPECT_GT(by_status[s], kFrames / 100) << "status " << s << " seldom generated";
  RecordProperty("frames_run", run);
  fmt::print(
      "{} frames compared ({} short of an Ethernet header, reference only): ok {}, "
      "not IP {}, bad L2 {}, bad L3 {}, bad L4 {}\n",
      run, short_frames, by_status[0], by_status[1], by_status[2], by_status[3], by_status[4]);
}

// Frames chosen by hand at each boundary the parser has: they run on every
// build, whatever the generator happens to reach.
TEST(ParseDiff, KernelParserMatchesTheReferenceAtEachBoundary) {
  ParseProbe probe;
  ASSERT_TRUE(probe.loaded()) << probe.error();
  std::vector<std::vector<uint8_t>> frames = {
      PacketBuilder()
          .vlan(7)
          .vlan(9, 0x88a8)
          .vlan(11)
          .ipv4("198.18.0.1", "198.18.0.2")
          .udp(1, 2)
          .build(),
      PacketBuilder().ipv4("198.18.0.1", "198.18.0.2").ipv4_options({1, 1, 1, 0}).tcp(1, 2).build(),
      PacketBuilder().ipv4("198.18.0.1", "198.18.0.2").fragment(8, true).udp(1, 2).build(),
      PacketBuilder()
          .ipv6("2001:db8::1", "2001:db8::2")
          .ipv6_ext(0)
          .ipv6_ext(43, 2)
          .ipv6_ext(60)
          .ipv6_ext(0)
          .ipv6_ext(43)
          .ipv6_ext(60)
          .tcp(1, 2)
          .build(),  // six: the most walked
      PacketBuilder()
          .ipv6("2001:db8::1", "2001:db8::2")
          .ipv6_ext(0)
          .ipv6_ext(43)
          .ipv6_ext(60)
          .ipv6_ext(0)
          .ipv6_ext(43)
          .ipv6_ext(60)
          .ipv6_ext(0)
          .tcp(1, 2)
          .build(),  // seven
      PacketBuilder()
          .ipv6("2001:db8::1", "2001:db8::2")
          .ipv6_ext(44)
          .fragment(16, false)
          .udp(1, 2)
          .build(),
      PacketBuilder().ipv6("2001:db8::1", "2001:db8::2").icmp(128, 0).build(),
  };
  size_t whole = frames.size();
  for (size_t i = 0; i < whole; i++)  // and each cut short by one byte at every length
    for (size_t len = 14; len < frames[i].size(); len++)
      frames.emplace_back(frames[i].begin(), frames[i].begin() + static_cast<long>(len));
  for (const auto &f : frames) {
    auto bpf = probe.run(f);
    ASSERT_TRUE(bpf) << probe.error();
    auto ref = reference_parse(f);
    EXPECT_TRUE(*bpf == ref) << hex(f) << "\n" << describe_difference(*bpf, ref);
  }
}

}  // namespace
}  // namespace bpfgate::test
