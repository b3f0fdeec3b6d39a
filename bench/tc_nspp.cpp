// tc_nspp: nanoseconds per packet of the tc datapath under BPF_PROG_TEST_RUN,
// beside an empty tc program measured in the same run, the programs
// interleaved run by run. Loads programs, attaches nothing; needs root.
//
// Cases, each a 64-byte UDP/IPv4 frame on egress, through a config of four
// classes (the frame matches the third, which polices far above what the
// test can send):
//   pipeline   the production entry point: parse, classify, police, mirror
//              and count chained by five tail calls
//   direct     the same five stages called one after the other in one program
//   one_stage  the pipeline with only parse and count enabled (stages off
//              are skipped by the tail-call chain without reloading anything)
// The tail call's cost is (pipeline - direct) / 5, printed below the table.
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/if_ether.h>
#include <net/if.h>
#include <sched.h>
#include <sys/utsname.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "features/tc/tc.hpp"
#include "bpf/error.hpp"
#include "bpf/object.hpp"
#include "core/config.hpp"
#include "core/packet.hpp"
#include "features/tc/tc_config.hpp"
#include "tc_bench.skel.h"
#include "tc_empty.skel.h"
#include "util/log.hpp"
#include "util/result.hpp"

namespace bpfgate::bench {
namespace {

using json = nlohmann::ordered_json;
using TcBenchSkel = bpf::Skeleton<
    bpf::SkeletonTraits<tc_bench, tc_bench__open_opts, tc_bench__load, tc_bench__destroy>>;
using TcEmptySkel = bpf::Skeleton<
    bpf::SkeletonTraits<tc_empty, tc_empty__open_opts, tc_empty__load, tc_empty__destroy>>;

constexpr const char *kClasses = R"(  interfaces: [lo]
  classes:
    - {name: api, direction: egress, match: {protocol: tcp, sport: 8000-8099}, dscp: ef}
    - {name: dns, match: {protocol: udp, port: 53}}
    - {name: bulk, match: {protocol: udp, dport: 5201}, rate: 400gbit, burst: 64mb}
    - {name: rest}
)";
constexpr int kTailCalls = 5;

struct Stats {
  double min = 0, median = 0, max = 0;
};
Stats stats_of(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return {v.front(), v[v.size() / 2], v.back()};
}

// The kernel's average ns per repeat (its own clock, resched time excluded).
Result<double> ns_per_run(int prog_fd, const std::vector<uint8_t> &frame, uint32_t repeat) {
  std::vector<uint8_t> out(frame.size() + 256);
  __sk_buff ctx{};
  ctx.ifindex = 1;  // lo
  LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = frame.data(), .data_out = out.data(),
              .data_size_in = static_cast<uint32_t>(frame.size()),
              .data_size_out = static_cast<uint32_t>(out.size()), .ctx_in = &ctx,
              .ctx_size_in = sizeof(ctx), .repeat = static_cast<int>(repeat));
  if (int err = bpf_prog_test_run_opts(prog_fd, &opts); err)
    return bpf::libbpf_error(err, "BPF_PROG_TEST_RUN");
  if (static_cast<int32_t>(opts.retval) == 2 /* TC_ACT_SHOT */)
    return make_error(EPROTO, "the bench frame was dropped: the config is wrong");
  return static_cast<double>(opts.duration);
}

struct Case {
  const char *name;
  const char *about;
  int fd;
  std::vector<double> ns, floor_ns;
};

void pin_to_cpu(int cpu) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  (void)sched_setaffinity(0, sizeof(set), &set);
}

int run(int runs, uint32_t repeat, bool as_json) {
  pin_to_cpu(0);
  auto skel = TcBenchSkel::open("tc_bench");
  if (!skel || !skel->load().ok()) {
    log::error("load the tc bench object: {}",
               skel ? skel->load().error().what() : skel.error().what());
    return 1;
  }
  auto empty = TcEmptySkel::open("tc_empty");
  if (!empty || !empty->load().ok()) {
    log::error("load the empty tc program");
    return 1;
  }
  auto dp = agent::TcDatapath::from_object((*skel)->obj);
  if (!dp) {
    log::error("{}", dp.error().what());
    return 1;
  }
  for (uint32_t s = 0; s < BG_TC_STAGE_NR; s++)
    if (auto st = dp->set_stage(s, true); !st) {
      log::error("{}", st.error().what());
      return 1;
    }
  auto c =
      core::parse_config(std::string("interfaces: [{name: lo}]\ntc:\n") + kClasses, "bench.yaml");
  if (!c) {
    log::error("{}", c.error().what());
    return 1;
  }
  auto image = core::compile_tc(
      *c->tc, [](const std::string &n) -> Result<uint32_t> { return if_nametoindex(n.c_str()); });
  if (!image) {
    log::error("{}", image.error().what());
    return 1;
  }
  if (auto st = dp->apply(*image); !st) {
    log::error("{}", st.error().what());
    return 1;
  }
  auto frame = core::PacketBuilder()
                   .eth({2, 0, 0, 0, 0, 1}, {2, 0, 0, 0, 0, 2})
                   .ipv4("198.18.0.1", "198.18.0.2")
                   .udp(40000, 5201)
                   .frame_size(64)
                   .build();
  int floor_fd = bpf_program__fd((*empty)->progs.bg_tc_empty);
  int direct_fd = bpf_program__fd((*skel)->progs.bg_tc_direct_egress);
  std::vector<Case> cases = {
      {"pipeline",
       "parse, classify, police, mirror, count by tail calls",
       dp->prog_fd(true),
       {},
       {}},
      {"direct", "the same five stages in one program", direct_fd, {}, {}},
      {"one_stage",
       "the pipeline with classify, police and mirror disabled",
       dp->prog_fd(true),
       {},
       {}},
  };
  auto set_middle = [&](bool on) {
    for (uint32_t s : {BG_TC_STAGE_CLASSIFY, BG_TC_STAGE_POLICE, BG_TC_STAGE_MIRROR})
      (void)dp->set_stage(s, on);
  };
  for (auto &cs : cases) {
    bool one = std::string(cs.name) == "one_stage";
    set_middle(!one);
    (void)ns_per_run(cs.fd, frame, repeat / 10);  // warm
    for (int r = 0; r < runs; r++) {
      auto a = ns_per_run(cs.fd, frame, repeat);
      auto b = ns_per_run(floor_fd, frame, repeat);
      if (!a || !b) {
        log::error("{}", (!a ? a : b).error().what());
        return 1;
      }
      cs.ns.push_back(*a);
      cs.floor_ns.push_back(*b);
    }
  }
  set_middle(true);
  double tail = (stats_of(cases[0].ns).median - stats_of(cases[1].ns).median) / kTailCalls;
  if (as_json) {
    for (const auto &cs : cases) {
      auto a = stats_of(cs.ns), f = stats_of(cs.floor_ns);
      fmt::print("{}\n", json{{"name", std::string("tc_") + cs.name},
                              {"ns_per_pkt", a.median},
                              {"floor_ns_per_pkt", f.median},
                              {"ratio", a.median / f.median},
                              {"min", a.min},
                              {"max", a.max},
                              {"runs", runs},
                              {"repeat", repeat}}
                             .dump());
    }
    fmt::print("{}\n", json{{"name", "tc_tail_call"}, {"ns_per_call", tail}}.dump());
    return 0;
  }
  utsname u{};
  uname(&u);
  fmt::print("tc_nspp: ns per 64-byte UDP frame on egress under BPF_PROG_TEST_RUN, kernel {}\n",
             u.release);
  fmt::print(
      "{} runs of {} repeats per program, contender and empty program interleaved; "
      "min / median / max of the kernel's ns per repeat\n\n",
      runs, repeat);
  fmt::print("{:<10} {:^23}   {:^23}   {:>7} {:>8}\n", "case", "tc datapath ns/pkt",
             "empty tc ns/pkt", "ratio", "+ns/pkt");
  for (const auto &cs : cases) {
    auto a = stats_of(cs.ns), f = stats_of(cs.floor_ns);
    fmt::print(
        "{:<10} {:>7.1f} {:>7.1f} {:>7.1f}   {:>7.1f} {:>7.1f} {:>7.1f}   {:>6.2f}x {:>+8.1f}\n",
        cs.name, a.min, a.median, a.max, f.min, f.median, f.max, a.median / f.median,
        a.median - f.median);
  }
  fmt::print("\n");
  for (const auto &cs : cases)
    fmt::print("{}: {}\n", cs.name, cs.about);
  fmt::print("a tail call costs {:.1f} ns here: (pipeline - direct) / {} tail calls\n", tail,
             kTailCalls);
  return 0;
}

}  // namespace
}  // namespace bpfgate::bench

int main(int argc, char **argv) {
  CLI::App app{"tc_nspp: ns per packet of the tc datapath vs an empty tc program"};
  int runs = 7;
  uint32_t repeat = 1'000'000;
  bool as_json = false;
  app.add_option("--runs", runs, "timed runs per case")->check(CLI::Range(1, 100));
  app.add_option("--repeat", repeat, "BPF_PROG_TEST_RUN repeats per run")
      ->check(CLI::Range(1000U, 100'000'000U));
  app.add_flag("-j,--json", as_json, "one JSON object per case and line");
  CLI11_PARSE(app, argc, argv);
  return bpfgate::bench::run(runs, repeat, as_json);
}
