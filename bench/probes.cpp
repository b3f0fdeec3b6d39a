// probes: what the per-service latency probes cost a server. nginx serves a
// small file on a veth in a namespace of its own; wrk, in a second namespace,
// drives it as hard as it can, with the probes off and on in alternate runs of
// the same process (drift hits both alike). Reported per mode as min / median
// / max requests/s, and the ratio of the medians; with the probes on, the
// kernel's own accounting of the probes (BPF_ENABLE_STATS run time) gives
// their CPU time per request, beside the CPU time the whole request costs
// (wrk's and nginx's CPU time, kernel included, over the run / requests).
// Target: under 3%.
//
//   bench/run probes [--runs N] [--seconds S] [--conns N] [-j]
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <fcntl.h>
#include <sched.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "agent/probes.hpp"
#include "bpf/error.hpp"
#include "bpf/pin.hpp"
#include "core/config.hpp"
#include "core/packet.hpp"
#include "util/log.hpp"

namespace bpfgate::bench {
namespace {

using json = nlohmann::ordered_json;

constexpr const char *kGwNs = "bgobsb-gw", *kClNs = "bgobsb-cl";
constexpr const char *kGwIf = "bgobsb-g0", *kClIf = "bgobsb-c0";
constexpr const char *kGw = "198.18.0.1";
constexpr const char *kBpffs = "/sys/fs/bpf/bgobs-bench";

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
  // The kernel counts the probes' run time while this fd is open.
  int stats_fd = bpf_enable_stats(BPF_STATS_RUN_TIME);

  wrk(topo.dir, conns, 1);  // warm-up
  std::vector<double> off_rps, on_rps, off_cpu, on_cpu, off_lat, on_lat;
  uint64_t on_requests = 0;
  ProgStats in0 = prog_stats((*probes)->ingress_prog_fd());
  ProgStats out0 = prog_stats((*probes)->egress_prog_fd());
  for (unsigned i = 0; i < runs; i++) {
    for (bool on : {false, true}) {
      if (on && !(*probes)->attach(kGwIf)) {
        fmt::print(stderr, "probes bench: attach failed\n");
        return 1;
      }
      Run r = wrk(topo.dir, conns, seconds);
      if (on) {
        (*probes)->detach(kGwIf);
        on_requests += r.requests;
      }
      (on ? on_rps : off_rps).push_back(r.rps);
      (on ? on_cpu : off_cpu).push_back(r.cpu_us_per_req);
      (on ? on_lat : off_lat).push_back(r.latency_ms);
    }
  }
  ProgStats in1 = prog_stats((*probes)->ingress_prog_fd());
  ProgStats out1 = prog_stats((*probes)->egress_prog_fd());
  if (stats_fd >= 0)
    close(stats_fd);
  auto svc = agent::read_services(kBpffs);
  uint64_t counted = svc && !svc->empty() ? (*svc)[0].total.responses : 0;
  std::string tcp_mode = (*probes)->tcp_mode();
  probes->reset();
  agent::remove_observe_pins(kBpffs);
  std::filesystem::remove(kBpffs);

  double probe_ns = static_cast<double>((in1.run_ns - in0.run_ns) + (out1.run_ns - out0.run_ns));
  double probe_runs = static_cast<double>((in1.runs - in0.runs) + (out1.runs - out0.runs));
  double ns_per_req = on_requests ? probe_ns / static_cast<double>(on_requests) : 0;
  double ratio = median(on_rps) / median(off_rps);
  // Each "on" run against the "off" run just before it: drift and outside
  // load hit a pair alike, so the median of the pairs is the steadier figure.
  std::vector<double> pairs;
  for (size_t i = 0; i < on_rps.size() && i < off_rps.size(); i++)
    if (off_rps[i] > 0)
      pairs.push_back(on_rps[i] / off_rps[i]);
  double paired = median(pairs);
  auto minmax = [](const std::vector<double> &v) {
    return std::make_pair(*std::min_element(v.begin(), v.end()),
                          *std::max_element(v.begin(), v.end()));
  };
  if (as_json) {
    for (bool on : {false, true}) {
      const auto &v = on ? on_rps : off_rps;
      fmt::print("{}\n", json{{"name", on ? "probes_on" : "probes_off"},
                              {"runs", runs},
                              {"rps_min", minmax(v).first},
                              {"rps_median", median(v)},
                              {"rps_max", minmax(v).second},
                              {"latency_ms_median", median(on ? on_lat : off_lat)},
                              {"cpu_us_per_request_median", median(on ? on_cpu : off_cpu)}}
                             .dump());
    }
    fmt::print("{}\n", json{{"name", "probes_cost"},
                            {"throughput_ratio", ratio},
                            {"throughput_cost_pct", (1 - ratio) * 100},
                            {"paired_ratio_median", paired},
                            {"paired_cost_pct", (1 - paired) * 100},
                            {"probe_ns_per_request", ns_per_req},
                            {"probe_runs_per_request",
                             on_requests ? probe_runs / static_cast<double>(on_requests) : 0},
                            {"probe_share_of_request_cpu_pct",
                             median(on_cpu) > 0 ? ns_per_req / (median(on_cpu) * 1e3) * 100 : 0},
                            {"responses_counted", counted},
                            {"responses_sent", on_requests},
                            {"tcp_probes", tcp_mode},
                            {"test_run_ns_ingress_in_flight", tr_in},
                            {"test_run_ns_egress_no_request", tr_out},
                            {"test_run_ns_other_port", tr_other}}
                           .dump());
    return 0;
  }
  fmt::print(
      "probes: nginx (1 worker, 600-byte file) over veth, wrk -c{} for {}s, {} runs per "
      "mode, alternating\n",
      conns, seconds, runs);
  fmt::print("{:<12} {:>10} {:>10} {:>10} {:>12} {:>14}\n", "mode", "min req/s", "median", "max",
             "latency ms", "CPU us/req");
  for (bool on : {false, true}) {
    const auto &v = on ? on_rps : off_rps;
    fmt::print("{:<12} {:>10.0f} {:>10.0f} {:>10.0f} {:>12.3f} {:>14.2f}\n",
               on ? "probes on" : "probes off", minmax(v).first, median(v), minmax(v).second,
               median(on ? on_lat : off_lat), median(on ? on_cpu : off_cpu));
  }
  fmt::print(
      "throughput on/off: medians {:.4f} ({:+.2f}%), median of adjacent pairs {:.4f} "
      "({:+.2f}%); target: a cost under 3%\n",
      ratio, (ratio - 1) * 100, paired, (paired - 1) * 100);
  fmt::print(
      "probe CPU per request (kernel run-time stats): {:.0f} ns over {:.2f} runs, {:.2f}% of "
      "the {:.1f} us a request costs wrk and nginx\n",
      ns_per_req, on_requests ? probe_runs / static_cast<double>(on_requests) : 0,
      median(on_cpu) > 0 ? ns_per_req / (median(on_cpu) * 1e3) * 100 : 0, median(on_cpu));
  fmt::print(
      "responses counted by the probes: {} of {} sent in the runs with probes on (TCP "
      "probes: {})\n",
      counted, on_requests, tcp_mode);
  return 0;
}

}  // namespace
}  // namespace bpfgate::bench

int main(int argc, char **argv) {
  return bpfgate::bench::main_(argc, argv);
}
