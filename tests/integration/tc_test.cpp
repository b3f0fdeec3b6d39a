// The tc datapath attached for real (`bpfgate tc attach`) to the gateway's
// veth, with real traffic: iperf3 against a policed class, a bulk TCP flow
// beside pings with and without a priority, and a mirror interface that
// receives a sample of a class's packets.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "bpfgate/abi/tc.h"
#include "support/topology.hpp"

namespace bpfgate::test {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

// The tc datapath on the gateway's interface, detached (programs, qdiscs,
// pins) when the owner goes, whatever happened.
class TcOn {
 public:
  TcOn(const GatewayPair &t, const std::string &tc_yaml) : t_(t) {
    file_ = fmt::format("/tmp/{}-tc.yaml", unique_prefix() + t.gw_if());
    std::ofstream(file_) << fmt::format("interfaces: [{{name: {}}}]\ntc:\n  interfaces: [{}]\n{}",
                                        t.gw_if(), t.gw_if(), tc_yaml);
    auto r = t_.bpfgate("tc attach " + t.gw_if() + " --config " + file_);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    attached_ = r.exit_code == 0;
  }
  ~TcOn() {
    if (attached_) {
      auto r = t_.bpfgate("tc detach " + t_.gw_if());
      EXPECT_EQ(r.exit_code, 0) << r.err;
    }
    fs::remove(file_);
    std::error_code ec;
    fs::remove_all("/sys/fs/bpf/bpfgate-tc/" + t_.gw_if(), ec);
  }
  bool attached() const { return attached_; }
  json classes() const {
    auto r = t_.bpfgate("-j class list " + t_.gw_if());
    EXPECT_EQ(r.exit_code, 0) << r.err;
    auto j = json::parse(r.out, nullptr, false);
    EXPECT_FALSE(j.is_discarded()) << r.out;
    return j;
  }

 private:
  const GatewayPair &t_;
  std::string file_;
  bool attached_ = false;
};

// One class's entry of `class list -j`.
json class_named(const json &list, const std::string &name) {
  const json &arr = list.is_array() ? list : list.value("classes", json::array());
  for (const auto &c : arr)
    if (c["name"].is_string() && c["name"] == name)
      return c;
  ADD_FAILURE() << "no class " << name << " in " << list.dump();
  return json::object();
}

// An iperf3 server in the peer namespace, one test at a time; killed with its owner.
Process iperf3_server(const GatewayPair &t, int port) {
  auto p = Process::spawn(t.peer().exec() + fmt::format("iperf3 -s -1 -p {} -B {} >/dev/null 2>&1",
                                                        port, GatewayPair::kClientAddr));
  for (int i = 0; i < 50; i++) {
    if (run(t.peer().exec() + fmt::format("ss -Hltn 'sport = :{}' | grep -q LISTEN", port))
            .exit_code == 0)
      break;
    std::this_thread::sleep_for(50ms);
  }
  return p;
}

// iperf3 from the gateway to the peer; its JSON report.
json iperf3_client(const GatewayPair &t, int port, const std::string &args) {
  auto r = run(t.gw().exec() + fmt::format("timeout 30 iperf3 -c {} -p {} -J {}",
                                           GatewayPair::kClientAddr, port, args));
  auto j = json::parse(r.out, nullptr, false);
  EXPECT_FALSE(j.is_discarded()) << r.out << r.err;
  EXPECT_FALSE(j.is_discarded() || j.contains("error")) << r.out;
  return j.is_discarded() ? json::object() : j;
}

// Round-trip times (ms) of `count` pings from the gateway to the peer.
std::vector<double> ping_rtts(const GatewayPair &t, int count, const std::string &interval) {
  auto r = run(t.gw().exec() + fmt::format("ping -n -c {} -i {} -W 1 {}", count, interval,
                                           GatewayPair::kClientAddr));
  std::vector<double> rtts;
  std::regex re("time=([0-9.]+) ms");
  for (std::sregex_iterator it(r.out.begin(), r.out.end(), re), end; it != end; ++it)
    rtts.push_back(std::stod((*it)[1]));
  EXPECT_GE(rtts.size(), static_cast<size_t>(count * 9 / 10)) << r.out << r.err;
  return rtts;
}

double median(std::vector<double> v) {
  if (v.empty())
    return 0;
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// A class limited to N bit/s, fed three times N: the receiver gets N (of
// Ethernet frames; less the headers in iperf3's goodput) within 10 %. A small
// burst, so that the first bucketful does not count in 3 s of traffic.
TEST(TcTraffic, APolicedClassMeasuresWithinTenPercentOfItsRate) {
  GatewayPair t;
  constexpr double kRate = 20e6;
  TcOn tc(t,
          "  classes:\n"
          "    - {name: capped, direction: egress, match: {protocol: udp, dport: 5201}, "
          "rate: 20mbit, burst: 32kb}\n");
  ASSERT_TRUE(tc.attached());
  auto srv = iperf3_server(t, 5201);
  // 1400-byte datagrams: 1442-byte frames, so goodput is 97.1 % of the frame rate.
  auto j = iperf3_client(t, 5201, "-u -b 60M -l 1400 -t 3");
  const json &sum = j["end"]["sum"];
  double sent_bps = sum.value("bits_per_second", 0.0);
  double lost = sum.value("lost_percent", 100.0) / 100.0;
  double got_bps = sent_bps * (1 - lost) * 1442.0 / 1400.0;
  RecordProperty("received_mbit", fmt::format("{:.2f}", got_bps / 1e6));
  EXPECT_GT(sent_bps, 2 * kRate) << "the sender did not offer more than the rate";
  EXPECT_NEAR(got_bps, kRate, 0.1 * kRate) << "received " << got_bps / 1e6 << " Mbit/s";
  auto c = class_named(tc.classes(), "capped");
  EXPECT_GT(c.value("drops", 0), 0) << c.dump();
  EXPECT_GT(c.value("packets", 0), 0) << c.dump();
}

// TCP through the same policer: the default burst lets TCP keep most of the rate.
TEST(TcTraffic, TcpThroughAPolicedClassGetsCloseToItsRate) {
  GatewayPair t;
  constexpr double kRate = 20e6;
  TcOn tc(t,
          "  classes:\n"
          "    - {name: capped, direction: egress, match: {protocol: tcp, dport: 5202}, "
          "rate: 20mbit}\n");
  ASSERT_TRUE(tc.attached());
  auto srv = iperf3_server(t, 5202);
  auto j = iperf3_client(t, 5202, "-t 4");
  double got_bps = j["end"]["sum_received"].value("bits_per_second", 0.0);
  RecordProperty("received_mbit", fmt::format("{:.2f}", got_bps / 1e6));
  EXPECT_LE(got_bps, 1.1 * kRate) << got_bps / 1e6 << " Mbit/s";
  EXPECT_GE(got_bps, 0.8 * kRate) << got_bps / 1e6 << " Mbit/s";
}

// A bulk TCP flow fills a 40 Mbit/s HTB; pings classified with priority 0 keep
// their idle latency (within 2x, and one bulk frame's time), pings left in
// the bulk's class wait behind it.
TEST(TcTraffic, APrioritisedFlowKeepsItsLatencyBesideBulk) {
  GatewayPair t;
  auto under_load = [&](const std::string &classes, int port) {
    TcOn tc(t, "  htb: {rate: 40mbit, default_priority: 7}\n  classes:\n" + classes);
    EXPECT_TRUE(tc.attached());
    if (!tc.attached())
      return std::pair{0.0, 0.0};
    double idle = median(ping_rtts(t, 20, "0.02"));
    auto srv = iperf3_server(t, port);
    std::vector<double> loaded;
    std::thread pinger([&] {
      std::this_thread::sleep_for(1s);  // TCP has filled the queue by then
      loaded = ping_rtts(t, 40, "0.05");
    });
    auto j = iperf3_client(t, port, "-t 4");
    pinger.join();
    double bulk_bps = j["end"]["sum_received"].value("bits_per_second", 0.0);
    EXPECT_GT(bulk_bps, 20e6) << "the bulk flow did not fill the link";
    EXPECT_LT(bulk_bps, 44e6) << "the HTB did not hold the bulk flow to its rate";
    return std::pair{idle, median(loaded)};
  };
  auto [idle_p, loaded_p] = under_load(
      "    - {name: api, direction: egress, match: {protocol: icmp}, priority: 0}\n"
      "    - {name: bulk, direction: egress, match: {protocol: tcp}, priority: 7}\n",
      5203);
  auto [idle_n, loaded_n] = under_load(
      "    - {name: bulk, direction: egress, match: {protocol: tcp}, priority: 7}\n", 5204);
  RecordProperty("idle_ms", fmt::format("{:.3f}", idle_p));
  RecordProperty("prioritised_ms", fmt::format("{:.3f}", loaded_p));
  RecordProperty("not_prioritised_ms", fmt::format("{:.3f}", loaded_n));
  // Within 2x its idle time plus one bulk frame's time at the rate (1,500
  // bytes at 40 Mbit/s, 0.3 ms: the frame already on the wire): idle is
  // ~30 us here, and the busy CPUs alone moved the median by a few us over 2x
  // in one CI run.
  EXPECT_LE(loaded_p, 2 * idle_p + 0.3)
      << "idle " << idle_p << " ms, under load " << loaded_p << " ms";
  EXPECT_GT(loaded_n, 4 * loaded_p) << "without the priority: " << loaded_n << " ms vs " << loaded_p
                                    << " ms with it (idle " << idle_n << " ms)";
}

// A class mirrored 1 in 4 to a third interface: its peer receives a quarter
// of the class's packets, and nothing of the others.
TEST(TcTraffic, AMirrorInterfaceReceivesTheSampledCopies) {
  GatewayPair t;
  std::string mon = t.gw_if() + "m", mon_peer = t.gw_if() + "n";
  make_veth(t.gw(), mon, "", t.peer(), mon_peer, "");
  auto rx_of = [&] {
    auto r = run_ok(t.peer().exec() + "ip -j -s link show dev " + mon_peer);
    auto j = json::parse(r.out, nullptr, false);
    return j.is_discarded() ? 0 : j[0]["stats64"]["rx"]["packets"].get<uint64_t>();
  };
  TcOn tc(t, fmt::format("  classes:\n"
                         "    - {{name: copied, direction: egress, match: {{protocol: udp, dport: "
                         "9}}, mirror: {{interface: {}, sample: 4}}}}\n"
                         "    - {{name: other, match: {{protocol: udp}}}}\n",
                         mon));
  ASSERT_TRUE(tc.attached());
  uint64_t before = rx_of();
  constexpr int kSent = 400;
  // Real datagrams from a socket in the gateway namespace: to port 9 (copied)
  // and to port 10 (not copied).
  for (int port : {9, 10}) {
    t.gw().within([&] {
      int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
      ASSERT_GE(fd, 0);
      sockaddr_in a{};
      a.sin_family = AF_INET;
      a.sin_port = htons(static_cast<uint16_t>(port));
      inet_pton(AF_INET, GatewayPair::kClientAddr, &a.sin_addr);
      char payload[100] = {};
      for (int i = 0; i < kSent; i++) {
        ASSERT_EQ(
            sendto(fd, payload, sizeof(payload), 0, reinterpret_cast<sockaddr *>(&a), sizeof(a)),
            static_cast<ssize_t>(sizeof(payload)));
        if (i % 50 == 0)
          std::this_thread::sleep_for(1ms);
      }
      close(fd);
    });
  }
  auto list = tc.classes();
  uint64_t mirrored = class_named(list, "copied").value("mirrored", 0);
  uint64_t got = 0;
  for (int i = 0; i < 50 && (got = rx_of() - before) < mirrored; i++)
    std::this_thread::sleep_for(20ms);
  EXPECT_GE(class_named(list, "copied").value("packets", 0), kSent);
  EXPECT_NEAR(static_cast<double>(mirrored), kSent / 4.0, 3) << list.dump();
  EXPECT_EQ(class_named(list, "other").value("mirrored", 0), 0);
  EXPECT_EQ(got, mirrored) << "the copies arrive on the mirror's peer";
}

// `tc apply` of a config with HTB to an interface that has our HTB already:
// the same config again changes nothing (iproute2 once failed it: HTB has no
// `qdisc change`), and a new default priority re-creates the root with it.
TEST(TcApply, AnHtbConfigAppliesAgainAndChangesItsDefault) {
  GatewayPair t;
  auto file = fmt::format("/tmp/{}-htb.yaml", unique_prefix() + t.gw_if());
  auto write = [&](int prio) {
    std::ofstream(file) << fmt::format(
        "tc:\n  interfaces: [{}]\n  htb: {{rate: 100mbit, default_priority: {}}}\n  classes:\n"
        "    - {{name: bulk, direction: egress, match: {{protocol: udp}}, priority: 6}}\n",
        t.gw_if(), prio);
  };
  auto root_default = [&] {
    auto r = run_ok(t.gw().exec() + "tc -j qdisc show dev " + t.gw_if() + " root");
    auto j = json::parse(r.out, nullptr, false);
    return j.is_array() && !j.empty() ? j[0]["options"].value("default", std::string()) : "";
  };
  write(4);
  auto r = t.bpfgate("tc attach " + t.gw_if() + " --config " + file);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(root_default(), "0x14");
  r = t.bpfgate("tc apply " + t.gw_if() + " --config " + file);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(root_default(), "0x14");
  write(2);
  r = t.bpfgate("tc apply " + t.gw_if() + " --config " + file);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(root_default(), "0x12");
  EXPECT_EQ(t.bpfgate("tc detach " + t.gw_if()).exit_code, 0);
  EXPECT_FALSE(contains(run_ok(t.gw().exec() + "tc qdisc show dev " + t.gw_if()).out, "htb"));
  fs::remove(file);
}

// The HTB classes of the gateway's interface as the kernel reports them, by
// handle. iproute2 6.1 prints no JSON for classes (`tc -j class show` is
// text), so the text of `tc -d class show` is read; rates in bit/s.
struct ShownClass {
  std::string parent;  // "" for a root class
  uint64_t rate = 0, ceil = 0;
  int prio = -1;  // leaves only
  uint64_t quantum = 0;
};
uint64_t shown_rate(const std::string &num, const std::string &unit) {
  uint64_t v = std::stoull(num);
  for (size_t i = unit.empty() ? 0 : std::string("KMGT").find(unit) + 1; i > 0; i--)
    v *= 1000;
  return v;
}
std::map<std::string, ShownClass> htb_classes_shown(const GatewayPair &t) {
  auto out = run_ok(t.gw().exec() + "tc -d class show dev " + t.gw_if()).out;
  std::regex re(R"(class htb (\S+) (?:parent (\S+)|root) (?:prio (\d+) )?(?:quantum (\d+) )?)"
                R"(rate (\d+)([KMGT]?)bit ceil (\d+)([KMGT]?)bit)");
  std::map<std::string, ShownClass> m;
  for (std::sregex_iterator it(out.begin(), out.end(), re), end; it != end; ++it) {
    const auto &x = *it;
    ShownClass c{.parent = x[2].str(),
                 .rate = shown_rate(x[5], x[6]),
                 .ceil = shown_rate(x[7], x[8]),
                 .prio = x[3].matched ? std::stoi(x[3]) : -1,
                 .quantum = x[4].matched ? std::stoull(x[4]) : 0};
    m[x[1].str()] = c;
  }
  return m;
}

// Each of the config's classes is in the kernel with its rate, ceil, prio
// and quantum: the parent at the link's rate, eight leaves at an eighth of it
// that may borrow all of it; `tc apply` of other rates changes them in place.
TEST(TcApply, TheKernelShowsTheHtbClassesOfTheConfig) {
  GatewayPair t;
  auto expect_classes = [&](uint64_t rate) {
    auto shown = htb_classes_shown(t);
    ASSERT_EQ(shown.size(), 1u + BG_TC_PRIORITIES)
        << run(t.gw().exec() + "tc -d class show dev " + t.gw_if()).out;
    EXPECT_EQ(shown["6267:1"].parent, "");
    EXPECT_EQ(shown["6267:1"].rate, rate);
    EXPECT_EQ(shown["6267:1"].ceil, rate);
    for (int p = 0; p < BG_TC_PRIORITIES; p++) {
      const auto &c = shown[fmt::format("6267:{:x}", BG_TC_HTB_MINOR_BASE + p)];
      EXPECT_EQ(c.parent, "6267:1") << "priority " << p;
      EXPECT_EQ(c.rate, rate / BG_TC_PRIORITIES) << "priority " << p;
      EXPECT_EQ(c.ceil, rate) << "priority " << p;
      EXPECT_EQ(c.prio, p);
      EXPECT_EQ(c.quantum, 60000u) << "priority " << p;
    }
  };
  TcOn tc(t,
          "  htb: {rate: 80mbit, default_priority: 4}\n  classes:\n"
          "    - {name: bulk, direction: egress, match: {protocol: udp}, priority: 6}\n");
  ASSERT_TRUE(tc.attached());
  expect_classes(80'000'000);
  auto root = run_ok(t.gw().exec() + "tc -j qdisc show dev " + t.gw_if() + " root").out;
  EXPECT_TRUE(contains(root, R"("kind":"htb","handle":"6267:")")) << root;
  EXPECT_TRUE(contains(root, R"("default":"0x14")")) << root;

  // Past 2^32 bytes/s the kernel takes the rate as a 64-bit attribute.
  for (uint64_t gbit : {1, 100}) {
    auto file = fmt::format("/tmp/{}-rates.yaml", unique_prefix() + t.gw_if());
    std::ofstream(file) << fmt::format(
        "tc:\n  interfaces: [{}]\n  htb: {{rate: {}gbit, default_priority: 4}}\n  classes:\n"
        "    - {{name: bulk, direction: egress, match: {{protocol: udp}}, priority: 6}}\n",
        t.gw_if(), gbit);
    auto r = t.bpfgate("tc apply " + t.gw_if() + " --config " + file);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    expect_classes(gbit * 1'000'000'000);
    fs::remove(file);
  }
}

// A root qdisc bpfgate did not make is refused, named in the message, and
// left as it was; nothing of bpfgate's stays on the interface.
TEST(TcApply, AForeignRootQdiscIsRefusedAndLeftAlone) {
  GatewayPair t;
  run_ok(t.gw().exec() + "tc qdisc add dev " + t.gw_if() + " root handle 1: htb default 10");
  auto file = fmt::format("/tmp/{}-foreign.yaml", unique_prefix() + t.gw_if());
  std::ofstream(file) << fmt::format(
      "tc:\n  interfaces: [{}]\n  htb: {{rate: 100mbit, default_priority: 4}}\n  classes:\n"
      "    - {{name: bulk, direction: egress, match: {{protocol: udp}}, priority: 6}}\n",
      t.gw_if());
  auto r = t.bpfgate("tc attach " + t.gw_if() + " --config " + file);
  EXPECT_EQ(r.exit_code, 1) << r.out;
  EXPECT_TRUE(contains(r.err, t.gw_if() +
                                  " already has a root qdisc (htb 1:) that bpfgate did "
                                  "not set up; remove it (`tc qdisc del dev " +
                                  t.gw_if() + " root`) or leave tc.htb out of the config"))
      << r.err;
  auto qdiscs = run_ok(t.gw().exec() + "tc qdisc show dev " + t.gw_if()).out;
  EXPECT_TRUE(contains(qdiscs, "qdisc htb 1: root")) << qdiscs;
  EXPECT_FALSE(contains(qdiscs, "clsact")) << qdiscs;
  EXPECT_FALSE(fs::exists("/sys/fs/bpf/bpfgate-tc/" + t.gw_if()));
  fs::remove(file);
}

// `tc detach` removes the clsact qdisc bpfgate made unless someone else's
// filter is on it: the filter and its qdisc then stay.
TEST(TcApply, DetachLeavesClsactThatHoldsAnotherFilter) {
  GatewayPair t;
  std::string yaml = "  classes:\n    - {name: bulk, match: {protocol: udp}}\n";
  auto qdiscs = [&] { return run_ok(t.gw().exec() + "tc qdisc show dev " + t.gw_if()).out; };
  { TcOn tc(t, yaml); }
  EXPECT_FALSE(contains(qdiscs(), "clsact")) << qdiscs();
  {
    TcOn tc(t, yaml);
    run_ok(t.gw().exec() + "tc filter add dev " + t.gw_if() +
           " ingress protocol all prio 1 u32 match u32 0 0");
  }
  EXPECT_TRUE(contains(qdiscs(), "clsact")) << qdiscs();
  auto filters = run_ok(t.gw().exec() + "tc filter show dev " + t.gw_if() + " ingress").out;
  EXPECT_TRUE(contains(filters, "u32")) << filters;
  EXPECT_FALSE(
      contains(run_ok(t.gw().exec() + "tc filter show dev " + t.gw_if() + " egress").out, "bpf"));
}

}  // namespace
}  // namespace bpfgate::test
