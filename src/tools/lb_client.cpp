// bpfgate-lb-client: real TCP clients of a balanced service, for the load
// balancer's tests and benchmark. Each backend of the test answers its own
// name as the body (nginx `return 200 "b1\n"`), so the client learns which
// backend served each connection. Bounded in count and time.
//
//   spread: N connections, each one request (Connection: close), P threads;
//           prints {"backends": {"b1": n, ...}, "failed": k, ...}.
//   hold:   N keep-alive connections, one request each; then waits for a line
//           on stdin (or --hold-seconds) and sends a second request on each;
//           prints per backend how many connections answered both times and
//           how many broke.
//   rate:   new connections at --rate per second for --seconds; prints one JSON
//           line a second with that second's count per backend, and the
//           response latency.
#include <CLI/CLI.hpp>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <iostream>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

using Clock = std::chrono::steady_clock;

namespace {

struct Options {
  std::string mode = "spread";
  std::string target;  // ADDR:PORT or [ADDR]:PORT
  std::string path = "/";
  unsigned connections = 100;
  unsigned threads = 8;
  unsigned timeout_ms = 2000;
  double rate = 100;
  double seconds = 10;
  double hold_seconds = -1;  // < 0: wait for a line on stdin
  std::string bind;          // source address, optional
  unsigned port_base = 0;    // spread: connection k from source port port_base + k
};

struct Target {
  sockaddr_storage ss{};
  socklen_t len = 0;
  std::string host;
};

std::optional<Target> parse_target(const std::string &s) {
  Target t;
  std::string addr, port;
  if (!s.empty() && s[0] == '[') {
    auto close = s.find(']');
    if (close == std::string::npos || close + 1 >= s.size() || s[close + 1] != ':')
      return std::nullopt;
    addr = s.substr(1, close - 1), port = s.substr(close + 2);
  } else {
    auto colon = s.rfind(':');
    if (colon == std::string::npos)
      return std::nullopt;
    addr = s.substr(0, colon), port = s.substr(colon + 1);
  }
  int p = std::atoi(port.c_str());
  if (p <= 0 || p > 65535)
    return std::nullopt;
  auto *v4 = reinterpret_cast<sockaddr_in *>(&t.ss);
  auto *v6 = reinterpret_cast<sockaddr_in6 *>(&t.ss);
  if (inet_pton(AF_INET, addr.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET, v4->sin_port = htons(static_cast<uint16_t>(p));
    t.len = sizeof(*v4);
  } else if (inet_pton(AF_INET6, addr.c_str(), &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6, v6->sin6_port = htons(static_cast<uint16_t>(p));
    t.len = sizeof(*v6);
  } else {
    return std::nullopt;
  }
  t.host = s;
  return t;
}

// Waits for `events` on fd until the deadline; false on timeout or error.
bool wait_for(int fd, short events, Clock::time_point deadline) {
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (left.count() <= 0)
      return false;
    pollfd p{fd, events, 0};
    int n = poll(&p, 1, static_cast<int>(left.count()));
    if (n < 0 && errno == EINTR)
      continue;
    return n == 1 && !(p.revents & (POLLERR | POLLNVAL)) && (p.revents & (events | POLLHUP));
  }
}

class Conn {
 public:
  ~Conn() {
    if (fd_ >= 0)
      close(fd_);
  }
  Conn() = default;
  Conn(Conn &&o) noexcept : fd_(o.fd_), backend_(std::move(o.backend_)) { o.fd_ = -1; }
  Conn &operator=(Conn &&) = delete;

  bool open(const Target &t, const Options &o, Clock::time_point deadline, uint16_t sport = 0) {
    fd_ = socket(t.ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd_ < 0)
      return false;
    int one = 1;
    setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    setsockopt(fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if ((!o.bind.empty() || sport) && !bind_source(t.ss.ss_family, o.bind, sport))
      return false;
    if (connect(fd_, reinterpret_cast<const sockaddr *>(&t.ss), t.len) < 0 && errno != EINPROGRESS)
      return false;
    if (!wait_for(fd_, POLLOUT, deadline))
      return false;
    int err = 0;
    socklen_t len = sizeof(err);
    getsockopt(fd_, SOL_SOCKET, SO_ERROR, &err, &len);
    return err == 0;
  }

  // One request; the body (the backend's name) or nothing on failure.
  std::optional<std::string> request(const Target &t, const Options &o, bool keep_alive,
                                     Clock::time_point deadline) {
    std::string req = fmt::format("GET {} HTTP/1.1\r\nHost: {}\r\nConnection: {}\r\n\r\n", o.path,
                                  t.host, keep_alive ? "keep-alive" : "close");
    if (send(fd_, req.data(), req.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(req.size()))
      return std::nullopt;
    return read_response(deadline);
  }

 private:
  bool bind_source(int family, const std::string &addr, uint16_t port) {
    sockaddr_storage ss{};
    socklen_t len;
    if (family == AF_INET) {
      auto *v4 = reinterpret_cast<sockaddr_in *>(&ss);
      v4->sin_family = AF_INET, len = sizeof(*v4), v4->sin_port = htons(port);
      if (!addr.empty() && inet_pton(AF_INET, addr.c_str(), &v4->sin_addr) != 1)
        return false;
    } else {
      auto *v6 = reinterpret_cast<sockaddr_in6 *>(&ss);
      v6->sin6_family = AF_INET6, len = sizeof(*v6), v6->sin6_port = htons(port);
      if (!addr.empty() && inet_pton(AF_INET6, addr.c_str(), &v6->sin6_addr) != 1)
        return false;
    }
    return bind(fd_, reinterpret_cast<sockaddr *>(&ss), len) == 0;
  }

  // Status line, headers with Content-Length, body: the body trimmed.
  std::optional<std::string> read_response(Clock::time_point deadline) {
    std::string in;
    char buf[4096];
    for (;;) {
      auto head_end = in.find("\r\n\r\n");
      if (head_end != std::string::npos) {
        if (in.compare(0, 12, "HTTP/1.1 200") != 0)
          return std::nullopt;
        auto cl = in.find("Content-Length: ");
        if (cl == std::string::npos || cl > head_end)
          return std::nullopt;
        size_t body_len = std::strtoul(in.c_str() + cl + 16, nullptr, 10);
        if (in.size() >= head_end + 4 + body_len) {
          std::string body = in.substr(head_end + 4, body_len);
          while (!body.empty() && (body.back() == '\n' || body.back() == '\r'))
            body.pop_back();
          return body;
        }
      }
      if (in.size() > 64 * 1024 || !wait_for(fd_, POLLIN, deadline))
        return std::nullopt;
      ssize_t n = recv(fd_, buf, sizeof(buf), 0);
      if (n <= 0)
        return std::nullopt;
      in.append(buf, static_cast<size_t>(n));
    }
  }

  int fd_ = -1;
  std::string backend_;
};

struct Tally {
  std::mutex mu;
  std::map<std::string, uint64_t> backends;
  std::map<std::string, std::string> assign;  // source port -> backend (--port-base)
  uint64_t failed = 0;
  std::vector<double> latency_ms;

  void add(const std::optional<std::string> &backend, double ms) {
    std::lock_guard<std::mutex> l(mu);
    if (backend)
      backends[*backend]++, latency_ms.push_back(ms);
    else
      failed++;
  }
  nlohmann::json take() {
    std::lock_guard<std::mutex> l(mu);
    nlohmann::json j{{"backends", backends}, {"failed", failed}};
    if (!assign.empty())
      j["assign"] = assign;
    if (!latency_ms.empty()) {
      std::sort(latency_ms.begin(), latency_ms.end());
      j["latency_ms_p50"] = latency_ms[latency_ms.size() / 2];
      j["latency_ms_p99"] = latency_ms[latency_ms.size() * 99 / 100];
    }
    backends.clear(), failed = 0, latency_ms.clear(), assign.clear();
    return j;
  }
};

// One connection, one request: the backend that answered, or nothing.
std::optional<std::string> one_request(const Target &t, const Options &o, double &ms,
                                       uint16_t sport = 0) {
  auto start = Clock::now();
  auto deadline = start + std::chrono::milliseconds(o.timeout_ms);
  Conn c;
  std::optional<std::string> b;
  if (c.open(t, o, deadline, sport))
    b = c.request(t, o, false, deadline);
  ms = std::chrono::duration<double, std::milli>(Clock::now() - start).count();
  return b;
}

int spread(const Target &t, const Options &o) {
  Tally tally;
  std::atomic<unsigned> next{0};
  auto start = Clock::now();
  auto limit = start + std::chrono::duration<double>(o.seconds);
  std::vector<std::thread> workers;
  for (unsigned w = 0; w < std::max(1u, o.threads); w++)
    workers.emplace_back([&] {
      for (unsigned k; (k = next.fetch_add(1)) < o.connections && Clock::now() < limit;) {
        double ms;
        auto sport = static_cast<uint16_t>(o.port_base ? o.port_base + k : 0);
        auto b = one_request(t, o, ms, sport);
        tally.add(b, ms);
        if (sport && b) {
          std::lock_guard<std::mutex> l(tally.mu);
          tally.assign[std::to_string(sport)] = *b;
        }
      }
    });
  for (auto &w : workers)
    w.join();
  auto j = tally.take();
  j["elapsed_ms"] = std::chrono::duration<double, std::milli>(Clock::now() - start).count();
  std::cout << j.dump() << std::endl;
  return 0;
}

int hold(const Target &t, const Options &o) {
  std::vector<Conn> conns;
  std::vector<std::string> first;
  auto deadline = Clock::now() + std::chrono::duration<double>(o.seconds);
  uint64_t failed_open = 0;
  for (unsigned i = 0; i < o.connections && Clock::now() < deadline; i++) {
    Conn c;
    auto d = Clock::now() + std::chrono::milliseconds(o.timeout_ms);
    std::optional<std::string> b;
    if (c.open(t, o, d))
      b = c.request(t, o, true, d);
    if (!b) {
      failed_open++;
      continue;
    }
    first.push_back(*b);
    conns.push_back(std::move(c));
  }
  std::map<std::string, uint64_t> opened;
  for (const auto &b : first)
    opened[b]++;
  std::cout << nlohmann::json{{"opened", opened}, {"failed", failed_open}}.dump() << std::endl;
  if (o.hold_seconds >= 0) {
    std::this_thread::sleep_for(std::chrono::duration<double>(o.hold_seconds));
  } else {
    std::string line;
    std::getline(std::cin, line);
  }
  std::map<std::string, uint64_t> kept, broke, moved;
  for (size_t i = 0; i < conns.size(); i++) {
    auto d = Clock::now() + std::chrono::milliseconds(o.timeout_ms);
    auto b = conns[i].request(t, o, true, d);
    if (!b)
      broke[first[i]]++;
    else if (*b != first[i])
      moved[first[i]]++;  // cannot happen on one TCP connection; reported if it does
    else
      kept[first[i]]++;
  }
  std::cout << nlohmann::json{{"kept", kept}, {"broke", broke}, {"moved", moved}}.dump()
            << std::endl;
  return 0;
}

int rate(const Target &t, const Options &o) {
  Tally tally;
  auto start = Clock::now();
  auto end = start + std::chrono::duration<double>(o.seconds);
  std::atomic<uint64_t> issued{0};
  std::atomic<bool> done{false};
  std::vector<std::thread> workers;
  for (unsigned w = 0; w < std::max(1u, o.threads); w++)
    workers.emplace_back([&] {
      while (!done) {
        // Paced: connection k starts at start + k / rate.
        uint64_t k = issued.fetch_add(1);
        auto at = start + std::chrono::duration_cast<Clock::duration>(
                              std::chrono::duration<double>(static_cast<double>(k) / o.rate));
        if (at >= end)
          break;
        std::this_thread::sleep_until(at);
        double ms;
        auto b = one_request(t, o, ms);
        tally.add(b, ms);
      }
    });
  for (int s = 1; Clock::now() < end; s++) {
    std::this_thread::sleep_until(start + std::chrono::seconds(s));
    auto j = tally.take();
    j["second"] = s;
    std::cout << j.dump() << std::endl;
  }
  done = true;
  for (auto &w : workers)
    w.join();
  return 0;
}

}  // namespace

int main(int argc, char **argv) {
  Options o;
  CLI::App app{"bpfgate-lb-client: bounded HTTP clients of a balanced service"};
  app.add_option("mode", o.mode, "spread, hold or rate")
      ->check(CLI::IsMember({"spread", "hold", "rate"}));
  app.add_option("--target", o.target, "ADDR:PORT or [ADDR]:PORT")->required();
  app.add_option("--path", o.path, "request path");
  app.add_option("--connections,-n", o.connections, "connections (spread, hold)");
  app.add_option("--threads,-t", o.threads, "parallel clients");
  app.add_option("--timeout-ms", o.timeout_ms, "per connection and request");
  app.add_option("--rate", o.rate, "new connections per second (rate)")
      ->check(CLI::Range(1.0, 1e6));
  app.add_option("--seconds", o.seconds, "upper bound of the run (every mode)")
      ->check(CLI::Range(0.1, 3600.0));
  app.add_option("--hold-seconds", o.hold_seconds,
                 "hold: seconds before the second request (default: a line on stdin)");
  app.add_option("--bind", o.bind, "source address");
  app.add_option("--port-base", o.port_base,
                 "spread: connection k from source port PORT_BASE + k (the same flows again)")
      ->check(CLI::Range(1024u, 60000u));
  CLI11_PARSE(app, argc, argv);
  auto t = parse_target(o.target);
  if (!t) {
    std::cerr << "bpfgate-lb-client: bad --target '" << o.target << "' (ADDR:PORT)\n";
    return 2;
  }
  if (o.mode == "hold")
    return hold(*t, o);
  if (o.mode == "rate")
    return rate(*t, o);
  return spread(*t, o);
}
