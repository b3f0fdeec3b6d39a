// policy_ops: how long the control plane takes for its big operations, each
// beside a reference measured in the same run, min / median / max over runs:
//   apply_100k_prefixes   compile + switch a config of 100,000 prefixes,
//                         vs switching a policy with no prefixes (the fixed cost)
//   sweep_1m_sources      sweep 1,000,000 idle per-source entries (in the kernel
//                         where it loads the sweeper), vs only reading them
//                         (batch lookup)
//   sweep_1m_from_user_space  the same sweep from user space (read out, find,
//                         batch-delete): the fallback, vs the same reference
// Targets (issue 4): each under 1 s. Loads the real filter object; attaches nothing.
#include <bpf/libbpf.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "features/xdp/blocklist.hpp"
#include "features/xdp/datapath.hpp"
#include "bpf/skeletons.hpp"
#include "core/config.hpp"
#include "core/policy.hpp"
#include "util/log.hpp"

namespace bpfgate::bench {
namespace {

using Clock = std::chrono::steady_clock;
using nlohmann::json;

struct Stats {
  double min, median, max;
};
Stats stats_of(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return {v.front(), v[v.size() / 2], v.back()};
}

template <class F>
Result<double> seconds(F &&f) {
  auto t0 = Clock::now();
  if (auto st = f(); !st)
    return st.error();
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

core::Config hundred_k_config() {
  core::Config c;
  for (uint32_t i = 0; i < 50000; i++) {
    c.allow.push_back(
        *core::parse_prefix(fmt::format("2001:db8:{:x}:{:x}::/64", i / 256, i % 256)));
    c.deny.push_back(
        *core::parse_prefix(fmt::format("2001:db8:8{:03x}:{:x}::/64", i / 4096, i % 4096)));
  }
  return c;
}

struct Loaded {
  std::shared_ptr<void> skel;
  agent::Datapath dp;
};

Result<Loaded> load(uint32_t max_sources) {
  auto skel = bpf::XdpFilterSkel::open("xdp_filter");
  if (!skel)
    return skel.error();
  bpf_map__set_max_entries((*skel)->maps.bg_sources, max_sources);
  if (auto st = skel->load(); !st)
    return st.error();
  auto dp = agent::Datapath::from_object((*skel)->obj);
  if (!dp)
    return dp.error();
  return Loaded{std::make_shared<bpf::XdpFilterSkel>(std::move(*skel)), std::move(*dp)};
}

// Fills the sources map with n entries last seen at boot, in batches.
Status fill_sources(agent::Datapath &dp, uint32_t n) {
  const uint64_t old = 1;
  const uint32_t chunk = 65536;
  std::vector<bg_src_key> keys(chunk);
  std::vector<bg_src_state> vals(chunk);
  for (uint32_t base = 0; base < n; base += chunk) {
    uint32_t m = std::min(chunk, n - base);
    for (uint32_t i = 0; i < m; i++) {
      keys[i] = bg_src_key{};
      uint32_t idx = base + i;
      keys[i].addr[0] = 0x20, keys[i].addr[1] = 0x01, keys[i].addr[2] = 0x0d,
      keys[i].addr[3] = 0xb8;
      std::memcpy(keys[i].addr + 12, &idx, 4);
      vals[i] = bg_src_state{};
      vals[i].last_seen_ns = old;
    }
    uint32_t count = m;
    LIBBPF_OPTS(bpf_map_batch_opts, opts);
    if (int err =
            bpf_map_update_batch(dp.source_map().fd(), keys.data(), vals.data(), &count, &opts))
      return bpf::libbpf_error(err, "fill the sources map");
  }
  return {};
}

struct Row {
  std::string name, reference;
  Stats s, ref;
  size_t items;
};

void print(const Row &r, bool as_json) {
  if (as_json) {
    fmt::print("{}\n", json{{"name", r.name},
                            {"seconds", r.s.median},
                            {"seconds_min", r.s.min},
                            {"seconds_max", r.s.max},
                            {"reference", r.reference},
                            {"reference_seconds", r.ref.median},
                            {"items", r.items},
                            {"target_seconds", 1.0},
                            {"within_target", r.s.median < 1.0}}
                           .dump());
    return;
  }
  fmt::print("{:<24} {:>8.3f} {:>8.3f} {:>8.3f}   {:<28} {:>8.3f} {:>8.3f} {:>8.3f}   {}\n", r.name,
             r.s.min, r.s.median, r.s.max, r.reference, r.ref.min, r.ref.median, r.ref.max,
             r.s.median < 1.0 ? "yes" : "NO");
}

// Times `sweep` on 1M idle entries against reading them all (batch
// lookup), `runs` times; prints the row. False on an error.
template <class Sweep>
bool sweep_row(const std::string &name, unsigned runs, bool as_json, Sweep &&sweep) {
  constexpr uint32_t kN = 1'000'000;
  auto l = load(1u << 20);
  if (!l) {
    log::error("{}", l.error().what());
    return false;
  }
  std::vector<double> t, ref;
  for (unsigned i = 0; i < runs; i++) {
    if (auto st = fill_sources(l->dp, kN); !st) {
      log::error("{}", st.error().what());
      return false;
    }
    auto b = seconds([&]() -> Status {
      auto all = l->dp.sources();
      if (!all)
        return all.error();
      if (all->size() != kN)
        return make_error(EPROTO, "read {} entries, expected {}", all->size(), kN);
      return {};
    });
    size_t removed = 0;
    auto a = seconds([&]() -> Status {
      auto r = sweep(l->dp);
      if (!r)
        return r.error();
      removed = r->sources_removed;
      return {};
    });
    if (!a || !b) {
      log::error("{}", (!a ? a.error() : b.error()).what());
      return false;
    }
    if (removed != kN) {
      log::error("{}: removed {} of {} idle entries", name, removed, kN);
      return false;
    }
    t.push_back(*a);
    ref.push_back(*b);
  }
  print({name, "read 1M entries (batch)", stats_of(t), stats_of(ref), kN}, as_json);
  return true;
}

int run(unsigned runs, bool as_json) {
  if (!as_json)
    fmt::print(
        "policy_ops: seconds per operation, {} runs, min / median / max; target < 1 s\n\n"
        "{:<24} {:>8} {:>8} {:>8}   {:<28} {:>8} {:>8} {:>8}   {}\n",
        runs, "operation", "min", "median", "max", "reference", "min", "median", "max", "<1s");
  // Apply: compile and switch 100k prefixes, against switching an empty ACL.
  {
    auto l = load(core::kDefaultMaxSources);
    if (!l) {
      log::error("{}", l.error().what());
      return 1;
    }
    core::Config big = hundred_k_config(), empty;
    std::vector<double> t, ref;
    for (unsigned i = 0; i < runs; i++) {
      auto a = seconds([&] { return l->dp.apply(core::compile(big)); });
      auto b = seconds([&] { return l->dp.apply(core::compile(empty)); });
      if (!a || !b) {
        log::error("{}", (!a ? a.error() : b.error()).what());
        return 1;
      }
      t.push_back(*a);
      ref.push_back(*b);
    }
    print({"apply_100k_prefixes", "apply with no prefixes", stats_of(t), stats_of(ref), 100000},
          as_json);
  }
  // Sweep: 1M idle entries found and deleted, against reading them all; in
  // the kernel where it loads the sweeper, and from user space (the fallback).
  // The entries were last seen at 1 ns: idle for any TTL shorter than the
  // uptime (a fresh qemu guest's is under a minute).
  const uint64_t idle_ns = 1'000'000'000ULL;
  if (!sweep_row("sweep_1m_sources", runs, as_json,
                 [&](agent::Datapath &dp) { return agent::sweep(dp, idle_ns); }))
    return 1;
  if (!sweep_row("sweep_1m_from_user_space", runs, as_json,
                 [&](agent::Datapath &dp) -> Result<agent::SweepReport> {
                   agent::SweepReport r;
                   if (auto st = agent::sweep_idle_from_user_space(
                           dp, agent::monotonic_ns() - idle_ns, r);
                       !st)
                     return st.error();
                   return r;
                 }))
    return 1;
  return 0;
}

}  // namespace
}  // namespace bpfgate::bench

int main(int argc, char **argv) {
  CLI::App app{"policy_ops: apply and sweep times of the control plane"};
  unsigned runs = 5;
  bool as_json = false;
  app.add_option("--runs", runs, "runs per operation")
      ->check(CLI::Range(1, 100))
      ->capture_default_str();
  app.add_flag("-j,--json", as_json, "one JSON object per operation and line");
  CLI11_PARSE(app, argc, argv);
  bpfgate::bpf::install_libbpf_logger();
  return bpfgate::bench::run(runs, as_json);
}
