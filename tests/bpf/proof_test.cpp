// Sources that prove themselves: a TCP ACK carrying a valid SYN cookie of
// this host's kernel (made here by the kernel's own generator, as a real
// SYN-ACK would carry it) moves its source into the known table, where no
// flood of new sources can evict it; such a source is never auto-blocked,
// and neither is a never-block prefix; auto-blocks are capped.
#include <linux/bpf.h>
#include <sched.h>

#include <gtest/gtest.h>

#include <chrono>
#include <thread>

#include <fmt/format.h>

#include "features/xdp/blocklist.hpp"
#include "core/config.hpp"
#include "core/packet.hpp"
#include "core/policy.hpp"
#include "support/filter_harness.hpp"
#include "support/one_cpu.hpp"
#include "support/prog_runner.hpp"
#include "syncookie_gen.skel.h"

namespace bpfgate::test::proof {
namespace {

using core::PacketBuilder;
constexpr const char *kServer = "198.18.0.1";
constexpr uint8_t kSyn = 0x02, kAck = 0x10;

FilterHarness load(const core::PolicyImage &p, uint32_t max_sources = 4096) {
  return FilterHarness::load_or_abort(p, max_sources);
}

std::vector<uint8_t> tcp(const std::string &src, uint8_t flags, uint32_t seq, uint32_t ack) {
  auto b = PacketBuilder();
  if (src.find(':') != std::string::npos)
    b.ipv6(src, "2001:db8::1");
  else
    b.ipv4(src, kServer);
  return b.tcp(40000, 80, flags).tcp_seq(seq, ack).build();
}
std::vector<uint8_t> udp(const std::string &src) {
  return PacketBuilder().ipv4(src, kServer).udp(40000, 9).build();
}

// The cookie the kernel would answer this SYN with.
uint32_t cookie_of(const std::vector<uint8_t> &syn) {
  syncookie_gen *g = syncookie_gen__open_and_load();
  EXPECT_NE(g, nullptr);
  if (!g)
    return 0;
  auto r = ProgRunner(bpf_program__fd(g->progs.bg_syncookie_gen)).run(syn);
  EXPECT_TRUE(r.ok());
  int64_t c = g->data->bg_cookie;
  syncookie_gen__destroy(g);
  EXPECT_GE(c, 0) << "the kernel made no cookie";
  return static_cast<uint32_t>(c);
}

// The handshake of `src`: its SYN, then the ACK of the cookie SYN-ACK.
std::vector<uint8_t> handshake_ack(const std::string &src) {
  const uint32_t isn = 1000;
  uint32_t cookie = cookie_of(tcp(src, kSyn, isn, 0));
  return tcp(src, kAck, isn + 1, cookie + 1);
}

TEST(Proof, ACookieAckProvesItsSourceWithoutAdmissionAndAForgedOneDoesNot) {
  if (!agent::syncookie_helpers())
    GTEST_SKIP() << "this kernel has no bpf_tcp_raw_check_syncookie (Linux 6.0)";
  OneCpu pin;
  auto h = load(policy_from_yaml("limits: {rate: 100, new_sources: {rate: 1, burst: 1}}\n"));
  // The new-source budget of this CPU: one source, then none for a second.
  EXPECT_EQ(h.run(udp("198.18.50.1")), XDP_PASS);
  EXPECT_EQ(h.run(udp("198.18.50.2")), XDP_DROP);
  EXPECT_EQ(h.packets(BG_VERDICT_DROP, BG_REASON_NEW_SOURCE), 1u);

  // A client's SYN passes without state on the SYN budget; its ACK proves it.
  EXPECT_EQ(h.run(tcp("198.18.60.7", kSyn, 1000, 0)), XDP_PASS);
  EXPECT_EQ(h.stat(BG_STAT_SYN_PASSED), 1u);
  EXPECT_EQ(h.source_count(), 1u) << "a SYN left state";
  EXPECT_EQ(h.run(handshake_ack("198.18.60.7")), XDP_PASS);
  EXPECT_EQ(h.stat(BG_STAT_PROVEN), 1u);
  EXPECT_TRUE(h.known("198.18.60.7"));
  for (int i = 0; i < 5; i++)
    EXPECT_EQ(h.run(udp("198.18.60.7")), XDP_PASS) << "a known source is no new one";

  // An ACK whose cookie is wrong proves nothing and needs admission like any.
  EXPECT_EQ(h.run(tcp("198.18.60.8", kAck, 1001, 0x12345678)), XDP_DROP);
  EXPECT_EQ(h.stat(BG_STAT_PROOF_FAILED), 1u);
  EXPECT_FALSE(h.known("198.18.60.8"));

  // IPv6 the same.
  EXPECT_EQ(h.run(handshake_ack("2001:db8:60::7")), XDP_PASS);
  EXPECT_TRUE(h.known("2001:db8:60::7"));

  // With proofs off, the same ACK is a new source.
  auto off =
      load(policy_from_yaml("limits: {rate: 100, new_sources: {rate: 1, burst: 1}, prove: off}\n"));
  EXPECT_EQ(off.run(udp("198.18.50.1")), XDP_PASS);
  EXPECT_EQ(off.run(handshake_ack("198.18.60.9")), XDP_DROP);
  EXPECT_FALSE(off.known("198.18.60.9"));
}

// A flood of spoofed sources that fills the per-source table evicts sources
// that were only admitted, never one that proved itself.
TEST(Proof, AKnownSourceKeepsItsBucketThroughAFloodThatFillsTheTable) {
  if (!agent::syncookie_helpers())
    GTEST_SKIP() << "this kernel has no bpf_tcp_raw_check_syncookie (Linux 6.0)";
  auto h = load(policy_from_yaml("limits: {rate: 1000, burst: 1000, new_sources: off}\n"), 256);
  EXPECT_EQ(h.run(handshake_ack("198.18.61.1")), XDP_PASS);
  ASSERT_TRUE(h.known("198.18.61.1"));
  for (int i = 0; i < 10; i++)
    h.run(udp("198.18.61.1"));
  EXPECT_EQ(h.run(udp("198.18.61.2")), XDP_PASS);  // admitted, not proven
  auto before = h.source("198.18.61.1");
  ASSERT_TRUE(before.has_value());
  for (int i = 0; i < 4000; i++)
    h.run(udp(fmt::format("198.19.{}.{}", i / 250, 1 + i % 250)));
  EXPECT_FALSE(h.source("198.18.61.2").has_value()) << "the flood did not fill the table";
  auto after = h.source("198.18.61.1");
  ASSERT_TRUE(after.has_value()) << "the known source was evicted";
  EXPECT_TRUE(h.known("198.18.61.1"));
  EXPECT_EQ(after->packets, before->packets);
  EXPECT_EQ(after->tat_ns, before->tat_ns) << "its bucket started over";
}

// Auto-block spares proven sources and never-block prefixes, and blocks at
// most max_rate sources a second; the rest stay rate-limited.
TEST(Proof, AutoBlockSparesProvenAndNeverBlockSourcesAndIsCapped) {
  if (!agent::syncookie_helpers())
    GTEST_SKIP() << "this kernel has no bpf_tcp_raw_check_syncookie (Linux 6.0)";
  OneCpu pin;
  core::PolicyImage p = policy_from_yaml(
      "limits: {rate: 1, burst: 1, new_sources: off}\n"
      "auto_block: {after: 100ms, ttl: 10s, max_rate: {rate: 1, burst: 1}, never: "
      "[198.18.72.0/24]}\n");
  p.settings.block_after_ns = 20'000'000;  // 20 ms over the limit, to keep the test short
  auto h = load(p);
  EXPECT_EQ(h.run(handshake_ack("198.18.71.1")), XDP_PASS);
  ASSERT_TRUE(h.known("198.18.71.1"));
  const char *const sources[] = {"198.18.71.1", "198.18.72.5", "198.18.73.1", "198.18.73.2"};
  auto start = std::chrono::steady_clock::now();
  while (std::chrono::steady_clock::now() - start < std::chrono::milliseconds(80)) {
    for (const char *s : sources)
      h.run(udp(s));
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  auto blocks = agent::list_blocks(h.datapath());
  ASSERT_TRUE(blocks.ok());
  ASSERT_EQ(blocks->size(), 1u) << "the cap is one auto-block (this CPU's share)";
  EXPECT_EQ(core::format_prefix((*blocks)[0].prefix), "198.18.73.1/32");
  EXPECT_GT(h.stat(BG_STAT_AUTOBLOCK_SPARED), 0u);
  EXPECT_GT(h.stat(BG_STAT_AUTOBLOCK_CAPPED), 0u);
  EXPECT_GT(h.source("198.18.73.2")->drops, 0u) << "capped: still rate-limited";
}

}  // namespace
}  // namespace bpfgate::test::proof
