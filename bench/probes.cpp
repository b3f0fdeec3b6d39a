// probes: what the per-service latency probes cost a server. nginx serves a
// small file on a veth in a namespace of its own; wrk, in a second namespace,
// drives it as hard as it can: without tc programs, with an empty tc program
// on the same hooks (the floor), and with the probes, in turn, in the same
// process (drift hits all three alike). Reported per mode: min / median / max
// requests/s, and CPU time per request (wrk's and nginx's, kernel included,
// so other load on the host stays out); then each mode against the run
// without tc of the same round. One extra run with the kernel's accounting on
// (BPF_ENABLE_STATS) gives the probes' own run time per request. Target: a
// cost under 3% per request.
//
//   bench/run probes [--runs N] [--seconds S] [--conns N] [-j]
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <fcntl.h>
#include <net/if.h>
#include <sched.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <optional>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "features/observe/probes.hpp"
#include "bpf/error.hpp"
#include "bpf/pin.hpp"
#include "core/config.hpp"
#include "core/packet.hpp"
#include "bpf/object.hpp"
#include "bpf/tc_attach.hpp"
#include "tc_empty.skel.h"
#include "util/log.hpp"

namespace bpfgate::bench {
namespace {

using json = nlohmann::ordered_json;

constexpr const char *kGwNs = "bgobsb-gw", *kClNs = "bgobsb-cl";
constexpr const char *kGwIf = "bgobsb-g0", *kClIf = "bgobsb-c0";
constexpr const char *kGw = "198.18.0.1";
constexpr const char *kBpffs = "/sys/fs/bpf/bgobs-bench";

using TcEmptySkel = bpf::Skeleton<
    bpf::SkeletonTraits<tc_empty, tc_empty__open_opts, tc_empty__load, tc_empty__destroy>>;

int sh(const std::string &cmd) {
  return std::system(cmd.c_str());
}
std::string out_of(const std::string &cmd) {
  std::string out;
  FILE *p = popen(cmd.c_str(), "r");
  if (!p)
    return out;
  char buf[4096];
  for (size_t n; (n = fread(buf, 1, sizeof(buf), p)) > 0;)
    out.append(buf, n);
  pclose(p);
  return out;
}
std::string in(const char *ns) {
  return fmt::format("nsenter --net=/run/netns/{} ", ns);
}

long last_cpu() {
  long n = sysconf(_SC_NPROCESSORS_ONLN);
  return n > 1 ? n - 1 : 0;
}

// Everything the bench makes, removed in reverse when it goes.
struct Topology {
  std::string dir;
  Topology() {
    char tmpl[] = "/tmp/bgobsb.XXXXXX";
    dir = mkdtemp(tmpl);
    std::filesystem::permissions(dir, std::filesystem::perms::all);
    for (const char *ns : {kGwNs, kClNs}) {
      sh(fmt::format("ip netns del {} 2>/dev/null", ns));
      sh(fmt::format("ip netns add {}", ns));
      sh(in(ns) + "ip link set lo up");
    }
    sh(fmt::format("ip link add {} netns {} type veth peer name {} netns {}", kGwIf, kGwNs, kClIf,
                   kClNs));
    sh(in(kGwNs) + fmt::format("ip addr add {}/24 dev {}", kGw, kGwIf));
    sh(in(kClNs) + fmt::format("ip addr add 198.18.0.2/24 dev {}", kClIf));
    sh(in(kGwNs) + fmt::format("ip link set {} up", kGwIf));
    sh(in(kClNs) + fmt::format("ip link set {} up", kClIf));
    std::filesystem::create_directories(dir + "/www");
    std::ofstream(dir + "/www/index.html") << std::string(600, 'x');
    std::ofstream(dir + "/nginx.conf") << fmt::format(R"(worker_processes 1;
pid {0}/nginx.pid;
error_log {0}/nginx-error.log warn;
events {{ worker_connections 1024; }}
http {{
  access_log off;
  client_body_temp_path {0}/body;
  proxy_temp_path {0}/proxy;
  fastcgi_temp_path {0}/fastcgi;
  uwsgi_temp_path {0}/uwsgi;
  scgi_temp_path {0}/scgi;
  keepalive_requests 1000000;
  server {{ listen {1}:80; root {0}/www; location / {{ }} }}
}}
)",
                                                      dir, kGw);
    // The server on the last CPU, the client on the first: less noise from
    // the scheduler moving them around (one CPU: both share it).
    sh(fmt::format("taskset -c {1} {2}nginx -e {0}/nginx-error.log -p {0} -c {0}/nginx.conf", dir,
                   last_cpu(), in(kGwNs)));
  }
  ~Topology() {
    sh(fmt::format("[ -f {0}/nginx.pid ] && kill $(cat {0}/nginx.pid) 2>/dev/null", dir));
    for (int i = 0; i < 50 && std::filesystem::exists(dir + "/nginx.pid"); i++)
      usleep(100'000);
    for (const char *ns : {kGwNs, kClNs})
      sh(fmt::format("ip netns del {} 2>/dev/null", ns));
    std::filesystem::remove_all(dir);
  }
};

// CPU time (user + system, in seconds) a process has used so far.
double cpu_seconds(pid_t pid) {
  std::ifstream f(fmt::format("/proc/{}/stat", pid));
  std::string line;
  std::getline(f, line);
  auto close = line.rfind(')');
  if (close == std::string::npos)
    return 0;
  std::istringstream s(line.substr(close + 2));
  std::string field;
  double ticks = 0;
  for (int i = 3; s >> field && i <= 15; i++)
    if (i == 14 || i == 15)  // utime, stime
      ticks += std::atof(field.c_str());
  return ticks / static_cast<double>(sysconf(_SC_CLK_TCK));
}

// nginx's worker processes (children of the master).
std::vector<pid_t> nginx_workers(const std::string &dir) {
  std::ifstream f(dir + "/nginx.pid");
  pid_t master = 0;
  f >> master;
  std::vector<pid_t> out;
  std::istringstream s(out_of(fmt::format("pgrep -P {}", master)));
  for (pid_t p; s >> p;)
    out.push_back(p);
  return out;
}

struct Run {
  double rps = 0, latency_ms = 0, cpu_us_per_req = 0;
  uint64_t requests = 0;
};

// One wrk run (on the first CPU, in the client namespace). CPU per request
// counts wrk and the nginx workers only, kernel time included (the veth's
// receive path and the tc probes run in the sender's context), so that other
// load on the machine does not enter the figure.
Run wrk(const std::string &dir, unsigned conns, double seconds) {
  auto workers = nginx_workers(dir);
  double w0 = 0;
  for (pid_t p : workers)
    w0 += cpu_seconds(p);
  int fds[2];
  if (pipe(fds) != 0)
    return {};
  std::string cmd = fmt::format("exec taskset -c 0 {}wrk -t1 -c{} -d{}s --latency http://{}/",
                                in(kClNs), conns, seconds, kGw);
  pid_t pid = fork();
  if (pid == 0) {
    dup2(fds[1], 1);
    dup2(fds[1], 2);
    execl("/bin/sh", "sh", "-c", cmd.c_str(), nullptr);
    _exit(127);
  }
  close(fds[1]);
  std::string o;
  char buf[4096];
  for (ssize_t n; (n = read(fds[0], buf, sizeof(buf))) > 0;)
    o.append(buf, static_cast<size_t>(n));
  close(fds[0]);
  int status = 0;
  rusage ru{};
  wait4(pid, &status, 0, &ru);
  double w1 = 0;
  for (pid_t p : workers)
    w1 += cpu_seconds(p);
  double wrk_cpu = ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + ru.ru_stime.tv_sec +
                   ru.ru_stime.tv_usec / 1e6;
  Run r;
  std::istringstream s(o);
  for (std::string w; s >> w;) {
    if (w == "Requests/sec:") {
      s >> r.rps;
    } else if (w == "Latency" && !r.latency_ms) {
      std::string v;
      s >> v;
      double x = std::atof(v.c_str());
      r.latency_ms = v.find("us") != std::string::npos   ? x / 1e3
                     : v.find("ms") != std::string::npos ? x
                                                         : x * 1e3;
    }
  }
  auto pos = o.find(" requests in ");  // "12345 requests in 3.00s"
  if (pos != std::string::npos) {
    auto start = o.rfind('\n', pos);
    r.requests =
        std::strtoull(o.c_str() + (start == std::string::npos ? 0 : start + 1), nullptr, 10);
  }
  if (r.requests)
    r.cpu_us_per_req = (wrk_cpu + w1 - w0) * 1e6 / static_cast<double>(r.requests);
  if (!r.rps)
    fmt::print(stderr, "probes bench: wrk printed:\n{}\n", o);
  return r;
}

// ns per run of a program on one frame under BPF_PROG_TEST_RUN (1M repeats).
double test_run_ns(int prog_fd, const std::string &src, const std::string &dst, uint16_t sport,
                   uint16_t dport, const std::string &payload) {
  auto frame = core::PacketBuilder()
                   .ipv4(src, dst)
                   .tcp(sport, dport, 0x18)
                   .payload(std::vector<uint8_t>(payload.begin(), payload.end()))
                   .build();
  std::vector<uint8_t> out(frame.size() + 64);
  LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = frame.data(), .data_out = out.data(),
              .data_size_in = static_cast<uint32_t>(frame.size()),
              .data_size_out = static_cast<uint32_t>(out.size()), .repeat = 1000000);
  if (bpf_prog_test_run_opts(prog_fd, &opts) != 0)
    return 0;
  return opts.duration;
}

struct ProgStats {
  uint64_t run_ns = 0, runs = 0;
};
ProgStats prog_stats(int fd) {
  bpf_prog_info info{};
  uint32_t len = sizeof(info);
  if (bpf_obj_get_info_by_fd(fd, &info, &len) != 0)
    return {};
  return {info.run_time_ns, info.run_cnt};
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty()      ? 0
         : v.size() % 2 ? v[v.size() / 2]
                        : (v[v.size() / 2 - 1] + v[v.size() / 2]) / 2;
}

int main_(int argc, char **argv) {
  CLI::App app{"probes: server throughput with the latency probes on vs off (bench/run probes)"};
  unsigned runs = 7, conns = 16;
  double seconds = 3;
  bool as_json = false;
  app.add_option("--runs", runs, "timed runs per mode")->capture_default_str();
  app.add_option("--seconds", seconds, "length of each wrk run")->capture_default_str();
  app.add_option("--conns", conns, "wrk connections")->capture_default_str();
  app.add_flag("-j,--json", as_json, "one JSON object per mode and a summary, one a line");
  CLI11_PARSE(app, argc, argv);
  log::set_level(log::Level::kWarn);
  bpf::install_libbpf_logger();  // libbpf's chatter (fexit refused, clsact exists) only with -v

  Topology topo;
  // The probes attach in the server's namespace; this process stays there.
  int nsfd = open(fmt::format("/run/netns/{}", kGwNs).c_str(), O_RDONLY | O_CLOEXEC);
  if (nsfd < 0 || setns(nsfd, CLONE_NEWNET) != 0) {
    fmt::print(stderr, "probes bench: cannot enter {}\n", kGwNs);
    return 1;
  }
  close(nsfd);
  for (int i = 0; i < 50 && sh(fmt::format("curl -sf -o /dev/null http://{}/", kGw)) != 0; i++)
    usleep(100'000);
  std::filesystem::create_directories(kBpffs);
  auto probes = agent::ServiceProbes::load(kBpffs, "auto");
  if (!probes) {
    fmt::print(stderr, "probes bench: {}\n", probes.error().what());
    return 1;
  }
  std::vector<core::ServiceConfig> services{{"web", 80, true, 0}};
  if (auto st = (*probes)->set_services(services); !st) {
    fmt::print(stderr, "probes bench: {}\n", st.error().what());
    return 1;
  }
  int in_fd = (*probes)->ingress_prog_fd(), out_fd = (*probes)->egress_prog_fd();
  const std::string req = "GET / HTTP/1.1\r\nHost: x\r\n\r\n", resp = "HTTP/1.1 200 OK\r\n\r\n";
  double tr_in = test_run_ns(in_fd, "198.18.0.2", kGw, 40000, 80, req);       // request in flight
  double tr_out = test_run_ns(out_fd, kGw, "198.18.0.2", 80, 40001, resp);    // none open
  double tr_other = test_run_ns(in_fd, "198.18.0.2", kGw, 40000, 8080, req);  // not a service
  auto floor_skel = TcEmptySkel::open("tc_empty");
  if (!floor_skel || !floor_skel->load()) {
    fmt::print(stderr, "probes bench: cannot load the empty tc program\n");
    return 1;
  }
  int floor_fd = bpf_program__fd((*floor_skel)->progs.bg_tc_empty);
  int ifindex = static_cast<int>(if_nametoindex(kGwIf));

  // Three modes in turn, so that drift and other load hit them alike: no tc
  // program, an empty tc program on ingress and egress (the hook's own cost),
  // the probes.
  enum Mode { kOff = 0, kFloor = 1, kOn = 2 };
  const char *names[] = {"probes off", "empty tc", "probes on"};
  const char *keys[] = {"probes_off", "tc_floor", "probes_on"};
  std::vector<Run> results[3];
  uint64_t on_requests = 0;
  wrk(topo.dir, conns, 1);  // warm-up
  for (unsigned i = 0; i < runs; i++) {
    for (int m : {kOff, kFloor, kOn}) {
      std::optional<bpf::TcFilter> fin, fout;
      if (m == kFloor) {
        auto a = bpf::TcFilter::attach(floor_fd, ifindex, kGwIf, bpf::TcDirection::kIngress,
                                       BG_OBS_TC_PRIORITY);
        auto b = bpf::TcFilter::attach(floor_fd, ifindex, kGwIf, bpf::TcDirection::kEgress,
                                       BG_OBS_TC_PRIORITY);
        if (!a || !b) {
          fmt::print(stderr, "probes bench: attach the empty program failed\n");
          return 1;
        }
        fin.emplace(std::move(*a));
        fout.emplace(std::move(*b));
      }
      if (m == kOn && !(*probes)->attach(kGwIf)) {
        fmt::print(stderr, "probes bench: attach failed\n");
        return 1;
      }
      Run r = wrk(topo.dir, conns, seconds);
      if (m == kOn) {
        (*probes)->detach(kGwIf);
        on_requests += r.requests;
      }
      results[m].push_back(r);
    }
  }
  // One more run with the probes, with the kernel counting their run time
  // (kept out of the runs above: the accounting has a cost of its own).
  int stats_fd = bpf_enable_stats(BPF_STATS_RUN_TIME);
  ProgStats in0 = prog_stats(in_fd), out0 = prog_stats(out_fd);
  (void)(*probes)->attach(kGwIf);
  Run stats_run = wrk(topo.dir, conns, seconds);
  (*probes)->detach(kGwIf);
  ProgStats in1 = prog_stats(in_fd), out1 = prog_stats(out_fd);
  if (stats_fd >= 0)
    close(stats_fd);
  on_requests += stats_run.requests;
  auto svc = agent::read_services(kBpffs);
  uint64_t counted = svc && !svc->empty() ? (*svc)[0].total.responses : 0;
  std::string tcp_mode = (*probes)->tcp_mode();
  probes->reset();
  agent::remove_observe_pins(kBpffs);
  std::filesystem::remove(kBpffs);

  double probe_ns = static_cast<double>((in1.run_ns - in0.run_ns) + (out1.run_ns - out0.run_ns));
  double probe_runs = static_cast<double>((in1.runs - in0.runs) + (out1.runs - out0.runs));
  double reqs = static_cast<double>(stats_run.requests);
  double ns_per_req = reqs ? probe_ns / reqs : 0;
  auto col = [&](int m, double Run::*f) {
    std::vector<double> v;
    for (const auto &r : results[m])
      v.push_back(r.*f);
    return v;
  };
  // Each mode's runs against the "off" run of the same round, then the median.
  auto paired = [&](int m, double Run::*f) {
    std::vector<double> v;
    for (size_t i = 0; i < results[m].size(); i++)
      if (results[kOff][i].*f > 0)
        v.push_back(results[m][i].*f / (results[kOff][i].*f));
    return median(v);
  };
  double rps_on = paired(kOn, &Run::rps), rps_floor = paired(kFloor, &Run::rps);
  double cpu_on = paired(kOn, &Run::cpu_us_per_req),
         cpu_floor = paired(kFloor, &Run::cpu_us_per_req);
  double cpu_off_us = median(col(kOff, &Run::cpu_us_per_req));
  if (as_json) {
    for (int m : {kOff, kFloor, kOn}) {
      auto v = col(m, &Run::rps);
      fmt::print("{}\n", json{{"name", keys[m]},
                              {"runs", runs},
                              {"rps_min", *std::min_element(v.begin(), v.end())},
                              {"rps_median", median(v)},
                              {"rps_max", *std::max_element(v.begin(), v.end())},
                              {"latency_ms_median", median(col(m, &Run::latency_ms))},
                              {"cpu_us_per_request_median", median(col(m, &Run::cpu_us_per_req))}}
                             .dump());
    }
    fmt::print("{}\n", json{{"name", "probes_cost"},
                            {"rps_ratio_on_off", rps_on},
                            {"rps_ratio_floor_off", rps_floor},
                            {"cpu_per_request_ratio_on_off", cpu_on},
                            {"cpu_per_request_ratio_floor_off", cpu_floor},
                            {"probe_ns_per_request", ns_per_req},
                            {"probe_runs_per_request", reqs ? probe_runs / reqs : 0},
                            {"probe_share_of_request_cpu_pct",
                             cpu_off_us > 0 ? ns_per_req / (cpu_off_us * 1e3) * 100 : 0},
                            {"test_run_ns_ingress_in_flight", tr_in},
                            {"test_run_ns_egress_no_request", tr_out},
                            {"test_run_ns_other_port", tr_other},
                            {"responses_counted", counted},
                            {"responses_sent", on_requests},
                            {"tcp_probes", tcp_mode}}
                           .dump());
    return 0;
  }
  fmt::print(
      "probes: nginx (1 worker, 600-byte file) over veth, wrk -c{} for {}s, {} rounds of "
      "the three modes in turn\n",
      conns, seconds, runs);
  fmt::print("{:<12} {:>10} {:>10} {:>10} {:>12} {:>14}\n", "mode", "min req/s", "median", "max",
             "latency ms", "CPU us/req");
  for (int m : {kOff, kFloor, kOn}) {
    auto v = col(m, &Run::rps);
    fmt::print("{:<12} {:>10.0f} {:>10.0f} {:>10.0f} {:>12.3f} {:>14.2f}\n", names[m],
               *std::min_element(v.begin(), v.end()), median(v),
               *std::max_element(v.begin(), v.end()), median(col(m, &Run::latency_ms)),
               median(col(m, &Run::cpu_us_per_req)));
  }
  fmt::print("against the run without tc of the same round (medians of the ratios):\n");
  fmt::print("  req/s        empty tc {:.4f} ({:+.2f}%)   probes {:.4f} ({:+.2f}%)\n", rps_floor,
             (rps_floor - 1) * 100, rps_on, (rps_on - 1) * 100);
  fmt::print(
      "  CPU/request  empty tc {:.4f} ({:+.2f}%)   probes {:.4f} ({:+.2f}%)   target: "
      "probes under +3%\n",
      cpu_floor, (cpu_floor - 1) * 100, cpu_on, (cpu_on - 1) * 100);
  fmt::print(
      "the probes' own run time (kernel stats, one extra run): {:.0f} ns per request over "
      "{:.2f} runs, {:.2f}% of the {:.1f} us a request costs wrk and nginx\n",
      ns_per_req, reqs ? probe_runs / reqs : 0,
      cpu_off_us > 0 ? ns_per_req / (cpu_off_us * 1e3) * 100 : 0, cpu_off_us);
  fmt::print(
      "under BPF_PROG_TEST_RUN: {:.0f} ns for a client segment while its request is open, "
      "{:.0f} ns for a service segment with none open, {:.0f} ns for another port\n",
      tr_in, tr_out, tr_other);
  fmt::print(
      "responses counted by the probes: {} of {} sent while they were attached (TCP "
      "probes: {})\n",
      counted, on_requests, tcp_mode);
  return 0;
}

}  // namespace
}  // namespace bpfgate::bench

int main(int argc, char **argv) {
  return bpfgate::bench::main_(argc, argv);
}
