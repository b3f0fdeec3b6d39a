// Observability end to end, over veth in namespaces made here (bgobs*):
// nginx proxying to a backend that sleeps a known time, driven by curl and
// wrk, with the agent timing requests from tc and serving /metrics; a real
// scrape parsed and checked against what the clients saw and the traffic
// sent; the event stream; top off and on a terminal; and what the agent
// leaves behind (nothing, unless told to keep the datapath).
#include <signal.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cstring>

#include <cctype>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "features/xdp/filter.hpp"
#include "features/observe/observer.hpp"
#include "support/agent.hpp"
#include "support/prometheus_parse.hpp"
#include "support/system.hpp"

namespace bpfgate::test {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;

constexpr const char *kGw = "198.18.0.1";
constexpr const char *kClient = "198.18.0.2";
constexpr int kBackendPort = 8081;

std::string backend_bin() {
  return std::filesystem::path(bpfgate_bin()).parent_path() / "bpfgate-slow-backend";
}

std::string name(const char *role) {
  return fmt::format("bgobs{}{}", getpid() % 100000, role);
}

class Observe : public ::testing::Test {
 protected:
  Observe() : gw_if_(name("g")), cl_if_(name("c")), gw_(gw_if_ + "ns"), cl_(cl_if_ + "ns") {}

  void SetUp() override {
    make_veth(gw_, gw_if_, std::string(kGw) + "/24", cl_, cl_if_, std::string(kClient) + "/24");
    run_ok("mountpoint -q /sys/fs/bpf || mount -t bpf bpf /sys/fs/bpf");
    std::filesystem::permissions(dir_.path(), std::filesystem::perms::all);
    bpffs_ = "/sys/fs/bpf/" + name("fs");
    std::filesystem::create_directories(bpffs_);
  }

  void TearDown() override {
    agent_.stop();  // a clean stop removes the probes and their pins
    run("rm -rf " + bpffs_);
    nginx_.reset();
    backend_.reset();
    run(gw_.exec() + bg() + "detach " + gw_if_ + " 2>/dev/null");
  }

  std::string sock() const { return agent_.socket(); }
  // bpfgate with this test's own bpffs directory: pins (the filter's and the
  // probes' /bpfgate-observe) are never shared with another run of the tests.
  std::string bg() const { return bpfgate_bin() + " --bpffs " + bpffs_ + " "; }
  std::string config() const { return agent_.config(); }

  void write_config(const std::string &body) {
    std::ofstream(config()) << fmt::format(
        "interfaces: [{{name: {}, mode: native}}]\nagent: {{control_socket: {}, state_dir: {}}}\n"
        "sweep: {{interval: 100ms}}\nmetrics: {{listen: 127.0.0.1:9477}}\n{}{}",
        gw_if_, sock(), dir_.string(),
        body.find("limits:") == std::string::npos ? "limits: {rate: 1000000}\n" : "", body);
  }

  void start_agent(const std::string &flags = "") {
    if (!agent_.start(gw_.exec() + bpfgate_bin() + " --bpffs " + bpffs_, flags))
      FAIL() << "the agent did not come up: " << agent_log();
  }

  std::string agent_log() const { return agent_.log(); }

  // nginx on kGw:80 proxying to the sleeping backend on the gateway's loopback.
  void start_servers() {
    backend_.emplace(Process::spawn("exec " + gw_.exec() + backend_bin() + " 127.0.0.1 " +
                                    std::to_string(kBackendPort)));
    std::string d = dir_.string();
    std::ofstream(dir_.path() / "nginx.conf") << fmt::format(R"(daemon off;
worker_processes 1;
pid {0}/nginx.pid;
error_log {0}/nginx-error.log warn;
events {{ worker_connections 512; }}
http {{
  access_log off;
  client_body_temp_path {0}/body;
  proxy_temp_path {0}/proxy;
  fastcgi_temp_path {0}/fastcgi;
  uwsgi_temp_path {0}/uwsgi;
  scgi_temp_path {0}/scgi;
  keepalive_requests 1000000;
  upstream backend {{ server 127.0.0.1:{1}; keepalive 16; }}
  server {{
    listen {2}:80;
    location / {{
      proxy_pass http://backend;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }}
  }}
}}
)",
                                                             d, kBackendPort, kGw);
    nginx_.emplace(Process::spawn("exec " + gw_.exec() + "nginx -e " + d + "/nginx-error.log -p " +
                                  d + " -c " + d + "/nginx.conf"));
    for (int i = 0; i < 100; i++) {
      if (run(cl_.exec() + "curl -sf --max-time 1 -o /dev/null http://" + std::string(kGw) +
              "/up?ms=0")
              .exit_code == 0)
        return;
      std::this_thread::sleep_for(50ms);
    }
    FAIL() << "nginx or the backend did not come up";
  }

  prom::Parsed scrape() {
    auto r = run_ok(gw_.exec() + "curl -sf --max-time 5 http://127.0.0.1:9477/metrics");
    auto p = prom::parse(r.out);
    EXPECT_TRUE(p.ok()) << (p.ok() ? "" : p.error().what());
    return p.ok() ? *p : prom::Parsed{};
  }

  std::string gw_if_, cl_if_;
  Netns gw_, cl_;
  ScratchDir dir_{name("dir")};
  std::string bpffs_;
  AgentProcess agent_{dir_.path()};
  std::optional<Process> nginx_, backend_;
};

prom::Labels web() {
  return {{"service", "web"}, {"port", "80"}};
}

double mean_latency(const prom::Parsed &p, const prom::Parsed &before) {
  const char *n = "bpfgate_service_request_duration_seconds";
  double sum = prom::value_of(p, std::string(n) + "_sum", web()) -
               prom::value_of(before, std::string(n) + "_sum", web());
  double count = prom::value_of(p, std::string(n) + "_count", web()) -
                 prom::value_of(before, std::string(n) + "_count", web());
  return count > 0 ? sum / count : 0;
}

TEST_F(Observe, RequestLatencyAndStatusClassesMatchTheClients) {
  write_config("services: [{name: web, port: 80}]\n");
  start_servers();
  start_agent();
  auto before = scrape();
  // curl, on one keep-alive connection: 12 requests of 40 ms, 6 answered 200,
  // 4 answered 404, 2 answered 503; curl measures each from sending the
  // request to the first byte of the answer.
  std::string urls;
  std::vector<int> codes = {200, 200, 404, 200, 503, 200, 404, 200, 404, 503, 200, 404};
  for (int c : codes)
    urls += fmt::format(" -o /dev/null 'http://{}/r?ms=40&status={}'", kGw, c);
  auto r = run_ok(cl_.exec() +
                  "curl -s -o /dev/null -w '%{http_code} %{time_pretransfer} "
                  "%{time_starttransfer}\\n'" +
                  urls);
  std::istringstream in(r.out);
  double client_sum = 0;
  int n = 0, c2 = 0, c4 = 0, c5 = 0;
  for (int code; in >> code;) {
    double pre, first;
    in >> pre >> first;
    client_sum += first - pre;
    n++;
    (code == 200 ? c2 : code == 404 ? c4 : c5)++;
  }
  ASSERT_EQ(n, 12) << r.out;
  auto after = scrape();
  double client_mean = client_sum / n, kernel_mean = mean_latency(after, before);
  EXPECT_NEAR(kernel_mean, client_mean, 0.1 * client_mean)
      << "client " << client_mean << " s, bpfgate " << kernel_mean << " s";
  EXPECT_GE(kernel_mean, 0.040);
  fmt::print("curl: client mean {:.2f} ms, bpfgate mean {:.2f} ms ({:+.1f}%)\n", client_mean * 1e3,
             kernel_mean * 1e3, (kernel_mean / client_mean - 1) * 100);
  auto delta = [&](const char *metric, prom::Labels l) {
    return prom::value_of(after, metric, l) - prom::value_of(before, metric, l);
  };
  EXPECT_EQ(delta("bpfgate_service_requests_total", web()), 12);
  EXPECT_EQ(delta("bpfgate_service_responses_total", web()), 12);
  auto cls = [&](const char *c) {
    auto l = web();
    l.emplace_back("class", c);
    return delta("bpfgate_service_http_responses_total", l);
  };
  EXPECT_EQ(cls("2xx"), c2);
  EXPECT_EQ(cls("4xx"), c4);
  EXPECT_EQ(cls("5xx"), c5);
  EXPECT_EQ(cls("other") + cls("1xx") + cls("3xx"), 0);
  EXPECT_EQ(delta("bpfgate_service_tcp_handshake_duration_seconds_count", web()), 1)
      << "curl used one connection";
  EXPECT_GE(delta("bpfgate_service_tcp_connections_total", web()), 1);
  // The 40 ms bucket: [32.768, 65.536) ms, so le=0.065536 holds all twelve.
  auto le = [&](const char *b) {
    auto l = web();
    l.emplace_back("le", b);
    return delta("bpfgate_service_request_duration_seconds_bucket", l);
  };
  EXPECT_EQ(le("0.065536") - le("0.032768"), 12);

  // wrk: 4 connections for 3 s against a 25 ms handler; its mean latency
  // (send to complete response, a small response) against bpfgate's.
  before = scrape();
  auto w =
      run_ok(cl_.exec() + fmt::format("wrk -t1 -c4 -d3s --timeout 2s 'http://{}/w?ms=25'", kGw));
  after = scrape();
  double wrk_mean = 0;
  {
    std::istringstream wi(w.out);
    for (std::string word; wi >> word;)
      if (word == "Latency") {
        std::string v;
        wi >> v;
        double x = std::stod(v);
        wrk_mean = v.find("us") != std::string::npos   ? x / 1e6
                   : v.find("ms") != std::string::npos ? x / 1e3
                                                       : x;
        break;
      }
  }
  ASSERT_GT(wrk_mean, 0) << w.out;
  kernel_mean = mean_latency(after, before);
  fmt::print("wrk: client mean {:.2f} ms, bpfgate mean {:.2f} ms ({:+.1f}%)\n", wrk_mean * 1e3,
             kernel_mean * 1e3, (kernel_mean / wrk_mean - 1) * 100);
  EXPECT_NEAR(kernel_mean, wrk_mean, 0.1 * wrk_mean)
      << "wrk " << wrk_mean << " s, bpfgate " << kernel_mean << " s\n"
      << w.out;
  double reqs = delta("bpfgate_service_requests_total", web());
  EXPECT_GT(reqs, 300) << w.out;
  EXPECT_LE(delta("bpfgate_service_responses_total", web()), reqs);
  EXPECT_GE(delta("bpfgate_service_responses_total", web()), reqs - 4) << "at most one in flight "
                                                                          "per connection";
}

TEST_F(Observe, ScrapeMatchesTheTrafficSent) {
  // The tc datapath too: udp/123 policed on ingress (8 kbit/s, one frame's
  // burst: most of a burst of frames is dropped), the gateway's echo replies
  // to the client marked over 8 kbit/s on egress and every one mirrored.
  std::string mon = name("m");
  make_veth(gw_, mon, "", cl_, name("n"), "");
  write_config(fmt::format(
      "deny: [198.18.0.66]\nrules: [{{match: udp/53, action: drop}}, {{match: udp/123, action: "
      "pass}}]\nservices: [{{name: web, port: 80}}, {{name: closed, port: 81, protocol: tcp}}]\n"
      "tc:\n  interfaces: [{}]\n  classes:\n"
      "    - {{name: ntp, direction: ingress, match: {{protocol: udp, dport: 123}}, rate: 8kbit, "
      "burst: 1514}}\n"
      "    - {{name: pong, direction: egress, match: {{protocol: icmp, dst: {}/32}}, rate: 8kbit, "
      "burst: 1514, exceed: mark, mirror: {{interface: {}}}}}\n",
      gw_if_, kClient, mon));
  start_agent();
  std::string mac = run_ok(gw_.exec() + "ip -br link show dev " + gw_if_ + " | awk '{print $3}'")
                        .out.substr(0, 17);
  auto gen = [&](const std::string &src, int n, const std::string &extra) {
    run_ok(cl_.exec() + fmt::format("{} -i {} --dst-mac {} --src {} --dst {} -n {} --rate 20000 "
                                    "--duration 10 -j {}",
                                    gen_bin(), cl_if_, mac, src, kGw, n, extra));
  };
  gen("198.18.0.66", 500, "");
  gen("198.18.0.70", 300, "--dport 53");
  gen("198.18.0.71", 200, "--dport 123");
  // A SYN to a port with no listener: the gateway answers RST.
  run(cl_.exec() + fmt::format("curl -s --max-time 2 http://{}:81/", kGw));
  ASSERT_EQ(run(gw_.exec() + bg() + "block 198.18.9.0/24 --iface " + gw_if_).exit_code, 0);
  ASSERT_EQ(run(bpfgate_bin() + " reload --socket " + sock()).exit_code, 0);
  // 40 echo replies of 1042-byte frames: a second of 8 kbit/s each.
  run_ok(cl_.exec() + fmt::format("ping -n -q -c 40 -i 0.01 -s 1000 -W 1 {}", kGw));
  std::this_thread::sleep_for(300ms);  // a sweep or two
  auto p = scrape();
  auto st = json::parse(run_ok(gw_.exec() + bg() + "-j status " + gw_if_).out);
  auto counters = st["interfaces"][0]["counters"];
  prom::Labels iface = {{"interface", gw_if_}};
  auto with = [](prom::Labels l, prom::Labels more) {
    l.insert(l.end(), more.begin(), more.end());
    return l;
  };
  EXPECT_EQ(prom::value_of(p, "bpfgate_packets_total",
                           with(iface, {{"verdict", "drop"}, {"reason", "deny"}})),
            500);
  EXPECT_EQ(prom::value_of(p, "bpfgate_bytes_total",
                           with(iface, {{"verdict", "drop"}, {"reason", "deny"}})),
            counters["drop"]["deny"]["bytes"].get<double>());
  EXPECT_EQ(prom::value_of(p, "bpfgate_packets_total",
                           with(iface, {{"verdict", "drop"}, {"reason", "rule"}})),
            300);
  EXPECT_EQ(prom::value_of(p, "bpfgate_packets_total",
                           with(iface, {{"verdict", "pass"}, {"reason", "rule"}})),
            200);
  EXPECT_EQ(prom::value_of(p, "bpfgate_rule_packets_total",
                           with(iface, {{"match", "udp/53"}, {"action", "drop"}, {"rule", "1"}})),
            0)
      << "rule counters restart at each apply (the reload above)";
  EXPECT_EQ(prom::value_of(p, "bpfgate_blocklist_entries", with(iface, {{"reason", "manual"}})), 1);
  EXPECT_EQ(prom::value_of(p, "bpfgate_map_max_entries", with(iface, {{"map", "sources"}})), 65536);
  EXPECT_GE(prom::value_of(p, "bpfgate_map_entries", with(iface, {{"map", "sources"}})), 1);
  EXPECT_EQ(prom::value_of(p, "bpfgate_service_tcp_resets_total",
                           {{"service", "closed"}, {"direction", "sent"}}),
            1);
  // start_agent() asks for one reload to see the agent answer, the test one more.
  EXPECT_EQ(prom::value_of(p, "bpfgate_agent_reloads_total", {{"result", "ok"}}), 2);
  EXPECT_EQ(prom::value_of(p, "bpfgate_interface_up", iface), 1);
  EXPECT_EQ(
      prom::value_of(p, "bpfgate_agent_event_buffer_info", with(iface, {{"buffer", "ringbuf"}})),
      1);
  // tc classes, as `class list` reads them (the reload kept their counters).
  auto classes = json::parse(run_ok(gw_.exec() + bg() + "-j class list " + gw_if_).out);
  auto listed = [&](const std::string &cls, const char *field) {
    for (const auto &c : classes["classes"])
      if (c["name"].is_string() && c["name"] == cls)
        return c[field].get<double>();
    ADD_FAILURE() << "no class " << cls << " in " << classes.dump();
    return -1.0;
  };
  auto tc_class = [&](const char *metric, const std::string &cls, const std::string &dir) {
    return prom::value_of(p, fmt::format("bpfgate_tc_class_{}_total", metric),
                          with(iface, {{"class", cls}, {"direction", dir}}));
  };
  EXPECT_EQ(tc_class("packets", "ntp", "ingress"), 200);
  EXPECT_EQ(tc_class("bytes", "ntp", "ingress"), listed("ntp", "bytes"));
  EXPECT_GT(tc_class("drops", "ntp", "ingress"), 100);
  EXPECT_LT(tc_class("drops", "ntp", "ingress"), 200);
  EXPECT_EQ(tc_class("drops", "ntp", "ingress"), listed("ntp", "drops"));
  EXPECT_EQ(tc_class("marked", "ntp", "ingress"), 0);
  EXPECT_EQ(tc_class("packets", "pong", "egress"), 40);
  EXPECT_EQ(tc_class("bytes", "pong", "egress"), 40 * 1042);
  EXPECT_GE(tc_class("marked", "pong", "egress"), 30);
  EXPECT_EQ(tc_class("marked", "pong", "egress"), listed("pong", "marked"));
  EXPECT_EQ(tc_class("mirrored", "pong", "egress"), 40);
  EXPECT_EQ(tc_class("drops", "pong", "egress"), 0);
  EXPECT_GE(tc_class("packets", "(unclassified)", "both"), 1) << "ARP, TCP: no class";
  // Rule counters after the apply: 50 more frames to udp/53.
  gen("198.18.0.70", 50, "--dport 53");
  p = scrape();
  EXPECT_EQ(prom::value_of(p, "bpfgate_rule_packets_total", with(iface, {{"match", "udp/53"}})),
            50);
  // Conventions: counters end in _total, durations are _seconds histograms
  // (points in time, start_time and _timestamp_seconds, are gauges).
  for (const auto &[family, type] : p.types) {
    if (type == "counter") {
      EXPECT_TRUE(family.ends_with("_total")) << family;
    }
    if (family.find("seconds") != std::string::npos &&
        family.find("start_time") == std::string::npos && !family.ends_with("_timestamp_seconds")) {
      EXPECT_EQ(type, "histogram") << family;
    }
  }
  EXPECT_EQ(p.types["bpfgate_service_request_duration_seconds"], "histogram");
  // Every metric the Grafana dashboard queries, and every one the alert rules
  // use, is in the scrape.
  auto exported = [&](const std::string &file) {
    std::ifstream in(std::string(BPFGATE_SOURCE_DIR) + "/deploy/" + file);
    std::string text((std::istreambuf_iterator<char>(in)), {});
    EXPECT_FALSE(text.empty()) << file;
    int used = 0;
    for (size_t i = text.find("bpfgate_"); i != std::string::npos;
         i = text.find("bpfgate_", i + 1)) {
      size_t j = i;
      while (j < text.size() &&
             (std::islower(static_cast<unsigned char>(text[j])) || text[j] == '_'))
        j++;
      std::string metric = text.substr(i, j - i);
      if (metric == "bpfgate_")
        continue;
      used++;
      // Socket acceleration and the fleet are off here: their families are declared, their
      // samples are checked with them on (accel_agent_test.cpp, fleet_test.cpp).
      if (metric.starts_with("bpfgate_accel_") || metric.starts_with("bpfgate_fleet_")) {
        std::string family = metric;  // a histogram's series name their family
        for (const char *suffix : {"_bucket", "_sum", "_count"})
          if (family.ends_with(suffix) && !p.types.count(family))
            family.resize(family.size() - std::strlen(suffix));
        EXPECT_TRUE(p.types.count(family)) << file << " uses " << metric << ", never declared";
        continue;
      }
      // So is the load balancer (lb_agent_test.cpp checks its samples).
      if (metric.starts_with("bpfgate_lb_")) {
        std::string family = metric;
        for (const char *suffix : {"_sum", "_count", "_bucket"})
          if (family.ends_with(suffix) && !p.types.count(family))
            family.resize(family.size() - std::string(suffix).size());
        EXPECT_TRUE(p.types.count(family)) << file << " uses " << metric << ", never declared";
        continue;
      }
      bool found = false;
      for (const auto &s : p.samples)
        found = found || s.name == metric;
      EXPECT_TRUE(found) << file << " uses " << metric << ", which the agent does not export";
    }
    return std::make_pair(used, text);
  };
  auto [used, text] = exported("grafana-bpfgate.json");
  EXPECT_GT(used, 20);
  EXPECT_GE(exported("prometheus-bpfgate-rules.yaml").first, 8);
  // The filter's mode and attachment, as `status` says.
  EXPECT_EQ(prom::value_of(p, "bpfgate_interface_xdp_info",
                           with(iface, {{"mode", st["interfaces"][0]["mode"].get<std::string>()},
                                        {"attach", "direct"}})),
            1);
  EXPECT_EQ(prom::value_of(p, "bpfgate_events_lost_total", iface), 0);
  EXPECT_EQ(prom::value_of(p, "bpfgate_agent_event_log_lines_suppressed_total", {}), 0);
  // ... and it has panels for the tc classes and the datapath's events.
  for (const auto &[family, type] : p.types) {
    if (family.starts_with("bpfgate_tc_class_") || family.starts_with("bpfgate_fleet_")) {
      EXPECT_TRUE(text.find(family) != std::string::npos) << "no panel shows " << family;
    }
  }
  for (uint32_t e = 0; e < BG_STAT_NR; e++) {
    auto family = fmt::format("bpfgate_{}_total", agent::stat_name(static_cast<bg_stat>(e)).name);
    EXPECT_TRUE(text.find(family) != std::string::npos) << "no panel shows " << family;
  }
  // ... and for the operator switches (dry-run, bypass).
  for (const char *family : {"bpfgate_would_drop_total", "bpfgate_would_autoblocks_total",
                             "bpfgate_interface_bypass", "bpfgate_bypassed_total"}) {
    EXPECT_TRUE(p.types.count(family)) << "no family " << family;
    EXPECT_TRUE(text.find(family) != std::string::npos) << "no panel shows " << family;
  }
  EXPECT_EQ(prom::value_of(p, "bpfgate_interface_bypass", iface), 0);
  EXPECT_EQ(prom::value_of(p, "bpfgate_would_drop_total", with(iface, {{"reason", "deny"}})), 0);
  // Loopback only by default: the client cannot reach it.
  EXPECT_NE(
      run(cl_.exec() + fmt::format("curl -sf --max-time 1 http://{}:9477/metrics", kGw)).exit_code,
      0);
}

// A flood of events does not flood the agent's log: at most kEventLogRate
// `event:` lines a second after a burst of kEventLogBurst; the rest are counted
// and said, and `bpfgate events` still gets every one.
TEST_F(Observe, EventLogIsBoundedAndSaysWhatItLeftOut) {
  write_config("deny: [198.18.0.66]\nevents: {drop_samples: 1000}\n");
  start_agent();
  std::string events = dir_.file("events.jsonl");
  Process follower =
      Process::spawn(bpfgate_bin() + " -j events --timeout 3 --socket " + sock() + " >" + events);
  std::this_thread::sleep_for(300ms);
  std::string mac = run_ok(gw_.exec() + "ip -br link show dev " + gw_if_ + " | awk '{print $3}'")
                        .out.substr(0, 17);
  auto t0 = std::chrono::steady_clock::now();
  // A second of denied frames: a sample for about every 65 drops (after a
  // sample, drops within the interval skip the next 63): 450 to 500 here.
  run_ok(cl_.exec() + fmt::format("{} -i {} --dst-mac {} --src 198.18.0.66 --dst {} -n 40000 "
                                  "--rate 40000 --duration 5",
                                  gen_bin(), cl_if_, mac, kGw));
  EXPECT_EQ(follower.wait(10s), 0);
  double took_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::this_thread::sleep_for(300ms);  // a sweep or two: the count of what was left out
  int streamed = 0;
  std::ifstream in(events);
  for (std::string line; std::getline(in, line);)
    streamed += contains(line, "\"drop_sample\"");
  auto p = scrape();
  double sampled = prom::value_of(p, "bpfgate_agent_events_total", {{"type", "drop_sample"}});
  double left_out = prom::value_of(p, "bpfgate_agent_event_log_lines_suppressed_total", {});
  std::istringstream log(agent_log());
  int logged = 0, said = 0;
  uint64_t said_left_out = 0;
  for (std::string line; std::getline(log, line);) {
    auto at = line.find("event: ");
    if (at == std::string::npos)
      continue;
    if (contains(line, " events not logged (over 20 lines a second)")) {
      said++;
      said_left_out += std::stoull(line.substr(at + 7));
    } else {
      logged++;
    }
  }
  EXPECT_EQ(streamed, sampled) << "every event is streamed";
  EXPECT_GT(sampled, agent::kEventLogBurst + 50) << "too few events: the case tests nothing";
  EXPECT_LE(logged, agent::kEventLogBurst + std::ceil(took_s + 1) * agent::kEventLogRate);
  EXPECT_GT(left_out, 0);
  EXPECT_EQ(logged + left_out, sampled) << "each event logged or counted";
  EXPECT_GE(said, 1);
  EXPECT_EQ(said_left_out, left_out) << "the log says how many it left out";
}

TEST_F(Observe, RetransmitsAreCounted) {
  write_config("services: [{name: web, port: 80}]\n");
  start_servers();
  start_agent();
  // The response to a 1.5 s request goes out while the gateway drops
  // everything the client sends: the service retransmits until it is let go.
  Process client = Process::spawn(cl_.exec() + fmt::format("curl -s -o /dev/null --max-time 10 "
                                                           "'http://{}/slow?ms=1500'",
                                                           kGw));
  std::this_thread::sleep_for(500ms);
  run_ok(gw_.exec() + "nft add table inet bgobs");
  run_ok(gw_.exec() + "nft 'add chain inet bgobs in { type filter hook input priority 0; }'");
  run_ok(gw_.exec() +
         fmt::format("nft add rule inet bgobs in ip saddr {} tcp dport 80 drop", kClient));
  std::this_thread::sleep_for(2500ms);
  run_ok(gw_.exec() + "nft delete table inet bgobs");
  EXPECT_EQ(client.wait(10s), 0);
  auto p = scrape();
  EXPECT_GE(prom::value_of(p, "bpfgate_service_tcp_retransmits_total", web()), 1);
  EXPECT_NE(prom::value_of(p, "bpfgate_agent_info", {{"tcp_probes", "off"}}), 1) << agent_log();
}

TEST_F(Observe, EventsAreStreamedAndLogged) {
  write_config(
      "rules: [{match: udp/53, action: drop}]\nlimits: {rate: 100, burst: 100}\n"
      "auto_block: {after: 200ms, ttl: 1s}\nevents: {drop_samples: 5}\n");
  start_agent();
  std::string events = dir_.file("events.jsonl");
  Process follower =
      Process::spawn(bpfgate_bin() + " -j events --timeout 6 --socket " + sock() + " >" + events);
  std::this_thread::sleep_for(300ms);
  std::string mac = run_ok(gw_.exec() + "ip -br link show dev " + gw_if_ + " | awk '{print $3}'")
                        .out.substr(0, 17);
  auto t0 = std::chrono::steady_clock::now();
  run_ok(cl_.exec() + fmt::format("{} -i {} --dst-mac {} --src 198.18.0.70 --dst {} -n 100 --rate "
                                  "20000 --dport 53",
                                  gen_bin(), cl_if_, mac, kGw));
  run_ok(cl_.exec() + fmt::format("{} -i {} --dst-mac {} --src 198.18.0.77 --dst {} -n 10000 "
                                  "--rate 10000",
                                  gen_bin(), cl_if_, mac, kGw));
  double flood_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  run_ok(gw_.exec() + bg() + "block 198.18.9.0/24 --ttl 1h --iface " + gw_if_);
  EXPECT_EQ(follower.wait(10s), 0);
  std::ifstream in(events);
  std::map<std::string, int> n;
  bool blocked = false, released = false, manual = false, hit = false;
  for (std::string line; std::getline(in, line);) {
    auto e = json::parse(line, nullptr, false);
    ASSERT_FALSE(e.is_discarded()) << line;
    EXPECT_EQ(e["iface"], gw_if_);
    n[e["type"]]++;
    if (e["type"] == "rule_hit")
      hit = e["source"] == "198.18.0.70" && e["match"] == "udp/53" && e["dport"] == 53;
    if (e["type"] == "blocked")
      blocked = e["source"] == "198.18.0.77/32" && e["reason"] == "auto" && e["ttl_s"] == 1.0;
    if (e["type"] == "released")
      released = e["source"] == "198.18.0.77/32";
    if (e["type"] == "manual_block")
      manual = e["source"] == "198.18.9.0/24";
  }
  EXPECT_TRUE(hit && blocked && released && manual) << agent_log();
  EXPECT_EQ(n["rule_hit"], 1);
  EXPECT_EQ(n["blocked"], 1);
  // 5 samples a second per CPU at most (and one more per CPU to start).
  long cpus = sysconf(_SC_NPROCESSORS_ONLN);
  EXPECT_GE(n["drop_sample"], 2);
  EXPECT_LE(n["drop_sample"], static_cast<int>(std::ceil(flood_s * 5 + 1) * cpus)) << flood_s;
  std::string log = agent_log();
  EXPECT_TRUE(contains(log, "event: ")) << log;
  EXPECT_TRUE(contains(log, "blocked 198.18.0.77/32 (auto, for 1s)")) << log;
  EXPECT_TRUE(contains(log, "released 198.18.0.77/32 (auto block expired)")) << log;
  // Without an agent: no agent answers, and --direct reads the pinned buffer
  // of the filter the agent left running (--keep-datapath).
  agent_->kill(SIGTERM);
  EXPECT_EQ(agent_->wait(5s), 0);
  start_agent("--keep-datapath");
  agent_->kill(SIGTERM);
  EXPECT_EQ(agent_->wait(5s), 0);
  auto none = run(bpfgate_bin() + " events --timeout 0.2 --socket " + sock());
  EXPECT_EQ(none.exit_code, 1);
  EXPECT_TRUE(contains(none.err, "use --direct")) << none.err;
  std::string direct = dir_.file("direct.jsonl");
  Process reader = Process::spawn(
      gw_.exec() + bg() + "-j events --direct -c 1 --timeout 5 --iface " + gw_if_ + " >" + direct);
  std::this_thread::sleep_for(300ms);
  run_ok(cl_.exec() + fmt::format("{} -i {} --dst-mac {} --src 198.18.0.71 --dst {} -n 20 --rate "
                                  "20000 --dport 53",
                                  gen_bin(), cl_if_, mac, kGw));
  EXPECT_EQ(reader.wait(6s), 0);
  std::ifstream d(direct);
  std::string line;
  std::getline(d, line);
  auto e = json::parse(line, nullptr, false);
  ASSERT_FALSE(e.is_discarded()) << line;
  EXPECT_EQ(e["source"], "198.18.0.71");
  EXPECT_TRUE(e["type"] == "drop_sample" || e["type"] == "rule_hit") << line;
}

TEST_F(Observe, TopOnAndOffATerminalAndNothingLeftBehind) {
  write_config("services: [{name: web, port: 80}]\n");
  start_servers();
  start_agent("--keep-datapath");
  run_ok(cl_.exec() + fmt::format("curl -s -o /dev/null 'http://{}/t?ms=5'", kGw));
  auto plain = run_ok(gw_.exec() + bg() + "top " + gw_if_ + " -c 1 -i 0.1");
  EXPECT_TRUE(contains(plain.out, "DROP REASON")) << plain.out;
  EXPECT_TRUE(contains(plain.out, "SERVICE")) << plain.out;
  EXPECT_TRUE(contains(plain.out, "\nweb ")) << plain.out;
  EXPECT_FALSE(contains(plain.out, "\x1b[")) << "no escapes off a terminal";
  // On a terminal (script gives it a pty): the alternate screen, restored at exit.
  auto tty = run_ok("TERM=xterm script -qec '" + gw_.exec() + bg() + "top " + gw_if_ +
                    " -c 2 -i 0.1' /dev/null </dev/null");
  EXPECT_TRUE(contains(tty.out, "\x1b[?1049h")) << tty.out;
  EXPECT_TRUE(contains(tty.out, "\x1b[?1049l")) << tty.out;
  EXPECT_TRUE(contains(tty.out, "web")) << tty.out;
  auto j = json::parse(run_ok(gw_.exec() + bg() + "-j top " + gw_if_ + " -c 1 -i 0.1").out);
  ASSERT_EQ(j["services"].size(), 1u);
  EXPECT_EQ(j["services"][0]["service"], "web");
  EXPECT_GE(j["services"][0]["requests"].get<int>(), 1);

  auto filters = [&](const char *dir) {
    return run_ok(gw_.exec() + fmt::format("tc filter show dev {} {}", gw_if_, dir)).out;
  };
  // --keep-datapath: the probes stay for the next agent, which replaces them.
  agent_->kill(SIGTERM);
  EXPECT_EQ(agent_->wait(5s), 0);
  EXPECT_TRUE(contains(filters("ingress"), "bg_obs_tc_"));
  EXPECT_TRUE(std::filesystem::exists(bpffs_ + "/bpfgate-observe/service_stats"));
  start_agent();
  run_ok(cl_.exec() + fmt::format("curl -s -o /dev/null 'http://{}/t?ms=5'", kGw));
  auto p = scrape();
  EXPECT_EQ(prom::value_of(p, "bpfgate_service_requests_total", web()), 2)
      << "counters carried over the restart (one request before, one after)";
  auto in = filters("ingress");
  EXPECT_NE(in.find("handle 0xb6e0"), std::string::npos) << in;
  EXPECT_EQ(in.find("handle 0xb6e0"), in.rfind("handle 0xb6e0")) << "one probe, not two: " << in;
  // A plain stop removes everything.
  agent_->kill(SIGTERM);
  EXPECT_EQ(agent_->wait(5s), 0);
  EXPECT_FALSE(contains(filters("ingress"), "bg_obs"));
  EXPECT_FALSE(contains(filters("egress"), "bg_obs"));
  EXPECT_FALSE(std::filesystem::exists(bpffs_ + "/bpfgate-observe"));
  EXPECT_FALSE(std::filesystem::exists(bpffs_ + "/bpfgate/" + gw_if_));
}

}  // namespace
}  // namespace bpfgate::test
