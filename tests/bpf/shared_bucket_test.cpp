// One source sending on every CPU at once: the per-source bucket is one
// entry of the sources map, shared by all CPUs, charged with a
// compare-and-swap (bg_conforms() in bpf/xdp/filter.h). Each
// thread is pinned to its own CPU (a test run executes on the caller's CPU)
// and runs the real filter through bpf_prog_test_run_opts with a repeat
// count, so the CPUs race on the bucket for one to four seconds; the
// filter's own counters then say whether the source got its limit once, not
// once per CPU.
//
// What makes these tests fail (races are chances, not certainties: a plain
// store in place of the compare-and-swap failed 2 of 3 runs on the 2-CPU
// host and 1 to 3 of 3 on 6.1 with 8 vCPUs under qemu TCG):
//  - a plain load/store instead of the compare-and-swap: two CPUs that read
//    the same theoretical arrival time both pass on one token, so passes go
//    over burst + rate * elapsed, and the bucket's final arrival time falls
//    short of the tokens charged;
//  - a lost compare-and-swap treated as over the limit: the lost-race object
//    drops instead of passing, and refusals come from tokens that were there;
//  - a per-CPU table (BPF_MAP_TYPE_LRU_PERCPU_HASH or a bucket per CPU): every
//    CPU gets the whole limit, passes go up to N times the bound.
//
// BPF_F_NO_COMMON_LRU would not change what is checked here: it gives each
// CPU its own LRU lists (free, active, inactive) and its 1/N share of the
// preallocated nodes, but the hash table is still one, so a lookup from any
// CPU finds the same element and the same bucket. What it changes is
// capacity: an entry can only be made from the free nodes of the CPU that
// inserts it, so with RSS steering most new sources to one queue that CPU's
// table is max_sources / N before it evicts. The map keeps the common LRU.
//
// scripts/test.sh runs these again on Linux 6.1 with 8 CPUs under qemu.
#include <bpf/libbpf.h>
#include <linux/bpf.h>
#include <pthread.h>
#include <sched.h>
#include <time.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <iostream>
#include <latch>
#include <thread>

#include "features/xdp/datapath.hpp"
#include "core/limits.hpp"
#include "core/packet.hpp"
#include "core/policy.hpp"
#include "support/filter_harness.hpp"
#include "support/prog_runner.hpp"

namespace bpfgate::test {
namespace {

using Clock = std::chrono::steady_clock;

constexpr auto kRunFor = std::chrono::seconds(1);
// A run goes on past kRunFor, up to this, until the CPUs together have sent
// enough (on a busy host the threads get less of their CPUs).
constexpr auto kRunAtMost = std::chrono::seconds(4);
// The limit is set from how fast one CPU runs the filter (calibrate()), so
// that every CPU's packets race for tokens most of the time (each pass is an
// update of the bucket) and the CPUs together still offer several times the
// rate, on this host and on a qemu TCG guest a hundred times slower alike.
// The burst is half a second of the rate: no pause of the load that long
// lets the bucket fill up and lose tokens.
constexpr uint64_t kMinRate = 1000;

constexpr const char *kSource = "198.18.5.5";

std::vector<uint8_t> frame(const std::string &src = kSource) {
  return core::PacketBuilder().ipv4(src, "198.18.0.1").udp(40000, 53).build();
}

std::vector<int> usable_cpus();

// A limit of what one CPU offers, measured on another source, over 4 per
// CPU: all CPUs at once run slower each (8 vCPUs of a qemu TCG guest on 2
// host cores, about a seventh of one vCPU alone each).
core::Limits calibrate(int prog_fd) {
  auto r = ProgRunner(prog_fd).run(frame("198.18.5.6"), 20000);
  EXPECT_TRUE(r.ok());
  const uint64_t per_ns = r.ok() ? std::max<uint32_t>(r->duration_ns, 1) : 1000;
  const uint64_t rate =
      std::max<uint64_t>(1'000'000'000ULL / per_ns / 4 / usable_cpus().size(), kMinRate);
  return core::Limits{rate, std::max<uint64_t>(rate / 2, 1)};
}

// The CPUs this process may run on.
std::vector<int> usable_cpus() {
  cpu_set_t set;
  CPU_ZERO(&set);
  std::vector<int> out;
  if (sched_getaffinity(0, sizeof(set), &set) != 0)
    return out;
  for (int c = 0; c < CPU_SETSIZE; c++)
    if (CPU_ISSET(c, &set))
      out.push_back(c);
  return out;
}

// One thread's share of a run.
struct Lane {
  uint64_t sent = 0;
  uint64_t busy_ns = 0;  // time in the program, as the kernel measured it
  // The longest the lane was away from the program (preempted, in or between
  // calls), over two calls: a pause that began in one call ends in the next.
  // A lane that has stopped is away until the run ends: its last call's
  // pause and the time after it count as one (see hammer_from_every_cpu()).
  uint64_t max_pause_ns = 0;
  uint64_t last_away_ns = 0;      // away during the last call
  Clock::time_point last_done{};  // when the last call returned
  std::string error;
};

// Pinned to `cpu`, runs the program on frame from kRunFor to kRunAtMost
// after `start`, until `enough(packets sent by all)`, with a repeat count that
// keeps each call near 5 ms (a call also switches the XDP dispatcher when no
// other is running: tens of ms).
template <class Enough>
void drive(int prog_fd, int cpu, const std::vector<uint8_t> &f, std::latch &go,
           Clock::time_point start, const Enough &enough, std::atomic<uint64_t> &all, Lane &lane) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  if (int err = pthread_setaffinity_np(pthread_self(), sizeof(set), &set); err) {
    lane.error = "pin to cpu " + std::to_string(cpu) + ": " + std::strerror(err);
    go.count_down();
    return;
  }
  go.arrive_and_wait();
  ProgRunner r(prog_fd);
  uint32_t repeat = 64;
  lane.last_done = Clock::now();
  for (;;) {
    const auto now = Clock::now();
    if (now - start >= kRunAtMost || (now - start >= kRunFor && enough(all.load(), now - start)))
      break;
    auto res = r.run(f, repeat);
    if (!res) {
      lane.error = "cpu " + std::to_string(cpu) + ": " + res.error().what();
      return;
    }
    const auto done = Clock::now();
    const uint64_t in_prog = static_cast<uint64_t>(res->duration_ns) * repeat;
    const auto wall = static_cast<uint64_t>(
        std::chrono::duration_cast<std::chrono::nanoseconds>(done - lane.last_done).count());
    const uint64_t away = wall > in_prog ? wall - in_prog : 0;
    lane.max_pause_ns = std::max(lane.max_pause_ns, away + lane.last_away_ns);
    lane.last_away_ns = away;
    lane.last_done = done;
    lane.sent += repeat;
    all += repeat;
    lane.busy_ns += in_prog;
    uint64_t per = std::max<uint64_t>(res->duration_ns, 1);
    repeat = static_cast<uint32_t>(std::clamp<uint64_t>(5'000'000 / per, 64, 1u << 16));
  }
}

struct Hammered {
  uint64_t sent = 0;
  uint64_t busy_ns = 0;
  uint64_t start_ns = 0, end_ns = 0;  // CLOCK_MONOTONIC, the clock of bpf_ktime_get_ns()
  uint64_t start_coarse_ns = 0;       // CLOCK_MONOTONIC_COARSE, bpf_ktime_get_coarse_ns()'s
  size_t cpus = 0;
  // At most how long every lane was away from the program at once: the
  // shortest of the lanes' longest pauses.
  uint64_t all_paused_ns = 0;
};

uint64_t monotonic_ns() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1'000'000'000ULL + static_cast<uint64_t>(ts.tv_nsec);
}

// Runs the program from one pinned thread per usable CPU (see drive()).
template <class Enough>
Hammered hammer_from_every_cpu(int prog_fd, const Enough &enough) {
  const auto cpus = usable_cpus();
  const auto f = frame();
  std::vector<Lane> lanes(cpus.size());
  std::latch go(static_cast<ptrdiff_t>(cpus.size()));
  std::atomic<uint64_t> all{0};
  Hammered run;
  run.cpus = cpus.size();
  timespec coarse{};
  clock_gettime(CLOCK_MONOTONIC_COARSE, &coarse);
  run.start_coarse_ns = static_cast<uint64_t>(coarse.tv_sec) * 1'000'000'000ULL +
                        static_cast<uint64_t>(coarse.tv_nsec);
  run.start_ns = monotonic_ns();
  const auto start = Clock::now();
  {
    std::vector<std::jthread> threads;
    for (size_t i = 0; i < cpus.size(); i++)
      threads.emplace_back(drive<Enough>, prog_fd, cpus[i], std::cref(f), std::ref(go), start,
                           std::cref(enough), std::ref(all), std::ref(lanes[i]));
  }
  run.end_ns = monotonic_ns();
  const auto end = Clock::now();
  run.all_paused_ns = UINT64_MAX;
  for (auto &l : lanes) {
    // One lane may stop on time while another, preempted, sends its last
    // call 100 ms later (one CI run: the two lanes ended 113 ms apart, beside
    // another test): the first lane is away for all that time, and the
    // tokens that came back meanwhile outnumber the last call's frames.
    const auto tail = static_cast<uint64_t>(
        std::chrono::duration_cast<std::chrono::nanoseconds>(end - l.last_done).count());
    l.max_pause_ns = std::max(l.max_pause_ns, l.last_away_ns + tail);
    EXPECT_TRUE(l.error.empty()) << l.error;
    EXPECT_GT(l.sent, 0u) << "a CPU sent nothing";
    run.sent += l.sent;
    run.busy_ns += l.busy_ns;
    run.all_paused_ns = std::min(run.all_paused_ns, l.max_pause_ns);
  }
  return run;
}

// The only entry of the sources map.
std::optional<bg_src_state> only_source(const agent::Datapath &dp) {
  auto all = dp.sources();
  EXPECT_TRUE(all.ok());
  if (!all.ok() || all->size() != 1) {
    ADD_FAILURE() << "expected one source, found " << (all.ok() ? all->size() : 0);
    return std::nullopt;
  }
  return (*all)[0].state;
}

// Every counter but PASS/OK and DROP/RATE_LIMIT is zero.
void expect_only_ok_and_rate_limit(const agent::CounterTotals &c) {
  for (uint32_t v = 0; v < BG_VERDICT_NR; v++)
    for (uint32_t r = 0; r < BG_REASON_NR; r++) {
      if ((v == BG_VERDICT_PASS && r == BG_REASON_OK) ||
          (v == BG_VERDICT_DROP && r == BG_REASON_RATE_LIMIT))
        continue;
      EXPECT_EQ(c[bg_counter_key(v, r)].packets, 0u) << "verdict " << v << " reason " << r;
    }
}

TEST(SharedBucket, OneSourceOnEveryCpuGetsItsLimitOnce) {
  if (usable_cpus().size() < 2)
    GTEST_SKIP() << "SKIPPED: needs 2 CPUs, this process may use " << usable_cpus().size();
  auto h = FilterHarness::load_or_abort(core::default_policy({kMinRate, 1}, BG_VERDICT_PASS), 1024);
  const core::Limits limit = calibrate(h.prog_fd());
  ASSERT_TRUE(h.set_limits(limit).ok());
  bg_limit lim{};
  core::apply_limits(limit, lim);
  const auto before = h.counters();
  const uint64_t contended_before = h.stat(BG_STAT_CAS_CONTENDED);

  // Enough: 1.5 times what the limit lets through by then.
  const Hammered run =
      hammer_from_every_cpu(h.prog_fd(), [&](uint64_t sent, Clock::duration elapsed) {
        const double secs = std::chrono::duration<double>(elapsed).count();
        return sent > 1.5 * (limit.burst + limit.rate_pps * secs);
      });
  const double secs = static_cast<double>(run.end_ns - run.start_ns) / 1e9;
  auto st = h.source(kSource);
  ASSERT_TRUE(st.has_value());
  auto after = h.counters();
  for (size_t i = 0; i < after.size(); i++)
    after[i].packets -= before[i].packets;  // the calibration's packets
  const uint64_t passed = after[bg_counter_key(BG_VERDICT_PASS, BG_REASON_OK)].packets;
  const uint64_t refused = after[bg_counter_key(BG_VERDICT_DROP, BG_REASON_RATE_LIMIT)].packets;
  const uint64_t contended = h.stat(BG_STAT_CAS_CONTENDED) - contended_before;
  SCOPED_TRACE(testing::Message() << run.cpus << " CPUs, " << secs << " s, limit " << limit.rate_pps
                                  << " pps burst " << limit.burst << ": sent " << run.sent
                                  << ", passed " << passed << ", refused " << refused
                                  << ", contended " << contended << ", CPUs busy at once "
                                  << static_cast<double>(run.busy_ns) / 1e9 / secs
                                  << ", every CPU away at once at most "
                                  << static_cast<double>(run.all_paused_ns) / 1e6 << " ms");

  std::cerr << "every CPU away from the program at once: at most "
            << static_cast<double>(run.all_paused_ns) / 1e6 << " ms\n";
  // The limit was hit.
  ASSERT_GT(refused, 0u);

  // Every packet counted once, on the source and on the filter; every
  // refusal is the rate limit's.
  EXPECT_EQ(st->packets, run.sent);
  EXPECT_EQ(passed + refused, run.sent);
  EXPECT_EQ(st->drops, refused);
  expect_only_ok_and_rate_limit(after);

  // GCRA on one bucket: the n-th pass (from 0) needs first + n * E - now <=
  // tolerance, so by the end at most 1 + (end - first + tolerance) / E
  // passed, beside those whose every compare-and-swap lost (free passes).
  // The datapath may read the coarse clock (BG_RULE_COARSE_CLOCK), which
  // lags the fine one by a tick or more when a tick comes late (one CI run:
  // a tick plus 64 us): the first frame's time is compared with that clock's
  // reading at the start (the fine clock is never behind it).
  const uint64_t first = st->first_seen_ns;
  ASSERT_GE(first, run.start_coarse_ns);
  const double e = static_cast<double>(lim.emission_ns);
  const double most = 1.0 + static_cast<double>(run.end_ns - first + lim.tolerance_ns) / e;
  EXPECT_LE(static_cast<double>(passed), most * 1.001 + 2.0 + static_cast<double>(contended))
      << "the CPUs shared tokens";
  // Each charged pass moved the arrival time one emission interval (more if
  // the bucket ever filled up): fewer means charges were lost to a race.
  const double charged = static_cast<double>(passed - contended);
  EXPECT_LE(charged, static_cast<double>(st->tat_ns - first) / e + 2.0)
      << "passes that the bucket's arrival time does not account for";
  // Losing every try of the compare-and-swap is rare, and counted as a pass.
  EXPECT_LE(contended, passed);
  EXPECT_LE(static_cast<double>(contended), 0.01 * static_cast<double>(passed) + 2.0);

  // Not under-served: the bucket ended empty, its arrival time a whole
  // tolerance ahead of the last packets (within 5 % and a few tokens, and the
  // time every CPU was away from the program at once, which the last packets
  // can follow: tokens came back then that nothing was sent to take; in the
  // 8-CPU qemu guest, TCG on 2 host cores, a stall of every vCPU took 20 ms
  // in one CI run, and beside another test on this host's 2 CPUs ~55 ms), so
  // the refusals at the end were for tokens that were not there. (Tokens
  // lost while the bucket was full, before the CPUs got going, are the
  // load's, not the bucket's.) Only meaningful if the CPUs offered well over
  // the limit, which a host busy with other work can deny them.
  if (static_cast<double>(run.sent) < 1.5 * (limit.burst + limit.rate_pps * secs))
    GTEST_SKIP() << "SKIPPED the under-served check (the others ran): the CPUs sent " << run.sent
                 << " in " << secs << " s, under 1.5 times the limit; the host is too busy";
  EXPECT_GE(static_cast<double>(st->tat_ns) + 0.05 * lim.tolerance_ns + 8 * e +
                static_cast<double>(run.all_paused_ns),
            static_cast<double>(st->last_seen_ns + lim.tolerance_ns))
      << "tokens left unused under load";
}

// The filter built to lose every compare-and-swap (tests/bpf/cas_lost_filter.bpf.c),
// on every CPU at once: every packet passes as contended, none is refused.
TEST(SharedBucket, LostRacesOnEveryCpuPassAndAreCountedAsContended) {
  if (usable_cpus().size() < 2)
    GTEST_SKIP() << "SKIPPED: needs 2 CPUs, this process may use " << usable_cpus().size();
  CasLostFilter f = load_cas_lost_filter_or_abort();
  agent::Datapath *dp = &f.dp;
  ASSERT_TRUE(dp->apply(core::default_policy({kMinRate, 1}, BG_VERDICT_PASS)).ok());

  const Hammered run =
      hammer_from_every_cpu(f.prog_fd, [](uint64_t, Clock::duration) { return true; });
  auto c = dp->counters();
  auto s = dp->stats();
  ASSERT_TRUE(c.ok() && s.ok());
  EXPECT_EQ((*c)[bg_counter_key(BG_VERDICT_PASS, BG_REASON_OK)].packets, run.sent);
  EXPECT_EQ((*c)[bg_counter_key(BG_VERDICT_DROP, BG_REASON_RATE_LIMIT)].packets, 0u);
  EXPECT_EQ((*s)[BG_STAT_CAS_CONTENDED], run.sent);
  expect_only_ok_and_rate_limit(*c);
  auto st = only_source(*dp);
  ASSERT_TRUE(st.has_value());
  EXPECT_EQ(st->packets, run.sent);
  EXPECT_EQ(st->drops, 0u);
}

}  // namespace
}  // namespace bpfgate::test
