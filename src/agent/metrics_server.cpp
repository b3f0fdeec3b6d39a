// The /metrics endpoint: a small HTTP/1.1 server on one thread of its own,
// written for a port that may face hostile neighbours. cpp-httplib served it
// before with a pool of two threads that two idle connections stalled, and
// a POST without a body hung; what Prometheus needs (GET, one response per
// connection) is small enough to serve from one epoll loop that never waits
// on a client:
//   - GET and HEAD of /metrics and /; 405 for any other method, 404 elsewhere;
//   - a request head of at most 8 KiB (431 past it); a body is never read;
//   - each connection has 5 s from accept to its response sent, then goes;
//   - at most 256 connections: a new one evicts the oldest, so idle
//     connections (slowloris) cannot keep a scrape out.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <map>

#include <fmt/format.h>

#include "agent/metrics.hpp"
#include "bpf/fd.hpp"
#include "util/log.hpp"

namespace bpfgate::agent {

namespace {

using Clock = std::chrono::steady_clock;

constexpr size_t kMaxHeadBytes = 8 * 1024;
constexpr size_t kMaxConnections = 256;
constexpr auto kConnectionDeadline = std::chrono::seconds(5);

// address:port as a socket address; false if the address is not numeric.
bool to_sockaddr(const std::string &address, uint16_t port, sockaddr_storage &ss, socklen_t &len) {
  ss = {};
  auto *v4 = reinterpret_cast<sockaddr_in *>(&ss);
  auto *v6 = reinterpret_cast<sockaddr_in6 *>(&ss);
  if (inet_pton(AF_INET, address.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(port);
    len = sizeof(*v4);
    return true;
  }
  if (inet_pton(AF_INET6, address.c_str(), &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(port);
    len = sizeof(*v6);
    return true;
  }
  return false;
}

Result<bpf::UniqueFd> bound_socket(const std::string &address, uint16_t port) {
  sockaddr_storage ss;
  socklen_t len = 0;
  if (!to_sockaddr(address, port, ss, len))
    return make_error(EINVAL, "metrics.listen {} is not a numeric address", address);
  bpf::UniqueFd fd(socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  int one = 1;
  if (!fd.valid() || setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
      bind(fd.get(), reinterpret_cast<sockaddr *>(&ss), len) != 0)
    return make_error(errno,
                      "serve metrics on {}: cannot bind (in use, or not an address of this "
                      "host); change metrics.listen in the config or set it to off",
                      MetricsServer::host_port(address, port));
  return fd;
}

std::string response(int status, const char *reason, const std::string &type,
                     const std::string &body, bool head, const char *extra = "") {
  std::string r = fmt::format(
      "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\n{}Connection: close\r\n\r\n",
      status, reason, type, body.size(), extra);
  if (!head)
    r += body;
  return r;
}

}  // namespace

std::string MetricsServer::host_port(const std::string &address, uint16_t port) {
  return fmt::format("{}:{}",
                     address.find(':') != std::string::npos ? "[" + address + "]" : address, port);
}

struct MetricsServer::Impl {
  struct Conn {
    bpf::UniqueFd fd;
    Clock::time_point deadline;
    std::string in, out;
    size_t sent = 0;
  };

  bpf::UniqueFd listener, epoll, stop;
  std::function<std::string()> render;
  std::map<int, Conn> conns;

  void run();
  void accept_all();
  void close_conn(int fd) {
    epoll_ctl(epoll.get(), EPOLL_CTL_DEL, fd, nullptr);
    conns.erase(fd);
  }
  void on_readable(Conn &c);
  void flush(Conn &c);
  std::string answer(const std::string &head);
};

std::string MetricsServer::Impl::answer(const std::string &head) {
  auto eol = head.find("\r\n");
  std::string line = head.substr(0, eol);
  auto sp1 = line.find(' ');
  auto sp2 = sp1 == std::string::npos ? std::string::npos : line.find(' ', sp1 + 1);
  if (sp2 == std::string::npos)
    return response(400, "Bad Request", "text/plain", "bad request line\n", false);
  std::string method = line.substr(0, sp1);
  std::string path = line.substr(sp1 + 1, sp2 - sp1 - 1);
  if (auto q = path.find('?'); q != std::string::npos)
    path.resize(q);
  bool head_only = method == "HEAD";
  if (method != "GET" && !head_only)
    return response(405, "Method Not Allowed", "text/plain", "GET or HEAD only\n", false,
                    "Allow: GET, HEAD\r\n");
  if (path == "/metrics")
    return response(200, "OK", "text/plain; version=0.0.4; charset=utf-8", render(), head_only);
  if (path == "/")
    return response(200, "OK", "text/plain", "bpfgate agent: metrics at /metrics\n", head_only);
  return response(404, "Not Found", "text/plain", "not found: metrics at /metrics\n", head_only);
}

void MetricsServer::Impl::flush(Conn &c) {
  while (c.sent < c.out.size()) {
    ssize_t n =
        send(c.fd.get(), c.out.data() + c.sent, c.out.size() - c.sent, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0 && errno == EAGAIN) {
      epoll_event ev{.events = EPOLLOUT | EPOLLRDHUP, .data = {.fd = c.fd.get()}};
      epoll_ctl(epoll.get(), EPOLL_CTL_MOD, c.fd.get(), &ev);
      return;
    }
    if (n <= 0)
      break;
    c.sent += static_cast<size_t>(n);
  }
  close_conn(c.fd.get());  // all sent, or the peer went
}

void MetricsServer::Impl::on_readable(Conn &c) {
  char buf[4096];
  for (;;) {
    ssize_t n = recv(c.fd.get(), buf, sizeof(buf), MSG_DONTWAIT);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0 && errno == EAGAIN)
      break;
    if (n <= 0) {
      close_conn(c.fd.get());
      return;
    }
    c.in.append(buf, static_cast<size_t>(n));
    auto end = c.in.find("\r\n\r\n");
    if (end != std::string::npos || c.in.size() > kMaxHeadBytes) {
      c.out = end == std::string::npos || end > kMaxHeadBytes
                  ? response(431, "Request Header Fields Too Large", "text/plain",
                             "request head over 8 KiB\n", false)
                  : answer(c.in.substr(0, end));
      flush(c);
      return;
    }
  }
}

void MetricsServer::Impl::accept_all() {
  for (;;) {
    int fd = accept4(listener.get(), nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED)
        continue;
      if (errno != EAGAIN)
        log::warn("metrics: accept: {}", strerror(errno));  // EMFILE etc.: the next loop retries
      return;
    }
    if (conns.size() >= kMaxConnections) {
      auto oldest = std::min_element(conns.begin(), conns.end(), [](const auto &a, const auto &b) {
        return a.second.deadline < b.second.deadline;
      });
      close_conn(oldest->first);
    }
    epoll_event ev{.events = EPOLLIN | EPOLLRDHUP, .data = {.fd = fd}};
    if (epoll_ctl(epoll.get(), EPOLL_CTL_ADD, fd, &ev) != 0) {
      ::close(fd);
      continue;
    }
    conns.emplace(fd, Conn{bpf::UniqueFd(fd), Clock::now() + kConnectionDeadline, {}, {}, 0});
  }
}

void MetricsServer::Impl::run() {
  epoll_event events[64];
  for (;;) {
    auto now = Clock::now();
    for (auto it = conns.begin(); it != conns.end();) {
      auto next = std::next(it);
      if (it->second.deadline <= now)
        close_conn(it->first);
      it = next;
    }
    int timeout_ms = 1000;
    for (const auto &[fd, c] : conns)
      timeout_ms = std::min<int>(
          timeout_ms,
          static_cast<int>(
              std::chrono::duration_cast<std::chrono::milliseconds>(c.deadline - now).count()) +
              1);
    int n = epoll_wait(epoll.get(), events, 64, std::max(timeout_ms, 0));
    if (n < 0 && errno != EINTR) {
      log::error("metrics: epoll_wait: {}; /metrics stops", strerror(errno));
      return;
    }
    for (int i = 0; i < n; i++) {
      int fd = events[i].data.fd;
      if (fd == stop.get())
        return;
      if (fd == listener.get()) {
        accept_all();
        continue;
      }
      auto it = conns.find(fd);
      if (it == conns.end())
        continue;
      if (events[i].events & (EPOLLERR | EPOLLHUP))
        close_conn(fd);
      else if (!it->second.out.empty())
        flush(it->second);
      else
        on_readable(it->second);
    }
  }
}

Status MetricsServer::check_bindable(const std::string &address, uint16_t port) {
  auto fd = bound_socket(address, port);
  if (!fd)
    return fd.error();
  return {};
}

Result<std::unique_ptr<MetricsServer>> MetricsServer::start(const std::string &address,
                                                            uint16_t port,
                                                            std::function<std::string()> render) {
  std::unique_ptr<MetricsServer> m(new MetricsServer());
  m->impl_ = std::make_unique<Impl>();
  m->address_ = address;
  m->port_ = port;
  Impl &s = *m->impl_;
  s.render = std::move(render);
  auto fd = bound_socket(address, port);
  if (!fd)
    return fd.error();
  s.listener = std::move(*fd);
  if (listen(s.listener.get(), 128) != 0)
    return Error(errno, "serve metrics on " + host_port(address, port) + ": listen");
  s.epoll.reset(epoll_create1(EPOLL_CLOEXEC));
  s.stop.reset(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!s.epoll.valid() || !s.stop.valid())
    return Error(errno, "serve metrics: epoll/eventfd");
  for (int f : {s.listener.get(), s.stop.get()}) {
    epoll_event ev{.events = EPOLLIN, .data = {.fd = f}};
    if (epoll_ctl(s.epoll.get(), EPOLL_CTL_ADD, f, &ev) != 0)
      return Error(errno, "serve metrics: epoll_ctl");
  }
  m->thread_ = std::thread([impl = m->impl_.get()] { impl->run(); });
  return m;
}

MetricsServer::~MetricsServer() {
  if (impl_ && impl_->stop.valid()) {
    uint64_t one = 1;
    (void)!::write(impl_->stop.get(), &one, sizeof(one));
  }
  if (thread_.joinable())
    thread_.join();
}

}  // namespace bpfgate::agent
