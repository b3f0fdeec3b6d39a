#include "features/lb/health.hpp"

#include <arpa/inet.h>
#include <sys/epoll.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <cstring>
#include <limits>
#include <utility>

#include <fmt/format.h>

namespace bpfgate::features::lb {
namespace {

constexpr size_t kMaxStatusLine = 1024;
constexpr uint64_t kNever = std::numeric_limits<uint64_t>::max();

uint64_t now_ns() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1'000'000'000ULL + static_cast<uint64_t>(ts.tv_nsec);
}

double ms(uint64_t ns) {
  return static_cast<double>(ns) / 1e6;
}

uint16_t check_port(const HealthTarget &t) {
  return t.check_port.value_or(t.port);
}

Status parse_address(const HealthTarget &t, sockaddr_storage &ss, socklen_t &len) {
  ss = {};
  auto *v4 = reinterpret_cast<sockaddr_in *>(&ss);
  auto *v6 = reinterpret_cast<sockaddr_in6 *>(&ss);
  if (inet_pton(AF_INET, t.address.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(check_port(t));
    len = sizeof(*v4);
  } else if (inet_pton(AF_INET6, t.address.c_str(), &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(check_port(t));
    len = sizeof(*v6);
  } else {
    return make_error(EINVAL, "health check of {}: '{}' is not an IPv4 or IPv6 address", t.key,
                      t.address);
  }
  if (check_port(t) == 0)
    return make_error(EINVAL, "health check of {}: no port to check", t.key);
  return {};
}

std::string http_request(const HealthTarget &t) {
  bool v6 = t.address.find(':') != std::string::npos;
  std::string host = v6 ? "[" + t.address + "]" : t.address;
  if (check_port(t) != 80)
    host += fmt::format(":{}", check_port(t));
  return fmt::format(
      "GET {} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nUser-Agent: bpfgate-health\r\n\r\n",
      t.spec.path.empty() ? "/" : t.spec.path, host);
}

// What an operator reads of a failed connect, send or receive.
std::string errno_reason(int err, const char *what) {
  switch (err) {
    case ECONNREFUSED:
      return "connect refused";
    case ECONNRESET:
      return "connection reset";
    case EHOSTUNREACH:
      return "no route to host";
    case ENETUNREACH:
      return "network unreachable";
    default:
      return fmt::format("{}: {}", what, strerror(err));
  }
}

// "HTTP/1.1 503 Service Unavailable" -> 503.
std::optional<int> parse_status_line(const std::string &line) {
  if (line.rfind("HTTP/", 0) != 0)
    return std::nullopt;
  size_t sp = line.find(' ');
  if (sp == std::string::npos || line.size() < sp + 4)
    return std::nullopt;
  int code = 0;
  const char *b = line.data() + sp + 1;
  auto [p, ec] = std::from_chars(b, b + 3, code);
  if (ec != std::errc() || p != b + 3 || code < 100 || code > 999)
    return std::nullopt;
  return code;
}

bool same_check(const HealthTarget &a, const HealthTarget &b) {
  return a.address == b.address && check_port(a) == check_port(b) && a.spec.check == b.spec.check &&
         a.spec.path == b.spec.path && a.spec.timeout_ns == b.spec.timeout_ns;
}

}  // namespace

const char *health_state_name(HealthState s) {
  switch (s) {
    case HealthState::Up:
      return "up";
    case HealthState::Down:
      return "down";
    default:
      return "unknown";
  }
}

bool status_matches(const std::string &expect, int status) {
  if (expect.empty())
    return status >= 200 && status < 400;
  size_t pos = 0;
  while (pos <= expect.size()) {
    size_t end = std::min(expect.find(',', pos), expect.size());
    std::string tok = expect.substr(pos, end - pos);
    tok.erase(0, tok.find_first_not_of(' '));
    tok.erase(tok.find_last_not_of(' ') + 1);
    if (tok.size() == 3 && (tok[1] == 'x' || tok[1] == 'X') && tok[2] == tok[1] &&
        tok[0] == static_cast<char>('0' + status / 100))
      return true;
    int code = 0;
    auto [p, ec] = std::from_chars(tok.data(), tok.data() + tok.size(), code);
    if (ec == std::errc() && p == tok.data() + tok.size() && code == status)
      return true;
    pos = end + 1;
  }
  return false;
}

HealthChecker::HealthChecker(bpf::UniqueFd epoll, bpf::UniqueFd timer)
    : epoll_(std::move(epoll)), timer_(std::move(timer)) {}

Result<HealthChecker> HealthChecker::create() {
  bpf::UniqueFd ep(epoll_create1(EPOLL_CLOEXEC));
  if (!ep.valid())
    return make_error(errno, "health checks: epoll_create1");
  bpf::UniqueFd tfd(timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC));
  if (!tfd.valid())
    return make_error(errno, "health checks: timerfd_create");
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.fd = tfd.get();
  if (epoll_ctl(ep.get(), EPOLL_CTL_ADD, tfd.get(), &ev) != 0)
    return make_error(errno, "health checks: epoll_ctl");
  return HealthChecker(std::move(ep), std::move(tfd));
}

Status HealthChecker::set_backends(const std::vector<HealthTarget> &targets) {
  std::vector<std::pair<sockaddr_storage, socklen_t>> addrs(targets.size());
  for (size_t i = 0; i < targets.size(); i++)
    if (auto st = parse_address(targets[i], addrs[i].first, addrs[i].second); !st)
      return st;
  uint64_t now = now_ns();
  std::map<std::string, Backend> next;
  for (size_t i = 0; i < targets.size(); i++) {
    const HealthTarget &t = targets[i];
    auto old = backends_.find(t.key);
    bool kept = old != backends_.end();
    Backend b = kept ? std::move(old->second) : Backend{};
    if (kept)
      backends_.erase(old);
    if (kept && !same_check(b.target, t) && b.phase != Backend::Phase::Idle) {
      by_fd_.erase(b.sock.get());
      b.sock.reset();
      b.phase = Backend::Phase::Idle;
      b.next_due_ns = now;
    }
    if (!kept) {
      b.status.key = t.key;
      b.next_due_ns = now;
    }
    b.target = t;
    std::tie(b.addr, b.addr_len) = addrs[i];
    if (t.spec.check == HealthCheck::None && b.status.state != HealthState::Up) {
      changes_.push_back({t.key, b.status.state, HealthState::Up, "no health check"});
      b.status.state = HealthState::Up;
    }
    next.emplace(t.key, std::move(b));
  }
  for (auto &[key, b] : backends_)  // removed: their checks in flight go
    by_fd_.erase(b.sock.get());
  backends_ = std::move(next);
  run_due(now);
  arm_timer();
  return {};
}

void HealthChecker::on_readable(int fd) {
  if (fd != epoll_.get())
    return;
  epoll_event evs[64];
  int n = epoll_wait(epoll_.get(), evs, 64, 0);
  uint64_t now = now_ns();
  for (int i = 0; i < n; i++) {
    int efd = evs[i].data.fd;
    if (efd == timer_.get()) {
      uint64_t ticks;
      (void)!read(efd, &ticks, sizeof(ticks));
      continue;
    }
    auto key = by_fd_.find(efd);
    if (key == by_fd_.end())
      continue;
    auto b = backends_.find(key->second);
    if (b != backends_.end())
      advance(b->second, evs[i].events, now);
  }
  run_due(now_ns());
  arm_timer();
}

void HealthChecker::run_due(uint64_t now) {
  for (auto &[key, b] : backends_) {
    if (b.phase != Backend::Phase::Idle && now >= b.deadline_ns)
      finish(b, false,
             fmt::format("timeout after {:g} ms ({})", ms(b.target.spec.timeout_ns),
                         b.phase == Backend::Phase::Connecting ? "connect" : "response"),
             now);
    if (b.phase == Backend::Phase::Idle && b.target.spec.check != HealthCheck::None &&
        now >= b.next_due_ns)
      start_check(b, now);
  }
}

std::vector<HealthChange> HealthChecker::take_changes() {
  return std::exchange(changes_, {});
}

std::vector<HealthStatus> HealthChecker::status() const {
  std::vector<HealthStatus> out;
  for (const auto &[key, b] : backends_)
    out.push_back(b.status);
  return out;
}

std::optional<HealthStatus> HealthChecker::status(const std::string &key) const {
  auto b = backends_.find(key);
  if (b == backends_.end())
    return std::nullopt;
  return b->second.status;
}

HealthState HealthChecker::state(const std::string &key) const {
  auto b = backends_.find(key);
  return b == backends_.end() ? HealthState::Unknown : b->second.status.state;
}

void HealthChecker::arm_timer() {
  uint64_t at = kNever;
  for (const auto &[key, b] : backends_) {
    if (b.phase != Backend::Phase::Idle)
      at = std::min(at, b.deadline_ns);
    else if (b.target.spec.check != HealthCheck::None)
      at = std::min(at, b.next_due_ns);
  }
  itimerspec its{};
  if (at != kNever) {
    at = std::max<uint64_t>(at, 1);
    its.it_value.tv_sec = static_cast<time_t>(at / 1'000'000'000ULL);
    its.it_value.tv_nsec = static_cast<long>(at % 1'000'000'000ULL);
  }
  timerfd_settime(timer_.get(), TFD_TIMER_ABSTIME, &its, nullptr);
}

void HealthChecker::start_check(Backend &b, uint64_t now) {
  const HealthSpec &spec = b.target.spec;
  b.started_ns = now;
  b.deadline_ns = now + spec.timeout_ns;
  // On the backend's own schedule, not drifting by the loop's wake-up delays.
  b.next_due_ns = std::max(b.next_due_ns + spec.interval_ns, now);
  b.reply.clear();
  b.sent = 0;
  b.request = spec.check == HealthCheck::Http ? http_request(b.target) : "";
  b.sock.reset(::socket(b.addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!b.sock.valid())
    return finish(b, false, fmt::format("socket: {}", strerror(errno)), now);
  // Closed with a reset once the result is known: no TIME_WAIT piles up in
  // the agent however many backends it checks.
  linger lg{.l_onoff = 1, .l_linger = 0};
  setsockopt(b.sock.get(), SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
  b.phase = Backend::Phase::Connecting;
  if (::connect(b.sock.get(), reinterpret_cast<const sockaddr *>(&b.addr), b.addr_len) == 0)
    return connected(b, now);
  if (errno != EINPROGRESS)
    return finish(b, false, errno_reason(errno, "connect"), now);
  watch(b, EPOLLOUT, now);
}

// Registers (or changes) the check socket's events in the checker's epoll.
bool HealthChecker::watch(Backend &b, uint32_t events, uint64_t now) {
  epoll_event ev{};
  ev.events = events;
  ev.data.fd = b.sock.get();
  bool known = by_fd_.count(b.sock.get()) != 0;
  if (epoll_ctl(epoll_.get(), known ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, b.sock.get(), &ev) != 0) {
    finish(b, false, fmt::format("epoll_ctl: {}", strerror(errno)), now);
    return false;
  }
  by_fd_[b.sock.get()] = b.target.key;
  return true;
}

void HealthChecker::advance(Backend &b, uint32_t events, uint64_t now) {
  switch (b.phase) {
    case Backend::Phase::Connecting: {
      int err = 0;
      socklen_t len = sizeof(err);
      if (getsockopt(b.sock.get(), SOL_SOCKET, SO_ERROR, &err, &len) != 0)
        err = errno;
      if (err == 0 && (events & (EPOLLERR | EPOLLHUP)) != 0)
        err = ECONNRESET;
      if (err != 0)
        return finish(b, false, errno_reason(err, "connect"), now);
      return connected(b, now);
    }
    case Backend::Phase::Sending:
      return send_more(b, now);
    case Backend::Phase::Reading:
      return read_more(b, now);
    default:
      return;
  }
}

void HealthChecker::connected(Backend &b, uint64_t now) {
  if (b.target.spec.check == HealthCheck::Tcp)
    return finish(b, true, fmt::format("connected in {:.1f} ms", ms(now - b.started_ns)), now);
  b.phase = Backend::Phase::Sending;
  send_more(b, now);
}

void HealthChecker::send_more(Backend &b, uint64_t now) {
  while (b.sent < b.request.size()) {
    ssize_t n = ::send(b.sock.get(), b.request.data() + b.sent, b.request.size() - b.sent,
                       MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n < 0 && errno == EAGAIN) {
      watch(b, EPOLLOUT, now);
      return;
    }
    if (n < 0)
      return finish(b, false, errno_reason(errno, "send"), now);
    b.sent += static_cast<size_t>(n);
  }
  b.phase = Backend::Phase::Reading;
  if (watch(b, EPOLLIN, now))
    read_more(b, now);  // level-triggered anyway; an early answer is read now
}

void HealthChecker::read_more(Backend &b, uint64_t now) {
  char buf[512];
  for (;;) {
    ssize_t n = ::recv(b.sock.get(), buf, sizeof(buf), MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
      return;
    if (n < 0)
      return finish(b, false, errno_reason(errno, "receive"), now);
    if (n == 0)
      return finish(b, false, b.reply.empty() ? "closed without a response" : "no HTTP status line",
                    now);
    b.reply.append(buf, static_cast<size_t>(n));
    size_t eol = b.reply.find("\r\n");
    if (eol == std::string::npos && b.reply.size() < kMaxStatusLine)
      continue;
    auto code = parse_status_line(b.reply.substr(0, std::min(eol, kMaxStatusLine)));
    if (!code)
      return finish(b, false, "no HTTP status line", now);
    const std::string &expect = b.target.spec.expect;
    if (!status_matches(expect, *code))
      return finish(b, false, fmt::format("status {} (expect {})", *code, expect), now);
    return finish(b, true, fmt::format("status {} in {:.1f} ms", *code, ms(now - b.started_ns)),
                  now);
  }
}

void HealthChecker::finish(Backend &b, bool ok, std::string reason, uint64_t now) {
  if (b.sock.valid()) {
    epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, b.sock.get(), nullptr);
    by_fd_.erase(b.sock.get());
    b.sock.reset();
  }
  b.phase = Backend::Phase::Idle;
  b.status.last_duration_ns = now - b.started_ns;
  record(b, ok, reason);
}

// The rise/fall state machine (health.hpp).
void HealthChecker::record(Backend &b, bool ok, const std::string &reason) {
  HealthStatus &s = b.status;
  s.checks++;
  s.failures += ok ? 0 : 1;
  s.consecutive_ok = ok ? s.consecutive_ok + 1 : 0;
  s.consecutive_failed = ok ? 0 : s.consecutive_failed + 1;
  s.last_ok = ok;
  s.last_reason = reason;
  HealthState next = s.state;
  if (s.state == HealthState::Unknown)
    next = ok ? HealthState::Up : HealthState::Down;
  else if (s.state == HealthState::Up && !ok && s.consecutive_failed >= b.target.spec.fall)
    next = HealthState::Down;
  else if (s.state == HealthState::Down && ok && s.consecutive_ok >= b.target.spec.rise)
    next = HealthState::Up;
  if (next != s.state)
    changes_.push_back({s.key, s.state, next, reason});
  s.state = next;
}

}  // namespace bpfgate::features::lb
