// The agent's control socket (`bpfgate reload`, `bpfgate events`): one
// agent per socket, 0600 from bind, non-blocking clients with a deadline,
// each request checked with SO_PEERCRED and its changes audited as the peer's.
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <filesystem>

#include "agent/control_request.hpp"
#include "agent/daemon.hpp"
#include "util/audit.hpp"
#include "util/log.hpp"
#include "util/text.hpp"

namespace bpfgate::agent {

Status Daemon::open_control_socket(const std::string &path) {
  if (path.size() >= sizeof(sockaddr_un::sun_path))
    return make_error(ENAMETOOLONG, "control socket path {} is too long", path);
  std::error_code ec;
  std::filesystem::create_directories(std::filesystem::path(path).parent_path(), ec);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, path.c_str(), sizeof(addr.sun_path) - 1);
  // A socket left by an agent that was killed is removed, but only a socket,
  // and only if nobody answers on it.
  struct stat st {};
  if (lstat(path.c_str(), &st) == 0) {
    if (!S_ISSOCK(st.st_mode))
      return make_error(EEXIST, "control socket path {} exists and is not a socket; not touched",
                        path);
    bpf::UniqueFd probe(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (probe.valid() &&
        connect(probe.get(), reinterpret_cast<sockaddr *>(&addr), sizeof(addr)) == 0)
      return make_error(EADDRINUSE,
                        "another agent answers on {}: one agent per control socket (stop it, or "
                        "set agent.control_socket)",
                        path);
    ::unlink(path.c_str());
  }
  control_.reset(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  // Made 0600 by bind itself (umask), not chmod-ed after: no window in which
  // another user could connect.
  mode_t old_mask = ::umask(0177);
  bool bound = control_.valid() &&
               bind(control_.get(), reinterpret_cast<sockaddr *>(&addr), sizeof(addr)) == 0;
  int bind_errno = errno;
  ::umask(old_mask);
  if (!bound || listen(control_.get(), 8) != 0)
    return Error(bound ? errno : bind_errno, "listen on control socket " + path);
  control_path_ = path;
  return watch(control_.get());
}

namespace {
constexpr size_t kMaxControlClients = 64;
constexpr auto kControlDeadline = std::chrono::seconds(2);
}  // namespace

void Daemon::accept_control() {
  for (;;) {
    int c = accept4(control_.get(), nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (c < 0) {
      if (errno == EINTR || errno == ECONNABORTED)
        continue;
      if (errno != EAGAIN) {
        // Out of descriptors or memory: stop accepting for 100 ms rather than
        // spin on a listener that stays readable.
        log::warn("control socket: accept: {}; pausing 100 ms", strerror(errno));
        epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, control_.get(), nullptr);
        control_resume_ = std::chrono::steady_clock::now() + std::chrono::milliseconds(100);
      }
      return;
    }
    if (control_clients_.size() >= kMaxControlClients) {
      auto oldest = std::min_element(
          control_clients_.begin(), control_clients_.end(),
          [](const auto &a, const auto &b) { return a.second.deadline < b.second.deadline; });
      drop_control_client(oldest->first);
    }
    bpf::UniqueFd fd(c);
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLRDHUP;
    ev.data.fd = c;
    if (epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, c, &ev) != 0)
      continue;
    control_clients_.emplace(
        c, ControlClient{std::move(fd), {}, std::chrono::steady_clock::now() + kControlDeadline});
  }
}

void Daemon::drop_control_client(int fd) {
  epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, fd, nullptr);
  control_clients_.erase(fd);
}

int Daemon::expire_control_clients() {
  auto now = std::chrono::steady_clock::now();
  if (control_resume_ && now >= *control_resume_) {
    control_resume_.reset();
    (void)watch(control_.get());
  }
  int timeout = -1;
  for (auto it = control_clients_.begin(); it != control_clients_.end();) {
    auto next = std::next(it);
    if (it->second.deadline <= now) {
      drop_control_client(it->first);  // said nothing in time
    } else {
      auto ms =
          std::chrono::duration_cast<std::chrono::milliseconds>(it->second.deadline - now).count() +
          1;
      timeout = timeout < 0 ? static_cast<int>(ms) : std::min(timeout, static_cast<int>(ms));
    }
    it = next;
  }
  if (control_resume_)
    timeout = timeout < 0 ? 100 : std::min(timeout, 100);
  return timeout;
}

void Daemon::on_control_client(int fd) {
  auto &cl = control_clients_.at(fd);
  char buf[kMaxControlLine];
  ssize_t n;
  while ((n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT)) > 0) {
    cl.in.append(buf, static_cast<size_t>(n));
    if (control_request_complete(cl.in))
      break;
  }
  if (n < 0 && (errno == EAGAIN || errno == EINTR) && !control_request_complete(cl.in))
    return;  // more to come, within its deadline
  if (n == 0 && cl.in.empty()) {
    drop_control_client(fd);  // connected and left (a liveness probe)
    return;
  }
  answer_control(fd, control_request_line(cl.in));
}

bool Daemon::offer_control_client(int fd, ControlVerb verb, const std::string &cmd) {
  auto &conn = control_clients_.at(fd).fd;
  for (auto &f : features_) {
    if (!f->take_client(verb, conn, cmd))
      continue;
    drop_control_client(fd);  // out of the loop; the feature holds the connection now
    return true;
  }
  return false;
}

void Daemon::answer_control(int fd, const std::string &cmd) {
  // Who asks, from the kernel (SO_PEERCRED): logged with what changes, and
  // only root is served (the socket is 0600 root's; this holds if it is not).
  ucred peer{};
  socklen_t plen = sizeof(peer);
  bool known_peer = getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &peer, &plen) == 0;
  std::string who = known_peer ? fmt::format("uid {} pid {}", peer.uid, peer.pid) : "unknown peer";
  std::string by = known_peer ? audit::by_peer(peer.uid, peer.pid) : "unknown";
  std::string reply;
  ControlVerb verb = control_verb(cmd);
  if (!known_peer || peer.uid != 0) {
    reply = "error permission denied: the agent serves root only\n";
    log::warn("control: refused '{}' from {}", util::excerpt(cmd), who);
  } else if (verb == ControlVerb::reload) {
    auto st = reload(by);
    if (st) {
      reply = "ok reloaded " + opts_.config_path + "\n";
    } else {
      reply = "error " + st.error().what() + "\n";
      log::error("reload refused, the running policy stays: {}", st.error().what());
    }
  } else if (verb == ControlVerb::ping) {
    reply = "ok\n";
  } else if (offer_control_client(fd, verb, cmd)) {
    return;
  } else {
    reply = unknown_control_reply(cmd);
  }
  // A reply fits the socket's buffer; one that does not is cut, never waited for.
  (void)!send(fd, reply.data(), reply.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
  drop_control_client(fd);
}

}  // namespace bpfgate::agent
