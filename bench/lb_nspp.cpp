// lb_nspp: the XDP load balancer (issue 15) under BPF_PROG_TEST_RUN, beside
// an empty XDP_TX program timed in the same run, the programs interleaved run
// by run; and the flows a backend change moves, against 1/N. Loads programs,
// attaches nothing; makes one network namespace (removed at exit), whose
// routes and permanent neighbours let bpf_fib_lookup answer; needs root.
//
// The balancer is the production one, loaded, pinned and filled by the
// control plane's own code (agent::lb::Balancer, a Maglev ring per service
// over three backends of equal weight) in a bpffs directory of its own.
// A repeat of test_run sees the frame the previous one rewrote, so each
// program here first writes the case's frame back (bench/bpf/lb_bench.bpf.c),
// then tail-calls the balancer; the floor does the same and tail-calls an
// empty XDP_TX program instead. The balancer's own cost is
// (balancer - floor) + the empty XDP_TX, and that against the empty XDP_TX
// is the ratio (aim: <= 3x).
//
// Cases (96-byte TCP frames to the VIP's port 80, received on the clients'
// side, forwarded (redirected) to a backend on the other link):
//   v4_established, v6_established  one flow's ACKs: a connection-table hit
//   v4_new_flow, v6_new_flow         a SYN from a new source address and port
//                                    each packet: Maglev lookup, inserts in the
//                                    connection and reverse tables (LRU, full
//                                    after the warm-up: each insert evicts)
//   v4_minimal                       v4_established's frames through a minimal
//                                    DNAT, not the balancer (bench/bpf/
//                                    lb_bench.bpf.c: one array lookup, the
//                                    rewrite, a redirect, nothing else): what
//                                    an established path costs at the least,
//                                    against the same floor and XDP_TX
//   chain_v4, chain_v6               the filter (`bpfgate attach`'s policy, one
//                                    source under its limit) tail-calling the
//                                    balancer through its bg_xdp_next array, as
//                                    the agent chains them, against the filter
//                                    alone (its tail call into an empty slot)
//   dispatch_v4                      the same two as two programs in libxdp's
//                                    dispatcher (freplace extensions, the
//                                    filter first, XDP_PASS going on) against
//                                    the tail-call chain; only where the kernel
//                                    lets an extension replace a dispatcher's
//                                    slot (not this host's: Debian 12's 6.1 in
//                                    scripts/kernel-matrix.sh does)
// Each case checks the balancer's counters over its timed runs: every packet
// forwarded, and (new flow cases) every packet a new flow, (established) none;
// every case checks each run's action (v4_minimal: XDP_REDIRECT, its flow found).
//
// Flows moved (no kernel): Maglev tables of the control plane's builder
// (agent::lb::maglev_table) for N backends of equal weight, then one removed
// or one added: the share of table entries (hence of uniformly hashed new
// flows) whose backend changed, against 1/N (removed) or 1/(N+1) (added).
#include <bpf/bpf.h>
#include <arpa/inet.h>
#include <bpf/libbpf.h>
#include <fcntl.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sched.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "bpf/error.hpp"
#include "bpf/features.hpp"
#include "bpf/object.hpp"
#include "bpf/xdp_dispatcher.hpp"
#include "bpfgate/abi/lb.h"
#include "bpfgate/abi/xdp.h"
#include "core/packet.hpp"
#include "core/policy.hpp"
#include "features/lb/lb_datapath.hpp"
#include "features/lb/maglev.hpp"
#include "features/xdp/datapath.hpp"
#include "bpf/lb_bench.h"
#include "lb_bench.skel.h"
#include "lb_env.hpp"
#include "util/log.hpp"
#include "util/result.hpp"

namespace bpfgate::bench {
namespace {

using json = nlohmann::ordered_json;
using LbBenchSkel = bpf::Skeleton<
    bpf::SkeletonTraits<lb_bench, lb_bench__open_opts, lb_bench__load, lb_bench__destroy>>;

constexpr double kAimRatio = 3.0;  // issue 15: the balancer within 3x of the empty XDP_TX
constexpr size_t kFrame = 96;      // BG_LBB_FRAME in bench/bpf/lb_bench.bpf.c
constexpr uint32_t kSlotTx = 0, kSlotLb = 1, kSlotMin = 3;  // BG_LBB_* in lb_bench.bpf.c

struct Options {
  unsigned runs = 7;
  bool json = false;
  bool quick = false;
  uint32_t repeat = 0;  // 0: calibrated to target_ms per run
  unsigned target_ms = 200;
  int cpu = -1;
  std::vector<std::string> only;
  bool verbose = false;
};

struct Stats {
  double min = 0, median = 0, max = 0;
};
Stats stats_of(std::vector<double> v) {
  if (v.empty())
    return {};
  std::sort(v.begin(), v.end());
  size_t n = v.size();
  return {v.front(), n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2, v.back()};
}

double thread_cpu_ns() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) * 1e9 + static_cast<double>(ts.tv_nsec);
}

struct Prog {
  std::string name;
  int fd = -1;
  uint32_t action = XDP_TX;  // what each run's last repeat must return
};

std::string action_name(uint32_t a) {
  static const char *const kNames[] = {"XDP_ABORTED", "XDP_DROP", "XDP_PASS", "XDP_TX",
                                       "XDP_REDIRECT"};
  return a < 5 ? kNames[a] : fmt::format("action {}", a);
}

// One BPF_PROG_TEST_RUN of `repeat` repeats, received on ifindex: this
// thread's CPU time per repeat.
Result<double> test_run(const Prog &p, const std::vector<uint8_t> &frame, int ifindex,
                        uint32_t repeat) {
  std::vector<uint8_t> out(frame.size() + 256);
  xdp_md ctx{};
  ctx.data_end = static_cast<uint32_t>(frame.size());
  ctx.ingress_ifindex = static_cast<uint32_t>(ifindex);
  LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = frame.data(), .data_out = out.data(),
              .data_size_in = static_cast<uint32_t>(frame.size()),
              .data_size_out = static_cast<uint32_t>(out.size()), .ctx_in = &ctx,
              .ctx_size_in = sizeof(ctx), .repeat = static_cast<int>(repeat));
  double start = thread_cpu_ns();
  int err = bpf_prog_test_run_opts(p.fd, &opts);
  double end = thread_cpu_ns();
  if (err)
    return bpf::libbpf_error(err, fmt::format("test run of {}", p.name));
  if (opts.retval != p.action)
    return make_error(EPROTO, "{} returned {}, expected {}: the case does not measure what it says",
                      p.name, action_name(opts.retval), action_name(p.action));
  return (end - start) / repeat;
}

enum class Kind { kEstablished, kNewFlow, kChain, kDispatch, kMinimal };

struct CaseSpec {
  std::string name, about;
  Kind kind;
  bool v6;
};

std::vector<CaseSpec> all_cases() {
  return {
      {"v4_established", "IPv4, one flow's ACKs: connection-table hit", Kind::kEstablished, false},
      {"v4_new_flow", "IPv4, a SYN from a new address:port each packet: Maglev + inserts",
       Kind::kNewFlow, false},
      {"v6_established", "IPv6, one flow's ACKs: connection-table hit", Kind::kEstablished, true},
      {"v6_new_flow", "IPv6, a SYN from a new address:port each packet: Maglev + inserts",
       Kind::kNewFlow, true},
      {"v4_minimal",
       "IPv4, the same flow's ACKs through a minimal DNAT (one array lookup, the rewrite, a "
       "redirect; no counters, health, expiry or generation checks): the reference for the "
       "least an established path costs",
       Kind::kMinimal, false},
      {"chain_v4", "IPv4, filter tail-calling the balancer (established flow) vs the filter alone",
       Kind::kChain, false},
      {"chain_v6", "IPv6, filter tail-calling the balancer (established flow) vs the filter alone",
       Kind::kChain, true},
      {"dispatch_v4",
       "IPv4, filter and balancer as two programs in libxdp's dispatcher vs the filter "
       "tail-calling the balancer (established flow)",
       Kind::kDispatch, false},
  };
}

std::vector<uint8_t> frame_for(const CaseSpec &c) {
  core::PacketBuilder b;
  bool rotating = c.kind == Kind::kNewFlow;
  if (c.v6)
    b.ipv6(rotating ? "2001:db8:3::" : "2001:db8::10", kVip6);
  else
    b.ipv4(rotating ? "198.19.0.0" : "198.18.0.10", kVip4);
  b.tcp(40000, 80, rotating ? 0x02 /* SYN */ : 0x10 /* ACK */);
  return b.frame_size(kFrame).build();
}

struct Timed {
  Prog prog;
  uint32_t repeat = 0;
  std::vector<double> runs;
  Stats s;
};

struct CaseResult {
  const CaseSpec *spec = nullptr;
  std::vector<Timed> progs;  // contender, its reference (floor or the filter alone), empty XDP_TX
  uint64_t packets = 0, forwarded = 0, new_flows = 0;
  double contender() const { return progs[0].s.median; }
  double reference() const { return progs[1].s.median; }
  double tx() const { return progs[2].s.median; }
  // The balancer's own ns: what it adds to the harness, plus the empty program it replaces.
  double lb_ns() const { return contender() - reference() + tx(); }
  double ratio() const { return tx() > 0 ? lb_ns() / tx() : 0; }
};

Result<uint32_t> calibrate(const Prog &p, const std::vector<uint8_t> &f, int ifindex,
                           const Options &o) {
  if (o.repeat)
    return o.repeat;
  auto ns = test_run(p, f, ifindex, 20'000);
  if (!ns)
    return ns.error();
  double want = o.target_ms * 1e6 / std::max(*ns, 1.0);
  return static_cast<uint32_t>(std::clamp(want, 10'000.0, 100'000'000.0));
}

struct Env {
  LbBenchSkel *skel;
  const PinnedBalancer *lb;
  int ifindex;
  int dispatcher_fd = -1;  // libxdp's dispatcher on lbc0 running filter and balancer, if made
};

Result<CaseResult> run_case(const CaseSpec &c, Env &env, const Options &o) {
  auto &s = *env.skel;
  auto frame = frame_for(c);
  std::memcpy(s->bss->bg_lbb_frame, frame.data(), kFrame);
  s->bss->bg_lbb_rotate = c.kind == Kind::kNewFlow ? (c.v6 ? 6 : 4) : 0;
  auto fd = [](const bpf_program *p) { return bpf_program__fd(p); };
  CaseResult r;
  r.spec = &c;
  auto add = [&r](Prog p) {
    r.progs.push_back(Timed{.prog = std::move(p), .repeat = 0, .runs = {}, .s = {}});
  };
  if (c.kind == Kind::kChain) {
    add({"bg_lbb_filter_lb", fd(s->progs.bg_lbb_filter_lb), XDP_REDIRECT});
    add({"bg_lbb_filter", fd(s->progs.bg_lbb_filter), XDP_PASS});
  } else if (c.kind == Kind::kDispatch) {
    add({"xdp_dispatcher", env.dispatcher_fd, XDP_REDIRECT});
    add({"bg_lbb_filter_lb", fd(s->progs.bg_lbb_filter_lb), XDP_REDIRECT});
  } else if (c.kind == Kind::kMinimal) {
    add({"bg_lbb_minimal", fd(s->progs.bg_lbb_minimal), XDP_REDIRECT});
    add({"bg_lbb_floor", fd(s->progs.bg_lbb_floor), XDP_TX});
  } else {
    add({"bg_lbb_lb", fd(s->progs.bg_lbb_lb), XDP_REDIRECT});
    add({"bg_lbb_floor", fd(s->progs.bg_lbb_floor), XDP_TX});
  }
  add({"bg_lbb_tx", fd(s->progs.bg_lbb_tx), XDP_TX});
  // Warm-up: a new-flow case fills the connection tables (each later insert evicts).
  uint32_t warm = c.kind == Kind::kNewFlow ? BG_LB_CONNS_DEFAULT + 10'000 : 10'000;
  if (auto w = test_run(r.progs[0].prog, frame, env.ifindex, warm); !w)
    return w.error().context(c.name);
  for (auto &t : r.progs) {
    auto n = calibrate(t.prog, frame, env.ifindex, o);
    if (!n)
      return n.error().context(c.name);
    t.repeat = *n;
  }
  auto before = lb_counters(env.lb->counters_fd());
  if (!before)
    return before.error();
  const size_t n = r.progs.size();
  for (unsigned i = 0; i < o.runs; i++)
    for (size_t k = 0; k < n; k++) {
      Timed &t = r.progs[(i + k) % n];
      auto ns = test_run(t.prog, frame, env.ifindex, t.repeat);
      if (!ns)
        return ns.error().context(c.name);
      t.runs.push_back(*ns);
    }
  auto after = lb_counters(env.lb->counters_fd());
  if (!after)
    return after.error();
  for (auto &t : r.progs)
    t.s = stats_of(t.runs);
  if (c.kind == Kind::kMinimal)
    return r;  // not the balancer: each run's XDP_REDIRECT says the flow was found
  // Every program that ends in the balancer forwards (both of them in the dispatcher case).
  r.packets = 0;
  for (const auto &t : r.progs)
    if (t.prog.action == XDP_REDIRECT)
      r.packets += static_cast<uint64_t>(t.repeat) * o.runs;
  r.forwarded = (*after)[BG_LB_FORWARDED] - (*before)[BG_LB_FORWARDED];
  r.new_flows = (*after)[BG_LB_NEW_FLOW] - (*before)[BG_LB_NEW_FLOW];
  bool ok = r.forwarded == r.packets &&
            (c.kind == Kind::kNewFlow ? r.new_flows == r.packets : r.new_flows == 0);
  if (!ok)
    return make_error(EPROTO,
                      "{}: of {} packets the balancer forwarded {} and placed {} new flows: the "
                      "case does not measure what it says",
                      c.name, r.packets, r.forwarded, r.new_flows);
  return r;
}

// Flows moved by one backend removed or added, N backends of equal weight.
struct Moved {
  uint32_t n = 0, table = 0;
  std::string change;
  double moved = 0, ideal = 0, of_others = 0;  // shares of the table
};

std::vector<agent::lb::MaglevBackend> backends_of(uint32_t n) {
  std::vector<agent::lb::MaglevBackend> v;
  for (uint32_t i = 0; i < n; i++)
    v.push_back({fmt::format("198.18.{}.{}:80", 1 + i / 200, 10 + i % 200), i + 1, 100});
  return v;
}

Moved moved_by(uint32_t n, uint32_t m, bool removed) {
  auto small = backends_of(removed ? n - 1 : n), big = backends_of(removed ? n : n + 1);
  auto before = agent::lb::maglev_table(removed ? big : small, m);
  auto after = agent::lb::maglev_table(removed ? small : big, m);
  uint32_t changed = 0, others = 0;
  uint32_t gone = removed ? n : n + 1;  // the id that left (or came)
  for (uint32_t i = 0; i < m; i++)
    if (before[i] != after[i]) {
      changed++;
      if (before[i] != gone && after[i] != gone)
        others++;  // a flow moved between two backends that both stayed
    }
  Moved r;
  r.n = n;
  r.table = m;
  r.change = removed ? "remove 1" : "add 1";
  r.moved = double(changed) / m;
  r.ideal = removed ? 1.0 / n : 1.0 / (n + 1);
  r.of_others = double(others) / m;
  return r;
}

std::vector<Moved> flows_moved(bool quick) {
  std::vector<Moved> out;
  std::vector<uint32_t> tables = {BG_LB_RING_DEFAULT};
  if (!quick)
    tables.push_back(BG_LB_RING_MAX);
  for (uint32_t m : tables)
    for (uint32_t n : {3u, 5u, 10u, 50u})
      for (bool removed : {true, false})
        out.push_back(moved_by(n, m, removed));
  return out;
}

Result<int> pin_cpu(int cpu) {
  if (cpu < 0)
    cpu = sched_getcpu();
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  if (sched_setaffinity(0, sizeof(set), &set) != 0)
    return make_error(errno, "pin to CPU {}", cpu);
  return cpu;
}

double round2(double x) {
  return std::round(x * 100) / 100;
}

void print_case(const CaseResult &r) {
  const auto &c = r.progs[0].s, &f = r.progs[1].s, &t = r.progs[2].s;
  double added = r.contender() - r.reference();
  if (r.spec->kind == Kind::kChain)
    fmt::print(
        "{:<16} {:7.1f} {:7.1f} {:7.1f}   {:7.1f} {:7.1f}   {:>+8.1f} {:>7.2f}x   {:>6.2f}x\n",
        r.spec->name, c.min, c.median, c.max, f.median, t.median, added,
        r.contender() / r.reference(), r.ratio());
  else if (r.spec->kind == Kind::kDispatch)
    fmt::print("{:<16} {:7.1f} {:7.1f} {:7.1f}   {:7.1f} {:7.1f}   {:>+8.1f} {:>7.2f}x   {:>7}\n",
               r.spec->name, c.min, c.median, c.max, f.median, t.median, added,
               r.contender() / r.reference(), "-");
  else
    fmt::print("{:<16} {:7.1f} {:7.1f} {:7.1f}   {:7.1f} {:7.1f}   {:>+8.1f} {:>8}   {:>6.2f}x\n",
               r.spec->name, c.min, c.median, c.max, f.median, t.median, r.lb_ns(), "", r.ratio());
}

json case_json(const CaseResult &r, unsigned runs) {
  json j{{"name", "lb_" + r.spec->name},
         {"ns_per_pkt", round2(r.contender())},
         {"ns_per_pkt_min", round2(r.progs[0].s.min)},
         {"ns_per_pkt_max", round2(r.progs[0].s.max)},
         {"xdp_tx_ns_per_pkt", round2(r.tx())},
         {"xdp_tx_ns_per_pkt_min", round2(r.progs[2].s.min)},
         {"xdp_tx_ns_per_pkt_max", round2(r.progs[2].s.max)}};
  switch (r.spec->kind) {
    case Kind::kDispatch:
      j["tail_call_chain_ns_per_pkt"] = round2(r.reference());
      j["dispatcher_added_ns_per_pkt"] = round2(r.contender() - r.reference());
      j["dispatcher_over_tail_call"] = round2(r.contender() / r.reference());
      break;
    case Kind::kChain:
      j["filter_ns_per_pkt"] = round2(r.reference());
      j["lb_added_ns_per_pkt"] = round2(r.contender() - r.reference());
      j["chain_over_filter"] = round2(r.contender() / r.reference());
      [[fallthrough]];
    default:
      if (r.spec->kind != Kind::kChain) {
        j["floor_ns_per_pkt"] = round2(r.reference());
        j["lb_ns_per_pkt"] = round2(r.lb_ns());
      }
      j["ratio_vs_xdp_tx"] = round2(r.ratio());
      j["aim_ratio"] = kAimRatio;
      j["within_aim"] = r.ratio() <= kAimRatio;
  }
  if (r.spec->kind == Kind::kMinimal)
    j["reference"] = "minimal DNAT, not the balancer";
  j["packets"] = r.packets;
  j["forwarded"] = r.forwarded;
  j["new_flows"] = r.new_flows;
  j["runs"] = runs;
  j["repeat"] = r.progs[0].repeat;
  return j;
}

// The minimal DNAT's one flow (v4_minimal): the IPv4 established case's, to
// the first backend by the backends' link; its slot by the program's hash.
bool fill_minimal(int map) {
  auto f = frame_for({"", "", Kind::kMinimal, false});
  bg_lbb_min_flow v{};
  std::memcpy(&v.saddr, &f[26], 4);
  std::memcpy(&v.daddr, &f[30], 4);
  std::memcpy(&v.sport, &f[34], 2);
  std::memcpy(&v.dport, &f[36], 2);
  if (inet_pton(AF_INET, kBackends4[0], &v.to_addr) != 1)
    return false;
  v.to_port = htons(80);
  v.ifindex = if_nametoindex("lbb0");
  std::memset(v.dmac, 0x02, sizeof(v.dmac));
  std::memset(v.smac, 0x04, sizeof(v.smac));
  uint32_t idx = bg_lbb_min_hash(v.saddr, v.daddr, v.sport, v.dport);
  return v.ifindex != 0 && bpf_map_update_elem(map, &idx, &v, BPF_ANY) == 0;
}

// The cases under test_run, in the bench's namespace with the pinned balancer; 0 or 1.
int run_kernel(const Options &o) {
  std::vector<CaseResult> results;
  if (int n = remove_leftovers(); n > 0)
    log::info("removed {} namespace(s) and pin directories that earlier runs left", n);
  std::string tag = fmt::format("bglbn-{}", ::getpid());
  auto ns = BenchNetns::make(tag);
  if (!ns) {
    log::error("{}", ns.error().what());
    return 1;
  }
  if (auto st = wire(); !st) {
    log::error("{}", st.error().what());
    return 1;
  }
  int ifindex = static_cast<int>(if_nametoindex("lbc0"));
  auto lb = PinnedBalancer::open("/sys/fs/bpf/" + tag);
  if (!lb) {
    log::error("the balancer: {}", lb.error().what());
    return 1;
  }
  auto skel = LbBenchSkel::open("lb_bench");
  if (!skel || !skel->load().ok()) {
    log::error("load the lb bench object: {}",
               skel ? skel->load().error().what() : skel.error().what());
    return 1;
  }
  auto dp = agent::Datapath::from_object((*skel)->obj);
  if (!dp) {
    log::error("{}", dp.error().what());
    return 1;
  }
  const core::Limits unlimited{.rate_pps = BG_RATE_MAX_PPS, .burst = BG_BURST_MAX};
  if (auto st = dp->apply(core::default_policy(unlimited, BG_VERDICT_PASS)); !st) {
    log::error("the filter's policy: {}", st.error().what());
    return 1;
  }
  int jump = bpf_map__fd((*skel)->maps.bg_lbb_jump);
  int next = bpf_map__fd((*skel)->maps.bg_xdp_next);
  uint32_t tx = bpf_program__fd((*skel)->progs.bg_lbb_tx), lbp = lb->prog_fd(), k;
  uint32_t minp = bpf_program__fd((*skel)->progs.bg_lbb_min_dnat);
  if (bpf_map_update_elem(jump, &(k = kSlotTx), &tx, BPF_ANY) ||
      bpf_map_update_elem(jump, &(k = kSlotLb), &lbp, BPF_ANY) ||
      bpf_map_update_elem(jump, &(k = kSlotMin), &minp, BPF_ANY) ||
      !fill_minimal(bpf_map__fd((*skel)->maps.bg_lbb_min_flows)) ||
      bpf_map_update_elem(next, &(k = BG_NEXT_LB), &lbp, BPF_ANY)) {
    log::error("fill the bench's program arrays: {}", std::strerror(errno));
    return 1;
  }
  Env env{&*skel, &*lb, ifindex};
  // The dispatcher case where freplace works; asked for by name, it must run.
  bool asked = std::find(o.only.begin(), o.only.end(), "dispatch_v4") != o.only.end();
  std::unique_ptr<Dispatched> dispatched;
  std::string no_dispatch;
  if (o.only.empty() || asked) {
    if (auto st = bpf::freplace_support(); !st) {
      no_dispatch = st.error().what();
    } else if (auto d = Dispatched::make((*skel)->obj, *lb, ifindex, "lbc0"); !d) {
      no_dispatch = d.error().what();
    } else {
      dispatched = std::move(*d);
      env.dispatcher_fd = dispatched->main_fd();
    }
    if (asked && !dispatched) {
      log::error("dispatch_v4: {}", no_dispatch);
      return 1;
    }
  }
  if (!o.json) {
    utsname u{};
    uname(&u);
    fmt::print(
        "lb_nspp: ns per 96-byte TCP frame through the XDP load balancer under "
        "BPF_PROG_TEST_RUN, kernel {}, pinned to CPU {}\n"
        "{} runs per program and case, interleaved; this thread's CPU time per repeat\n"
        "lb: (balancer - floor) + empty XDP_TX, the balancer's own cost; aim: lb <= {:g}x "
        "the empty XDP_TX\n\n",
        u.release, o.cpu, o.runs, kAimRatio);
    fmt::print("{:<16} {:^23}   {:>7} {:>7}   {:>8} {:>8}   {:>7}\n", "case", "contender ns/pkt",
               "ref", "XDP_TX", "lb ns", "chain/", "lb/");
    fmt::print("{:<16} {:>7} {:>7} {:>7}   {:>7} {:>7}   {:>8} {:>8}   {:>7}\n", "", "min", "med",
               "max", "med", "med", "(+ns)", "filter", "XDP_TX");
  }
  static const auto cases = all_cases();  // results point into it
  for (const auto &c : cases) {
    if (!o.only.empty() && std::find(o.only.begin(), o.only.end(), c.name) == o.only.end())
      continue;
    if (c.kind == Kind::kDispatch && !dispatched) {
      if (o.json)
        fmt::print("{}\n", json{{"name", "lb_" + c.name}, {"skipped", no_dispatch}}.dump());
      else
        fmt::print("{:<16} skipped: {}\n", c.name, no_dispatch);
      continue;
    }
    auto r = run_case(c, env, o);
    if (!r) {
      log::error("{}", r.error().what());
      return 1;
    }
    if (o.json)
      fmt::print("{}\n", case_json(*r, o.runs).dump());
    else
      print_case(*r);
    std::fflush(stdout);
    results.push_back(std::move(*r));
  }
  if (!o.json && !results.empty()) {
    fmt::print(
        "\nref: the floor (restore the frame, tail call, empty XDP_TX); for chain_* the "
        "filter alone; for dispatch_v4 the filter tail-calling the balancer\nchain_*: +ns is "
        "what the balancer adds behind the filter (its tail call included), lb/XDP_TX that "
        "plus the empty XDP_TX, against it;\ndispatch_v4: +ns and x are the dispatcher's "
        "against the tail call\n");
    for (const auto &r : results)
      if (r.spec->kind == Kind::kMinimal)
        fmt::print("  {}: {}; every run redirected (the flow found)\n", r.spec->name,
                   r.spec->about);
      else
        fmt::print("  {}: {}; {} packets timed, {} forwarded, {} new flows\n", r.spec->name,
                   r.spec->about, r.packets, r.forwarded, r.new_flows);
  }
  return 0;
}

int run(Options o) {
  if (o.quick) {
    o.runs = std::min(o.runs, 3u);
    o.target_ms = std::min(o.target_ms, 60u);
  }
  auto cpu = pin_cpu(o.cpu);
  if (!cpu) {
    log::error("{}", cpu.error().what());
    return 1;
  }
  o.cpu = *cpu;
  auto moved = flows_moved(o.quick);
  bool want_kernel = o.only.empty() || std::any_of(o.only.begin(), o.only.end(),
                                                   [](auto &n) { return n != "flows_moved"; });
  if (want_kernel)
    if (int rc = run_kernel(o); rc != 0)
      return rc;
  bool want_moved =
      o.only.empty() || std::find(o.only.begin(), o.only.end(), "flows_moved") != o.only.end();
  if (!want_moved)
    return 0;
  if (!o.json)
    fmt::print(
        "\nflows moved by one backend change (Maglev table of the control plane; equal weights):\n"
        "{:>6} {:>4} {:<9} {:>8} {:>8} {:>8}   {}\n",
        "table", "N", "change", "moved", "ideal", "moved/", "moved between backends that stayed");
  for (const auto &m : moved) {
    if (o.json)
      fmt::print("{}\n",
                 json{{"name", fmt::format("lb_flows_moved_n{}_{}_{}", m.n,
                                           m.change == "add 1" ? "add" : "remove", m.table)},
                      {"backends", m.n},
                      {"table_size", m.table},
                      {"change", m.change},
                      {"moved", std::round(m.moved * 1e4) / 1e4},
                      {"ideal", std::round(m.ideal * 1e4) / 1e4},
                      {"ratio", round2(m.moved / m.ideal)},
                      {"moved_between_others", std::round(m.of_others * 1e4) / 1e4}}
                     .dump());
    else
      fmt::print("{:>6} {:>4} {:<9} {:>7.2f}% {:>7.2f}% {:>7.2f}x   {:.2f}%\n", m.table, m.n,
                 m.change, 100 * m.moved, 100 * m.ideal, m.moved / m.ideal, 100 * m.of_others);
  }
  return 0;
}

}  // namespace
}  // namespace bpfgate::bench

int main(int argc, char **argv) {
  using namespace bpfgate;
  bench::Options o;
  std::vector<std::string> names{"flows_moved"};
  for (const auto &c : bench::all_cases())
    names.push_back(c.name);
  CLI::App app{
      "lb_nspp: ns per packet of bpfgate's XDP load balancer under BPF_PROG_TEST_RUN against an "
      "empty XDP_TX program in the same run, and flows moved by a backend change against 1/N",
      "lb_nspp"};
  app.add_option("--runs", o.runs, "timed runs per program and case")
      ->check(CLI::Range(1u, 1000u))
      ->capture_default_str();
  app.add_flag("-j,--json", o.json, "print one JSON object per case and line");
  app.add_flag("--quick", o.quick, "at most 3 runs of about 60 ms per program");
  app.add_option("--repeat", o.repeat, "repeats per run (default: calibrated to --target-ms)")
      ->check(CLI::Range(1000u, 100'000'000u));
  app.add_option("--target-ms", o.target_ms, "time one run should take")
      ->check(CLI::Range(10u, 10000u))
      ->capture_default_str();
  app.add_option("--cpu", o.cpu, "CPU to run on (default: the one it starts on)")
      ->check(CLI::Range(0, CPU_SETSIZE - 1));
  app.add_option("--case", o.only, "run only these cases (repeatable)")
      ->check(CLI::IsMember(names));
  app.add_flag("-v,--verbose", o.verbose, "print debug messages, libbpf's included");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError &e) {
    int rc = app.exit(e);
    return rc == 0 ? 0 : 2;
  }
  log::set_level(o.verbose ? log::Level::kDebug : log::Level::kInfo);
  bpf::install_libbpf_logger();
  if (geteuid() != 0) {
    log::error("run as root: it loads BPF programs and makes a network namespace");
    return 1;
  }
  return bench::run(o);
}
