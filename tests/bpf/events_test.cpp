// The XDP filter's events (bpf/xdp/events.h), through a ring
// buffer and through a perf buffer: the first hit of a rule once per policy
// generation, drop samples bounded per interval, auto-blocks; and per-rule
// counters that restart with each generation.
#include <linux/bpf.h>
#include <netinet/in.h>
#include <sched.h>

#include <gtest/gtest.h>

#include <cstring>
#include <memory>

#include "features/xdp/datapath.hpp"
#include "features/xdp/blocklist.hpp"
#include "features/observe/events.hpp"
#include "features/xdp/filter.hpp"
#include "bpf/event_buffer.hpp"
#include "bpf/skeletons.hpp"
#include "core/config.hpp"
#include "core/packet.hpp"
#include "core/policy.hpp"
#include "support/prog_runner.hpp"

namespace bpfgate::test {
namespace {

using core::PacketBuilder;

core::PolicyImage policy(const std::string &yaml) {
  auto c = core::parse_config("interfaces: [{name: eth0}]\n" + yaml, "test.yaml");
  EXPECT_TRUE(c.ok()) << (c.ok() ? "" : c.error().what());
  return c.ok() ? core::compile(*c) : core::PolicyImage{};
}

// The real filter object, loaded with the given event transport.
struct Filter {
  std::unique_ptr<bpf::XdpFilterSkel> skel;
  std::optional<agent::Datapath> dp;
  std::optional<bpf::EventBuffer> events;
  std::vector<bg_event> seen;

  static std::unique_ptr<Filter> load(bg_event_transport t, const core::PolicyImage &p,
                                      uint64_t sample_interval_ns) {
    auto f = std::make_unique<Filter>();
    auto s = bpf::XdpFilterSkel::open("xdp_filter");
    EXPECT_TRUE(s.ok());
    if (!s)
      return nullptr;
    f->skel = std::make_unique<bpf::XdpFilterSkel>(std::move(*s));
    agent::prepare_filter(*f->skel, 4096);
    EXPECT_TRUE(agent::set_event_transport(*f->skel, t).ok());
    auto st = f->skel->load();
    EXPECT_TRUE(st.ok()) << (st.ok() ? "" : st.error().what());
    if (!st)
      return nullptr;
    auto dp = agent::Datapath::from_object((*f->skel)->obj);
    EXPECT_TRUE(dp.ok());
    f->dp.emplace(std::move(*dp));
    EXPECT_TRUE(f->dp->apply(p).ok());
    EXPECT_TRUE(agent::set_sample_interval(bpf_map__fd((*f->skel)->maps.bg_event_config),
                                           sample_interval_ns)
                    .ok());
    Filter *raw = f.get();
    auto buf = bpf::EventBuffer::open(bpf_map__fd((*f->skel)->maps.bg_events),
                                      [raw](std::string_view rec) {
                                        auto e = agent::decode_event("test", rec);
                                        EXPECT_TRUE(e.ok());
                                        if (e)
                                          raw->seen.push_back(e->raw);
                                      });
    EXPECT_TRUE(buf.ok()) << (buf.ok() ? "" : buf.error().what());
    f->events.emplace(std::move(*buf));
    return f;
  }

  uint32_t run(const std::vector<uint8_t> &frame, uint32_t repeat = 1) {
    auto r = ProgRunner(bpf_program__fd((*skel)->progs.bg_xdp_filter)).run(frame, repeat);
    EXPECT_TRUE(r.ok());
    return r.ok() ? r->retval : ~0U;
  }
  // Every event queued so far.
  std::vector<bg_event> drain() {
    for (int i = 0; i < 3; i++)
      (void)events->poll(10);
    return std::exchange(seen, {});
  }
  size_t count(const std::vector<bg_event> &v, uint32_t type) {
    size_t n = 0;
    for (const auto &e : v)
      n += e.type == type;
    return n;
  }
  // Events the buffer refused (BG_STAT_EVENTS_LOST, all CPUs).
  uint64_t lost() {
    auto s = dp->stats();
    EXPECT_TRUE(s.ok());
    return s.ok() ? (*s)[BG_STAT_EVENTS_LOST] : ~0ULL;
  }
  bg_rule_stats rule_stats(uint32_t id) {
    bpf::PerCpuMap<__u32, bg_rule_stats> m(bpf_map__fd((*skel)->maps.bg_rule_stats));
    auto cfg = dp->config();
    bg_rule_stats sum{};
    auto v = m.lookup(id);
    if (v && cfg)
      for (const auto &c : *v)
        if (c.generation == cfg->generation)
          sum.packets += c.packets, sum.bytes += c.bytes;
    return sum;
  }
};

std::vector<uint8_t> udp(const std::string &src, uint16_t dport) {
  return PacketBuilder().ipv4(src, "198.18.0.1").udp(40000, dport).build();
}

class Events : public ::testing::TestWithParam<bg_event_transport> {};

TEST_P(Events, FirstRuleHitOncePerGeneration) {
  auto p = policy("rules: [{match: udp/53, action: drop}, {match: tcp/443, action: pass}]\n");
  auto f = Filter::load(GetParam(), p, 0);
  ASSERT_TRUE(f);
  auto frame = udp("198.18.0.7", 53);
  EXPECT_EQ(f->run(frame, 50), static_cast<uint32_t>(XDP_DROP));
  EXPECT_EQ(f->run(frame, 50), static_cast<uint32_t>(XDP_DROP));
  auto ev = f->drain();
  ASSERT_EQ(f->count(ev, BG_EVENT_RULE_HIT), 1u);
  EXPECT_EQ(f->count(ev, BG_EVENT_DROP_SAMPLE), 0u) << "samples are off (interval 0)";
  const bg_event &hit = ev[0];
  EXPECT_EQ(hit.rule, 1u);
  EXPECT_EQ(hit.proto, IPPROTO_UDP);
  EXPECT_EQ(hit.dport, 53);
  EXPECT_EQ(hit.addr[15], 7);
  EXPECT_EQ(f->rule_stats(1).packets, 100u);
  EXPECT_EQ(f->rule_stats(1).bytes, 100u * frame.size());
  EXPECT_EQ(f->rule_stats(2).packets, 0u);
  // A new generation reports the first hit again, and counts from zero.
  ASSERT_TRUE(f->dp->apply(p).ok());
  EXPECT_EQ(f->run(frame, 10), static_cast<uint32_t>(XDP_DROP));
  ev = f->drain();
  EXPECT_EQ(f->count(ev, BG_EVENT_RULE_HIT), 1u);
  EXPECT_EQ(f->rule_stats(1).packets, 10u);
  // The default limit (rule 0) is not a rule: no event, no rule counter.
  EXPECT_EQ(f->run(udp("198.18.0.8", 9), 10), static_cast<uint32_t>(XDP_PASS));
  EXPECT_EQ(f->count(f->drain(), BG_EVENT_RULE_HIT), 0u);
  EXPECT_EQ(f->lost(), 0u) << "the buffer had room for every event";
}

TEST_P(Events, DropSamplesAreBoundedPerInterval) {
  auto f = Filter::load(GetParam(), policy("deny: [198.18.66.0/24]\n"), 1'000'000'000ULL);
  ASSERT_TRUE(f);
  // 100000 denied frames in well under a second, on one CPU (the sampler is
  // per CPU, and test_run may migrate between repeats): one sample.
  cpu_set_t one;
  CPU_ZERO(&one);
  CPU_SET(0, &one);
  ASSERT_EQ(sched_setaffinity(0, sizeof(one), &one), 0);
  EXPECT_EQ(f->run(udp("198.18.66.5", 9), 100000), static_cast<uint32_t>(XDP_DROP));
  auto ev = f->drain();
  ASSERT_EQ(f->count(ev, BG_EVENT_DROP_SAMPLE), 1u);
  EXPECT_EQ(ev[0].reason, static_cast<uint32_t>(BG_REASON_DENY));
  EXPECT_EQ(ev[0].value, 0u) << "the first drop is sampled";
  EXPECT_EQ(ev[0].len, udp("198.18.66.5", 9).size());
  // Passed frames are never sampled.
  EXPECT_EQ(f->run(udp("198.18.7.5", 9), 1000), static_cast<uint32_t>(XDP_PASS));
  EXPECT_EQ(f->drain().size(), 0u);
}

TEST_P(Events, AutoBlockIsReported) {
  auto f = Filter::load(GetParam(),
                        policy("limits: {rate: 100, burst: 10}\n"
                               "auto_block: {after: 100ms, ttl: 30s}\n"),
                        0);
  ASSERT_TRUE(f);
  auto frame = udp("198.18.0.77", 9);
  // Over the limit for 100 ms: the repeats run back to back, so keep going.
  uint64_t start = agent::monotonic_ns();
  while (agent::monotonic_ns() - start < 400'000'000ULL &&
         f->count(f->seen, BG_EVENT_BLOCKED) == 0) {
    f->run(frame, 1000);
    for (auto &e : f->drain())
      f->seen.push_back(e);
  }
  auto ev = f->seen;
  ASSERT_EQ(f->count(ev, BG_EVENT_BLOCKED), 1u);
  for (const auto &e : ev)
    if (e.type == BG_EVENT_BLOCKED) {
      EXPECT_EQ(e.reason, static_cast<uint32_t>(BG_BLOCK_AUTO));
      EXPECT_EQ(e.value, 30'000'000'000ULL);
      EXPECT_EQ(e.prefixlen, 128);
      EXPECT_EQ(e.addr[15], 77);
      agent::Event ae;
      ae.iface = "eth0";
      ae.raw = e;
      EXPECT_NE(agent::event_text(ae).find("blocked 198.18.0.77/32 (auto, for 30s)"),
                std::string::npos)
          << agent::event_text(ae);
    }
}

// The ring buffer full (nobody reads it): a drop sample it refuses keeps its
// count, so the samples that get through still stand for every drop.
TEST(EventsWhenFull, RefusedSamplesKeepTheirCount) {
  auto f = Filter::load(BG_EVENT_RINGBUF, policy("deny: [198.18.66.0/24]\n"), 1);
  ASSERT_TRUE(f);
  cpu_set_t old_set, one;  // one CPU: one sampler
  sched_getaffinity(0, sizeof(old_set), &old_set);
  CPU_ZERO(&one);
  CPU_SET(0, &one);
  ASSERT_EQ(sched_setaffinity(0, sizeof(one), &one), 0);
  auto frame = udp("198.18.66.5", 9);
  const uint32_t drops = 2 * BG_EVENT_RING_BYTES / sizeof(bg_event);  // twice what the ring holds
  EXPECT_EQ(f->run(frame, drops), static_cast<uint32_t>(XDP_DROP));
  auto first = f->drain();
  EXPECT_EQ(f->run(frame, 1), static_cast<uint32_t>(XDP_DROP));  // room again: a sample
  auto last = f->drain();
  sched_setaffinity(0, sizeof(old_set), &old_set);
  ASSERT_FALSE(first.empty());
  ASSERT_EQ(last.size(), 1u);
  EXPECT_LT(first.size(), drops) << "the ring never filled: the case tests nothing";
  EXPECT_GT(f->lost(), 0u) << "refused samples are counted";
  uint64_t stood_for = 0;
  for (const auto &e : first)
    stood_for += 1 + e.value;
  stood_for += 1 + last[0].value;
  EXPECT_EQ(stood_for, drops + 1u) << "drops behind refused samples were lost";
}

// A rule's first hit that the full ring refuses is reported by its next hit.
TEST(EventsWhenFull, ARefusedFirstRuleHitIsReportedByTheNextHit) {
  auto f =
      Filter::load(BG_EVENT_RINGBUF,
                   policy("deny: [198.18.66.0/24]\nrules: [{match: tcp/443, action: pass}]\n"), 1);
  ASSERT_TRUE(f);
  // Fill the ring with drop samples.
  EXPECT_EQ(f->run(udp("198.18.66.5", 9), 2 * BG_EVENT_RING_BYTES / sizeof(bg_event)),
            static_cast<uint32_t>(XDP_DROP));
  auto web = PacketBuilder().ipv4("198.18.0.9", "198.18.0.1").tcp(40000, 443).build();
  uint64_t lost = f->lost();
  EXPECT_EQ(f->run(web), static_cast<uint32_t>(XDP_PASS));
  EXPECT_EQ(f->lost(), lost + 1) << "the refused first hit is counted as lost";
  auto ev = f->drain();
  EXPECT_EQ(f->count(ev, BG_EVENT_RULE_HIT), 0u) << "the ring had room: the case tests nothing";
  EXPECT_EQ(f->run(web), static_cast<uint32_t>(XDP_PASS));
  ev = f->drain();
  EXPECT_EQ(f->count(ev, BG_EVENT_RULE_HIT), 1u) << "the first hit was marked seen, unreported";
  EXPECT_EQ(f->lost(), lost + 1) << "the second went out";
}

INSTANTIATE_TEST_SUITE_P(Transport, Events, ::testing::Values(BG_EVENT_RINGBUF, BG_EVENT_PERFBUF),
                         [](const auto &info) {
                           return info.param == BG_EVENT_RINGBUF ? "RingBuffer" : "PerfBuffer";
                         });

}  // namespace
}  // namespace bpfgate::test
