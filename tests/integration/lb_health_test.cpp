// The balancer's health checks (features/lb/health.hpp) against real
// servers over veth, in namespaces made here (bglbh*): the checker runs in
// the gateway namespace, driven by an epoll loop of the test's own as the
// agent's loop drives it; in the backends' namespace a TCP listener, nginx
// answering 200 and 503, a listener that accepts and never answers, a
// closed port, and an address nobody holds. IPv4 and IPv6.
#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <fstream>
#include <functional>
#include <optional>
#include <thread>

#include <fmt/format.h>

#include "agent/seccomp.hpp"
#include "features/lb/health.hpp"
#include "support/system.hpp"

namespace bpfgate::test {
namespace {

using namespace std::chrono_literals;
using features::lb::health_state_name;
using features::lb::HealthChange;
using features::lb::HealthCheck;
using features::lb::HealthChecker;
using features::lb::HealthSpec;
using features::lb::HealthState;
using features::lb::HealthTarget;
using Clock = std::chrono::steady_clock;

constexpr const char *kGw4 = "198.18.4.1";
constexpr const char *kBe4 = "198.18.4.2";
constexpr const char *kNobody4 = "198.18.4.99";  // on the link, no host: no ARP answer
constexpr const char *kGw6 = "2001:db8:4::1";
constexpr const char *kBe6 = "2001:db8:4::2";
constexpr uint16_t kTcpPort = 7001, kSilentPort = 7002, kClosedPort = 7003, kHttpPort = 8080;

std::string name(const char *role) {
  return fmt::format("bglbh{}{}", getpid() % 100000, role);
}

double ms_since(Clock::time_point t) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t).count();
}

size_t open_fds() {
  size_t n = 0;
  DIR *d = opendir("/proc/self/fd");
  while (d && readdir(d))
    n++;
  if (d)
    closedir(d);
  return n;
}

HealthTarget target(const std::string &addr, uint16_t port, HealthSpec spec,
                    const std::string &tag = "") {
  bool v6 = addr.find(':') != std::string::npos;
  std::string key = fmt::format("{}:{}{}", v6 ? "[" + addr + "]" : addr, port, tag);
  HealthTarget t;
  t.key = key, t.address = addr, t.port = port, t.spec = std::move(spec);
  return t;
}

HealthSpec tcp_spec() {
  return {.check = HealthCheck::Tcp,
          .interval_ns = 200'000'000,
          .timeout_ns = 100'000'000,
          .rise = 2,
          .fall = 2};
}

HealthSpec http_spec(const std::string &path) {
  HealthSpec s = tcp_spec();
  s.check = HealthCheck::Http;
  s.path = path;
  return s;
}

// A change as the test loop saw it, and when.
struct Seen {
  HealthChange change;
  Clock::time_point at;
};

// The agent's loop in small: an epoll of the test's own over the checker's
// fds, run until done() or `limit`; every change collected with its time.
class Loop {
 public:
  explicit Loop(HealthChecker &hc) : hc_(hc), ep_(epoll_create1(EPOLL_CLOEXEC)) {
    for (int fd : hc.fds()) {
      epoll_event ev{};
      ev.events = EPOLLIN;
      ev.data.fd = fd;
      EXPECT_EQ(epoll_ctl(ep_.get(), EPOLL_CTL_ADD, fd, &ev), 0);
    }
  }

  bool run(std::chrono::milliseconds limit, const std::function<bool()> &done) {
    auto end = Clock::now() + limit;
    while (!done()) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(end - Clock::now());
      if (left <= 0ms)
        return false;
      epoll_event ev{};
      if (epoll_wait(ep_.get(), &ev, 1, static_cast<int>(left.count()) + 1) == 1)
        hc_.on_readable(ev.data.fd);
      for (auto &c : hc_.take_changes())
        seen.push_back({std::move(c), Clock::now()});
    }
    return true;
  }

  // Runs until `key` is in `state`; the change that brought it there.
  std::optional<Seen> until(const std::string &key, HealthState state,
                            std::chrono::milliseconds limit) {
    size_t from = seen.size();
    std::optional<Seen> hit;
    run(limit, [&] {
      for (size_t i = from; i < seen.size() && !hit; i++)
        if (seen[i].change.key == key && seen[i].change.to == state)
          hit = seen[i];
      return hit.has_value();
    });
    return hit;
  }

  std::vector<Seen> seen;

 private:
  HealthChecker &hc_;
  bpf::UniqueFd ep_;
};

class LbHealth : public ::testing::Test {
 protected:
  LbHealth() : gw_(name("gns")), be_(name("bns")) {}

  void SetUp() override {
    make_veth(gw_, name("g"), std::string(kGw4) + "/24", be_, name("b"), std::string(kBe4) + "/24");
    for (const auto &[ns, dev, addr] :
         {std::tuple{&gw_, name("g"), kGw6}, std::tuple{&be_, name("b"), kBe6}}) {
      run_ok(ns->exec() + fmt::format("sysctl -qw net.ipv6.conf.{}.disable_ipv6=0", dev));
      run_ok(ns->exec() + fmt::format("ip -6 addr add {}/64 dev {} nodad", addr, dev));
    }
  }

  void TearDown() override { nginx_.reset(); }

  // A TCP listener in the backends' namespace (IPv4 or IPv6 by the address).
  bpf::UniqueFd listener(const std::string &addr, uint16_t port) const {
    bool v6 = addr.find(':') != std::string::npos;
    auto fd = be_.socket(v6 ? AF_INET6 : AF_INET, SOCK_STREAM);
    int one = 1;
    setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    sockaddr_storage ss{};
    socklen_t len = 0;
    if (v6) {
      auto *a = reinterpret_cast<sockaddr_in6 *>(&ss);
      a->sin6_family = AF_INET6, a->sin6_port = htons(port);
      inet_pton(AF_INET6, addr.c_str(), &a->sin6_addr);
      len = sizeof(*a);
    } else {
      auto *a = reinterpret_cast<sockaddr_in *>(&ss);
      a->sin_family = AF_INET, a->sin_port = htons(port);
      inet_pton(AF_INET, addr.c_str(), &a->sin_addr);
      len = sizeof(*a);
    }
    EXPECT_EQ(bind(fd.get(), reinterpret_cast<sockaddr *>(&ss), len), 0) << strerror(errno);
    EXPECT_EQ(listen(fd.get(), 64), 0);
    return fd;
  }

  // nginx in the backends' namespace: /ok answers 200, /fail 503, on both families.
  void start_nginx() {
    std::string d = dir_.string();
    std::ofstream(dir_.file("nginx.conf")) << fmt::format(R"(daemon off;
worker_processes 1;
pid {0}/nginx.pid;
error_log {0}/error.log warn;
events {{ worker_connections 64; }}
http {{
  access_log off;
  client_body_temp_path {0}/body;
  proxy_temp_path {0}/proxy;
  fastcgi_temp_path {0}/fastcgi;
  uwsgi_temp_path {0}/uwsgi;
  scgi_temp_path {0}/scgi;
  server {{
    listen {1}:{3};
    listen [{2}]:{3};
    location /ok {{ return 200 "ok\n"; }}
    location /fail {{ return 503; }}
  }}
}}
)",
                                                          d, kBe4, kBe6, kHttpPort);
    nginx_.emplace(Process::spawn("exec " + be_.exec() + "nginx -e " + d + "/error.log -p " + d +
                                  " -c " + d + "/nginx.conf"));
    for (int i = 0; i < 100; i++) {
      if (run(gw_.exec() +
              fmt::format("curl -sf --max-time 1 -o /dev/null http://{}:{}/ok", kBe4, kHttpPort))
              .exit_code == 0)
        return;
      std::this_thread::sleep_for(50ms);
    }
    FAIL() << "nginx did not come up: " << read_file(dir_.file("error.log"));
  }

  Netns gw_, be_;
  ScratchDir dir_{name("dir")};
  std::optional<Process> nginx_;
};

// Up at the first passing check, down after `fall` refused connects within
// two intervals, back up after `rise` passes: IPv4 and IPv6.
TEST_F(LbHealth, TcpCheckFallsAndRisesWithinTwoIntervals) {
  for (const char *addr : {kBe4, kBe6}) {
    SCOPED_TRACE(addr);
    auto lst = listener(addr, kTcpPort);
    gw_.within([&] {
      auto hc = HealthChecker::create();
      ASSERT_TRUE(hc.ok()) << hc.error().what();
      ASSERT_EQ(hc->fds().size(), 1u);
      Loop loop(*hc);
      auto t = target(addr, kTcpPort, tcp_spec());
      auto start = Clock::now();
      ASSERT_TRUE(hc->set_backends({t}).ok());
      EXPECT_EQ(hc->state(t.key), HealthState::Unknown);
      auto up = loop.until(t.key, HealthState::Up, 1s);
      ASSERT_TRUE(up) << "not up after its first check";
      EXPECT_LT(ms_since(start), 100) << "the first check starts at once";
      EXPECT_EQ(up->change.from, HealthState::Unknown);
      EXPECT_EQ(up->change.reason.rfind("connected in ", 0), 0u) << up->change.reason;

      lst.reset();  // refused from now on
      auto killed = Clock::now();
      auto down = loop.until(t.key, HealthState::Down, 2s);
      ASSERT_TRUE(down) << "not down";
      double to_down = std::chrono::duration<double, std::milli>(down->at - killed).count();
      std::printf("%s: down %.0f ms after the listener closed (interval 200 ms, fall 2)\n", addr,
                  to_down);
      // Worst case: closed just after a passing check; slack for a loaded machine.
      EXPECT_LE(to_down, 2 * 200 + 60) << "fall 2 at 200 ms: out within two intervals";
      EXPECT_EQ(down->change.reason, "connect refused");
      auto st = hc->status(t.key);
      ASSERT_TRUE(st);
      EXPECT_EQ(st->consecutive_failed, 2u);

      lst = listener(addr, kTcpPort);
      auto back = Clock::now();
      ASSERT_TRUE(loop.until(t.key, HealthState::Up, 2s)) << "not back up";
      double to_up = ms_since(back);
      std::printf("%s: up %.0f ms after the listener came back (rise 2)\n", addr, to_up);
      EXPECT_GE(to_up, 200 - 30) << "rise 2: two passes, an interval apart";
      EXPECT_LE(to_up, 2 * 200 + 60);
    });
  }
}

// Each way an HTTP or TCP check fails, and its reason.
TEST_F(LbHealth, HttpChecksAndTheReasonsOfFailures) {
  start_nginx();
  auto silent = listener(kBe4, kSilentPort);  // accepts (backlog), never answers
  gw_.within([&] {
    auto hc = HealthChecker::create();
    ASSERT_TRUE(hc.ok()) << hc.error().what();
    Loop loop(*hc);
    std::vector<HealthTarget> ts = {
        target(kBe4, kHttpPort, http_spec("/ok")),
        target(kBe6, kHttpPort, http_spec("/ok")),
        target(kBe4, kHttpPort, http_spec("/fail"), "/fail"),
        target(kBe4, kSilentPort, http_spec("/")),
        target(kBe4, kClosedPort, http_spec("/")),
        target(kNobody4, kTcpPort, tcp_spec()),
    };
    // The check's own port, not the traffic port.
    ts.push_back(target(kBe6, 443, http_spec("/ok"), "/port"));
    ts.back().check_port = kHttpPort;
    ASSERT_TRUE(hc->set_backends(ts).ok());
    auto start = Clock::now();
    loop.run(1s, [&] {
      for (const auto &t : ts)
        if (hc->state(t.key) == HealthState::Unknown)
          return false;
      return true;
    });
    EXPECT_LT(ms_since(start), 100 + 50) << "every first result within the timeout";
    auto reason = [&](size_t i) { return hc->status(ts[i].key)->last_reason; };
    auto state = [&](size_t i) { return hc->state(ts[i].key); };
    EXPECT_EQ(state(0), HealthState::Up) << reason(0);
    EXPECT_EQ(reason(0).rfind("status 200 in ", 0), 0u) << reason(0);
    EXPECT_EQ(state(1), HealthState::Up) << reason(1);
    EXPECT_EQ(state(2), HealthState::Down);
    EXPECT_EQ(reason(2), "status 503 (expect 200)");
    EXPECT_EQ(state(3), HealthState::Down);
    EXPECT_EQ(reason(3), "timeout after 100 ms (response)");
    EXPECT_EQ(state(4), HealthState::Down);
    EXPECT_EQ(reason(4), "connect refused");
    EXPECT_EQ(state(5), HealthState::Down);
    EXPECT_EQ(reason(5), "timeout after 100 ms (connect)");
    EXPECT_EQ(state(6), HealthState::Up) << reason(6);
    for (const auto &s : loop.seen)
      std::printf("%s: %s -> %s: %s\n", s.change.key.c_str(),
                  features::lb::health_state_name(s.change.from),
                  features::lb::health_state_name(s.change.to), s.change.reason.c_str());
  });
}

// Backends that stay keep their state and counts; those that go leave
// nothing behind; new ones start unknown.
TEST_F(LbHealth, ReplacedBackendsKeepTheStateOfThoseThatStay) {
  auto lst = listener(kBe4, kTcpPort);
  gw_.within([&] {
    auto hc = HealthChecker::create();
    ASSERT_TRUE(hc.ok()) << hc.error().what();
    Loop loop(*hc);
    auto a = target(kBe4, kTcpPort, tcp_spec()), b = target(kBe4, kClosedPort, tcp_spec());
    ASSERT_TRUE(hc->set_backends({a, b}).ok());
    loop.run(700ms, [] { return false; });  // a few checks each
    auto before = hc->status(a.key);
    ASSERT_TRUE(before);
    ASSERT_EQ(before->state, HealthState::Up);
    ASSERT_GE(before->checks, 3u);
    EXPECT_EQ(hc->state(b.key), HealthState::Down);

    auto c = target(kBe6, kClosedPort, tcp_spec());
    a.spec.interval_ns = 300'000'000;  // a new interval: same check, state kept
    size_t seen = loop.seen.size();
    ASSERT_TRUE(hc->set_backends({a, c}).ok());
    auto after = hc->status(a.key);
    ASSERT_TRUE(after);
    EXPECT_EQ(after->state, HealthState::Up);
    EXPECT_GE(after->checks, before->checks);
    EXPECT_EQ(after->consecutive_ok, before->consecutive_ok);
    EXPECT_FALSE(hc->status(b.key)) << "a removed backend is forgotten";
    EXPECT_EQ(hc->state(c.key), HealthState::Unknown);
    ASSERT_TRUE(loop.until(c.key, HealthState::Down, 1s));
    for (size_t i = seen; i < loop.seen.size(); i++)
      EXPECT_NE(loop.seen[i].change.key, a.key) << "a kept backend changed state";
    // Bad input: refused whole, nothing changed.
    auto bad = target("not-an-address", 80, tcp_spec());
    auto st = hc->set_backends({a, bad});
    ASSERT_FALSE(st.ok());
    EXPECT_NE(st.error().message().find("'not-an-address' is not an IPv4 or IPv6 address"),
              std::string::npos)
        << st.error().message();
    EXPECT_TRUE(hc->status(c.key));
  });
}

// Checks in flight, replaced and finished: the checker leaves no fd open.
TEST_F(LbHealth, NoDescriptorLeaks) {
  auto lst = listener(kBe4, kTcpPort);
  auto silent = listener(kBe4, kSilentPort);
  gw_.within([&] {
    size_t before = open_fds();
    {
      auto hc = HealthChecker::create();
      ASSERT_TRUE(hc.ok()) << hc.error().what();
      Loop loop(*hc);
      HealthSpec fast = tcp_spec();
      fast.interval_ns = 20'000'000;
      fast.timeout_ns = 15'000'000;
      HealthSpec fast_http = fast;
      fast_http.check = HealthCheck::Http;
      std::vector<HealthTarget> ts = {target(kBe4, kTcpPort, fast), target(kBe4, kClosedPort, fast),
                                      target(kBe4, kSilentPort, fast_http),
                                      target(kNobody4, kTcpPort, fast)};
      for (int round = 0; round < 4; round++) {
        ASSERT_TRUE(
            hc->set_backends(round % 2 ? std::vector<HealthTarget>{ts[0], ts[2]} : ts).ok());
        loop.run(250ms, [] { return false; });
      }
      auto st = hc->status(ts[0].key);
      ASSERT_TRUE(st);
      EXPECT_GE(st->checks, 20u) << "checks every 20 ms for a second";
      ASSERT_TRUE(hc->set_backends({}).ok());
      EXPECT_EQ(open_fds(), before + 3) << "the checker's epoll and timerfd, the loop's epoll";
    }
    EXPECT_EQ(open_fds(), before);
  });
}

// The agent checks under its own seccomp filter (agent/seccomp.hpp): every
// call the checks make is allowed. In a forked child, so the test stays free.
TEST_F(LbHealth, ChecksWorkUnderTheAgentsSeccompFilter) {
  start_nginx();
  auto lst = listener(kBe4, kTcpPort);
  std::string report;
  gw_.within([&] {
    int p[2];
    ASSERT_EQ(pipe(p), 0);
    pid_t pid = fork();
    if (pid == 0) {
      close(p[0]);
      std::string out;
      if (auto r = agent::seccomp::install(); !r) {
        out = "install: " + r.error().what();
      } else if (auto hc = HealthChecker::create(); !hc) {
        out = hc.error().what();
      } else {
        std::vector<HealthTarget> ts = {target(kBe4, kTcpPort, tcp_spec()),
                                        target(kBe6, kHttpPort, http_spec("/ok")),
                                        target(kBe4, kClosedPort, tcp_spec())};
        (void)hc->set_backends(ts);
        Loop loop(*hc);
        loop.run(1s, [&] {
          return hc->state(ts[2].key) != HealthState::Unknown &&
                 hc->state(ts[1].key) != HealthState::Unknown &&
                 hc->state(ts[0].key) != HealthState::Unknown;
        });
        for (const auto &t : ts)
          out += fmt::format("{}: {}|", health_state_name(hc->state(t.key)),
                             hc->status(t.key)->last_reason);
      }
      (void)!write(p[1], out.data(), out.size());
      _exit(0);
    }
    close(p[1]);
    char buf[512];
    for (ssize_t n; (n = read(p[0], buf, sizeof(buf))) > 0;)
      report.append(buf, static_cast<size_t>(n));
    close(p[0]);
    int status = 0;
    waitpid(pid, &status, 0);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
  });
  for (const char *want : {"up: connected in ", "up: status 200 in ", "down: connect refused|"})
    EXPECT_TRUE(contains(report, want)) << want << " not in " << report;
  EXPECT_EQ(occurrences(report, "|"), 3u) << report;
}

TEST(LbHealthExpect, StatusMatching) {
  using features::lb::status_matches;
  EXPECT_TRUE(status_matches("200", 200));
  EXPECT_FALSE(status_matches("200", 204));
  EXPECT_TRUE(status_matches("2xx", 204));
  EXPECT_FALSE(status_matches("2xx", 301));
  EXPECT_TRUE(status_matches("200, 301", 301));
  EXPECT_TRUE(status_matches("", 302));
  EXPECT_FALSE(status_matches("", 500));
}

}  // namespace
}  // namespace bpfgate::test
