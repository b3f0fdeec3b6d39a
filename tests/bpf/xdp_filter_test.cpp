// The real XDP filter, loaded into the running kernel and run on crafted
// frames through bpf_prog_test_run_opts. Each test checks verdicts and counters.
#include <linux/bpf.h>
#include <pthread.h>
#include <sched.h>

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <thread>

#include "core/packet.hpp"
#include "support/filter_harness.hpp"
#include "support/one_cpu.hpp"

namespace bpfgate::test {
namespace {

using core::PacketBuilder;

constexpr const char *kSrcA = "198.18.0.10";
constexpr const char *kSrcB = "198.18.0.11";
constexpr const char *kDst = "198.18.0.1";

std::vector<uint8_t> udp4(const std::string &src, size_t size = 64) {
  return PacketBuilder().ipv4(src, kDst).udp(40000, 53).frame_size(size).build();
}

FilterHarness load(const core::Limits &l, uint32_t max_sources = 1024,
                   bg_verdict unparsed = BG_VERDICT_PASS) {
  auto h = FilterHarness::load(l, max_sources, unparsed);
  if (!h) {
    ADD_FAILURE() << h.error().what();
    std::abort();
  }
  return std::move(*h);
}

// Sends `n` copies of frame; returns how many passed.
int pass_count(FilterHarness &h, const std::vector<uint8_t> &frame, int n) {
  int passed = 0;
  for (int i = 0; i < n; i++) {
    uint32_t v = h.run(frame);
    EXPECT_TRUE(v == XDP_PASS || v == XDP_DROP) << v;
    passed += v == XDP_PASS;
  }
  return passed;
}

TEST(XdpFilter, UnderTheLimitPassesAndIsCounted) {
  auto h = load({10, 10});
  auto f = udp4(kSrcA, 100);
  for (int i = 0; i < 10; i++)
    EXPECT_EQ(h.run(f), XDP_PASS) << "packet " << i;
  EXPECT_EQ(h.packets(BG_VERDICT_PASS, BG_REASON_OK), 10u);
  EXPECT_EQ(h.counters()[bg_counter_key(BG_VERDICT_PASS, BG_REASON_OK)].bytes, 1000u);
  EXPECT_EQ(h.packets(BG_VERDICT_DROP, BG_REASON_RATE_LIMIT), 0u);
  auto st = h.source(kSrcA);
  ASSERT_TRUE(st.has_value());
  EXPECT_EQ(st->packets, 10u);
  EXPECT_EQ(st->bytes, 1000u);
  EXPECT_EQ(st->drops, 0u);
  EXPECT_GT(st->last_seen_ns, 0u);
  EXPECT_GE(st->last_seen_ns, st->first_seen_ns);
}

TEST(XdpFilter, OverTheLimitDrops) {
  auto h = load({10, 10});
  auto f = udp4(kSrcA);
  EXPECT_EQ(pass_count(h, f, 10), 10);
  for (int i = 0; i < 5; i++)
    EXPECT_EQ(h.run(f), XDP_DROP);
  EXPECT_EQ(h.packets(BG_VERDICT_PASS, BG_REASON_OK), 10u);
  EXPECT_EQ(h.packets(BG_VERDICT_DROP, BG_REASON_RATE_LIMIT), 5u);
  auto st = h.source(kSrcA);
  ASSERT_TRUE(st.has_value());
  EXPECT_EQ(st->packets, 15u);
  EXPECT_EQ(st->drops, 5u);
}

TEST(XdpFilter, TokensRefillWithTimeUpToTheBurst) {
  auto h = load({100, 10});  // one token every 10 ms
  auto f = udp4(kSrcA);
  EXPECT_EQ(pass_count(h, f, 12), 10);
  h.advance_time(kSrcA, 30'000'000);  // 30 ms: three tokens
  EXPECT_EQ(pass_count(h, f, 10), 3);
  h.advance_time(kSrcA, 3'600'000'000'000ULL);  // an hour: a full bucket, no more
  EXPECT_EQ(pass_count(h, f, 20), 10);
}

TEST(XdpFilter, RealTimeRefillsToo) {
  auto h = load({20, 1});  // one token every 50 ms
  auto f = udp4(kSrcA);
  EXPECT_EQ(h.run(f), XDP_PASS);
  EXPECT_EQ(h.run(f), XDP_DROP);
  std::this_thread::sleep_for(std::chrono::milliseconds(120));
  EXPECT_EQ(h.run(f), XDP_PASS);
}

TEST(XdpFilter, TwoSourcesAreIndependent) {
  auto h = load({10, 5});
  EXPECT_EQ(pass_count(h, udp4(kSrcA), 20), 5);
  EXPECT_EQ(pass_count(h, udp4(kSrcB), 20), 5);
  EXPECT_EQ(h.source(kSrcA)->drops, 15u);
  EXPECT_EQ(h.source(kSrcB)->drops, 15u);
  EXPECT_EQ(h.packets(BG_VERDICT_DROP, BG_REASON_RATE_LIMIT), 30u);
}

// A source whose frames come close together is decided on its CPU from a
// hot slot (bg_hot_slot: tokens taken ahead, counts kept there) until the
// slot goes to another source. Nothing it counted is lost on the way, and it
// never passes more than its bucket holds. On one CPU: a source whose frames
// move to another CPU meanwhile finds the tokens its slot took ahead on the
// first one there until that slot turns over, so it may pass fewer of its 20
// for that while (seen once in CI's 6.1 guest under load: 11).
TEST(XdpFilter, HotSourcesAreCountedExactlyThroughSlotTurnover) {
  OneCpu pin;
  auto h = load({1, 12});  // 12 of each source's 20 frames pass (a token a second: none refills)
  bool hot_seen = false;
  for (int i = 0; i < 200; i++) {
    std::string src = "198.18.1." + std::to_string(i);
    EXPECT_EQ(pass_count(h, udp4(src, 100), 20), 12) << src;
    auto slots = h.datapath().hot_slots();
    ASSERT_TRUE(slots.ok());
    hot_seen = hot_seen || !slots->empty();
    // 20 ms on: every slot is idle for longer than BG_HOT_LEASE_NS, and the
    // next source with the same slot takes it over.
    ASSERT_TRUE(h.datapath().age_hot(20'000'000).ok());
  }
  EXPECT_TRUE(hot_seen) << "no source was ever in a hot slot: the test shows nothing";
  for (int i = 0; i < 200; i++) {
    std::string src = "198.18.1." + std::to_string(i);
    auto st = h.source(src);
    ASSERT_TRUE(st.has_value()) << src;
    EXPECT_EQ(st->packets, 20u) << src;
    EXPECT_EQ(st->bytes, 2000u) << src;
    EXPECT_EQ(st->drops, 8u) << src;
  }
  EXPECT_EQ(h.packets(BG_VERDICT_PASS, BG_REASON_OK), 200u * 12);
}

TEST(XdpFilter, LimitsChangeAtRunTimeWithoutReload) {
  auto h = load({10, 5});
  auto f = udp4(kSrcA);
  EXPECT_EQ(pass_count(h, f, 10), 5);
  ASSERT_TRUE(h.set_limits({10, 50})
                  .ok());  // 100 ms a token: none refills while the loop runs, however slow
  h.advance_time(kSrcA, 1'000'000'000);
  EXPECT_EQ(pass_count(h, f, 100), 50);
}

struct Variant {
  const char *name;
  const char *source;  // as the filter must key it
  std::vector<uint8_t> frame;
};

TEST(XdpFilter, TaggedAndIpv6FramesAreLimitedByTheirSource) {
  std::vector<Variant> variants = {
      {"802.1Q", "198.18.1.1", PacketBuilder().vlan(10).ipv4("198.18.1.1", kDst).udp(1, 2).build()},
      {"QinQ 802.1ad+802.1Q", "198.18.1.2",
       PacketBuilder().vlan(100, 0x88a8).vlan(10).ipv4("198.18.1.2", kDst).tcp(1, 443).build()},
      {"IPv6 UDP", "2001:db8::1",
       PacketBuilder().ipv6("2001:db8::1", "2001:db8::ff").udp(1, 2).build()},
      {"IPv6 TCP in QinQ", "2001:db8::2",
       PacketBuilder()
           .vlan(7, 0x88a8)
           .vlan(8)
           .ipv6("2001:db8::2", "2001:db8::ff")
           .tcp(1, 80)
           .build()},
      {"IPv6 hop-by-hop+dest opts", "2001:db8::3",
       PacketBuilder()
           .ipv6("2001:db8::3", "2001:db8::ff")
           .ipv6_ext(0)
           .ipv6_ext(60, 1)
           .udp(1, 2)
           .build()},
      {"IPv6 ICMPv6", "2001:db8::4",
       PacketBuilder().ipv6("2001:db8::4", "2001:db8::ff").icmp(128, 0).build()},
      {"IPv4 ICMP", "198.18.1.3", PacketBuilder().ipv4("198.18.1.3", kDst).icmp(8, 0).build()},
  };
  auto h = load({10, 3});
  for (const auto &v : variants) {
    SCOPED_TRACE(v.name);
    EXPECT_EQ(pass_count(h, v.frame, 5), 3);
    auto st = h.source(v.source);
    ASSERT_TRUE(st.has_value()) << "no per-source entry for " << v.source;
    EXPECT_EQ(st->packets, 5u);
    EXPECT_EQ(st->drops, 2u);
  }
  EXPECT_EQ(h.packets(BG_VERDICT_PASS, BG_REASON_OK), 3 * variants.size());
  EXPECT_EQ(h.packets(BG_VERDICT_DROP, BG_REASON_RATE_LIMIT), 2 * variants.size());
  EXPECT_EQ(h.packets(BG_VERDICT_PASS, BG_REASON_UNPARSEABLE), 0u);
}

TEST(XdpFilter, Ipv4OptionsAndFragmentsAreLimitedByTheirSource) {
  auto h = load({10, 4});
  auto opts = PacketBuilder().ipv4(kSrcA, kDst).ipv4_options({0x94, 0x04, 0, 0}).udp(1, 2).build();
  auto first = PacketBuilder().ipv4(kSrcA, kDst).fragment(0, true).udp(1, 2).payload(64).build();
  auto later = PacketBuilder().ipv4(kSrcA, kDst).fragment(1480, false).payload(64).build();
  EXPECT_EQ(h.run(opts), XDP_PASS);
  EXPECT_EQ(h.run(first), XDP_PASS);
  EXPECT_EQ(h.run(later), XDP_PASS);  // no transport header, still a known source
  EXPECT_EQ(h.run(later), XDP_PASS);
  EXPECT_EQ(h.run(later), XDP_DROP);  // a fragment flood is no way around the limit
  EXPECT_EQ(h.run(opts), XDP_DROP);
  EXPECT_EQ(h.source(kSrcA)->packets, 6u);
  EXPECT_EQ(h.packets(BG_VERDICT_PASS, BG_REASON_OK), 4u);
  EXPECT_EQ(h.packets(BG_VERDICT_PASS, BG_REASON_UNPARSEABLE), 0u);
}

// Frames whose IP source cannot be trusted: never keyed, never misread.
std::vector<Variant> unparseable_frames() {
  auto v4 = PacketBuilder().ipv4(kSrcA, kDst).udp(1, 2).build();
  auto truncate = [](std::vector<uint8_t> f, size_t n) {
    f.resize(n);
    return f;
  };
  auto patch = [](std::vector<uint8_t> f, size_t at, uint8_t b) {
    f[at] = b;
    return f;
  };
  auto three_tags =
      PacketBuilder().vlan(1, 0x88a8).vlan(2).vlan(3).ipv4(kSrcA, kDst).udp(1, 2).build();
  return {
      {"VLAN header cut short", "",
       truncate(PacketBuilder().vlan(5).ipv4(kSrcA, kDst).build(), 16)},
      {"three VLAN tags", "", three_tags},
      {"IPv4 header cut short", "", truncate(v4, 14 + 12)},
      {"IPv4 IHL below 5", "", patch(v4, 14, 0x44)},
      {"IPv4 with version 6 nibble", "", patch(v4, 14, 0x65)},
      {"IPv4 total length below header", "", patch(patch(v4, 16, 0), 17, 10)},
      {"IPv4 options cut short", "",
       truncate(PacketBuilder().ipv4(kSrcA, kDst).ipv4_options(std::vector<uint8_t>(40, 1)).build(),
                14 + 30)},
      {"IPv6 header cut short", "",
       truncate(PacketBuilder().ipv6("2001:db8::9", "2001:db8::1").udp(1, 2).build(), 14 + 30)},
      {"IPv6 with version 4 nibble", "",
       patch(PacketBuilder().ipv6("2001:db8::9", "2001:db8::1").udp(1, 2).build(), 14, 0x40)},
  };
}

TEST(XdpFilter, UnparseableFramesGetTheDefinedVerdictAndAreCounted) {
  for (bg_verdict verdict : {BG_VERDICT_PASS, BG_VERDICT_DROP}) {
    SCOPED_TRACE(verdict == BG_VERDICT_PASS ? "unparsed=pass" : "unparsed=drop");
    auto h = load({100, 100}, 1024, verdict);
    auto frames = unparseable_frames();
    for (const auto &v : frames) {
      SCOPED_TRACE(v.name);
      EXPECT_EQ(h.run(v.frame), verdict == BG_VERDICT_PASS ? XDP_PASS : XDP_DROP);
    }
    EXPECT_EQ(h.packets(verdict, BG_REASON_UNPARSEABLE), frames.size());
    EXPECT_EQ(h.packets(BG_VERDICT_PASS, BG_REASON_OK), 0u);
    EXPECT_EQ(h.source_count(), 0u) << "an untrustworthy header created per-source state";
  }
}

TEST(XdpFilter, TruncatedTransportHeaderIsLimitedThenGetsTheUnparsedVerdict) {
  auto tcp = PacketBuilder().ipv4(kSrcA, kDst).tcp(1, 80).build();
  tcp.resize(14 + 20 + 10);  // TCP header cut short
  auto tcp6 = PacketBuilder().ipv6("2001:db8::7", "2001:db8::1").tcp(1, 80).build();
  tcp6.resize(14 + 40 + 4);
  for (bg_verdict verdict : {BG_VERDICT_PASS, BG_VERDICT_DROP}) {
    auto h = load({10, 2}, 1024, verdict);
    const uint32_t unparsed = verdict == BG_VERDICT_PASS ? XDP_PASS : XDP_DROP;
    EXPECT_EQ(h.run(tcp), unparsed);
    EXPECT_EQ(h.run(tcp), unparsed);
    EXPECT_EQ(h.run(tcp), XDP_DROP);  // over the limit: a broken header buys nothing
    EXPECT_EQ(h.run(tcp6), unparsed);
    EXPECT_EQ(h.packets(verdict, BG_REASON_UNPARSEABLE), 3u);
    EXPECT_EQ(h.packets(BG_VERDICT_DROP, BG_REASON_RATE_LIMIT), 1u);
    EXPECT_EQ(h.source(kSrcA)->packets, 3u);
    EXPECT_EQ(h.source(kSrcA)->drops, verdict == BG_VERDICT_DROP ? 3u : 1u);
  }
}

TEST(XdpFilter, NonIpFramesPassAndAreCounted) {
  auto h = load({1, 1});
  auto arp = PacketBuilder().payload(46).build();  // ethertype 0x88b5 (local experimental)
  arp[12] = 0x08, arp[13] = 0x06;                  // ARP
  auto lldp = PacketBuilder().payload(46).build();
  for (int i = 0; i < 5; i++) {
    EXPECT_EQ(h.run(arp), XDP_PASS);
    EXPECT_EQ(h.run(lldp), XDP_PASS);
  }
  EXPECT_EQ(h.packets(BG_VERDICT_PASS, BG_REASON_NOT_IP), 10u);
  EXPECT_EQ(h.source_count(), 0u);
}

TEST(XdpFilter, PerSourceStateStaysWithinItsBound) {
  auto h = load({10, 10}, 64);
  auto f = udp4(kSrcA);
  int passed = 0;
  for (uint32_t i = 0; i < 2000; i++) {
    uint32_t src = (198u << 24) | (19u << 16) | i;
    f[14 + 12] = src >> 24, f[14 + 13] = (src >> 16) & 0xff, f[14 + 14] = (src >> 8) & 0xff,
           f[14 + 15] = src & 0xff;
    passed += h.run(f) == XDP_PASS;
  }
  EXPECT_EQ(passed, 2000);  // every new source gets its own full bucket
  EXPECT_LE(h.source_count(), 64u);
  EXPECT_GT(h.source_count(), 0u);
  // A source that keeps sending keeps its state amid the churn.
  EXPECT_EQ(pass_count(h, udp4(kSrcB), 20), 10);
}

// Runs the program on CPU `cpu` until `stop`; counts runs. One run per call:
// a repeat count above 1 makes the kernel switch the XDP dispatcher around
// each call (tens of ms), which would serialise the CPUs instead of racing them.
void hammer(int prog_fd, int cpu, const std::vector<uint8_t> &frame, std::atomic<bool> &stop,
            std::atomic<uint64_t> &runs) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
  ProgRunner r(prog_fd);
  while (!stop.load()) {
    auto res = r.run(frame, 1);
    if (!res) {
      ADD_FAILURE() << "cpu " << cpu << ": " << res.error().what();
      break;
    }
    runs++;
  }
}

TEST(XdpFilter, RateSummedOverAllCpusStaysWithinTenPercent) {
  const int cpus = static_cast<int>(std::thread::hardware_concurrency());
  if (cpus < 2)
    GTEST_SKIP() << "SKIPPED: needs 2 CPUs, this machine has " << cpus;
  constexpr uint64_t kRate = 10000;
  auto h = load({kRate, 100});
  auto f = udp4(kSrcA);
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> runs{0};
  auto start = std::chrono::steady_clock::now();
  std::vector<std::thread> threads;
  for (int c = 0; c < std::min(cpus, 4); c++)
    threads.emplace_back(hammer, h.prog_fd(), c, std::cref(f), std::ref(stop), std::ref(runs));
  std::this_thread::sleep_for(std::chrono::seconds(2));
  stop = true;
  for (auto &t : threads)
    t.join();
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  uint64_t passed = h.packets(BG_VERDICT_PASS, BG_REASON_OK);
  uint64_t dropped = h.packets(BG_VERDICT_DROP, BG_REASON_RATE_LIMIT);
  ASSERT_GT(runs.load(), 4 * kRate * secs) << "offered load too low to test the limit";
  EXPECT_EQ(passed + dropped, runs.load());
  double rate = (passed - 100) / secs;
  // The limiter's promise is the upper bound: racing CPUs never pass more than
  // the rate. Below it, the figure also counts the moments no thread ran (a
  // loaded machine deschedules them; a bucket holds only its burst), so the
  // lower bound only catches a limiter that drops what it should pass.
  EXPECT_LE(rate, kRate * 1.10) << "passed " << passed << " in " << secs << " s with "
                                << runs.load() << " offered";
  EXPECT_GE(rate, kRate * 0.60) << "passed " << passed << " in " << secs << " s with "
                                << runs.load() << " offered";
}

}  // namespace
}  // namespace bpfgate::test
