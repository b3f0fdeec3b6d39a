// cpp-httplib (Debian's libcpp-httplib-dev, a shared library) stays in this
// one translation unit: it is large and slow to compile.
#include <arpa/inet.h>
#include <httplib.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <fmt/format.h>

#include "bpf/fd.hpp"

#include "agent/metrics.hpp"
#include "util/log.hpp"

namespace bpfgate::agent {

struct MetricsServer::Impl {
  httplib::Server server;
};

Result<std::unique_ptr<MetricsServer>> MetricsServer::start(const std::string &address,
                                                            uint16_t port,
                                                            std::function<std::string()> render) {
  std::unique_ptr<MetricsServer> m(new MetricsServer());
  m->impl_ = std::make_unique<Impl>();
  m->address_ = address;
  m->port_ = port;
  auto &srv = m->impl_->server;
  srv.new_task_queue = [] { return new httplib::ThreadPool(2); };
  srv.set_tcp_nodelay(true);
  srv.set_keep_alive_max_count(100);
  srv.set_read_timeout(5, 0);
  srv.set_write_timeout(5, 0);
  srv.Get("/metrics", [render](const httplib::Request &, httplib::Response &res) {
    res.set_content(render(), "text/plain; version=0.0.4; charset=utf-8");
  });
  srv.Get("/", [](const httplib::Request &, httplib::Response &res) {
    res.set_content("bpfgate agent: metrics at /metrics\n", "text/plain");
  });
  if (!srv.bind_to_port(address, port))
    return make_error(errno ? errno : EADDRINUSE,
                      "serve metrics on {}:{}: cannot bind (in use, or not an address of this "
                      "host); change metrics.listen in the config or set it to off",
                      address.find(':') != std::string::npos ? "[" + address + "]" : address, port);
  m->thread_ = std::thread([s = &srv] { s->listen_after_bind(); });
  return m;
}

namespace {
std::string host_port(const std::string &address, uint16_t port) {
  return fmt::format("{}:{}",
                     address.find(':') != std::string::npos ? "[" + address + "]" : address, port);
}
}  // namespace

Status MetricsServer::check_bindable(const std::string &address, uint16_t port) {
  sockaddr_storage ss{};
  socklen_t len = 0;
  auto *v4 = reinterpret_cast<sockaddr_in *>(&ss);
  auto *v6 = reinterpret_cast<sockaddr_in6 *>(&ss);
  if (inet_pton(AF_INET, address.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(port);
    len = sizeof(*v4);
  } else if (inet_pton(AF_INET6, address.c_str(), &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(port);
    len = sizeof(*v6);
  } else {
    return make_error(EINVAL, "metrics.listen {} is not a numeric address", address);
  }
  bpf::UniqueFd fd(socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0));
  int one = 1;
  if (!fd.valid() || setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
      bind(fd.get(), reinterpret_cast<sockaddr *>(&ss), len) != 0)
    return make_error(errno,
                      "serve metrics on {}: cannot bind (in use, or not an address of this "
                      "host); change metrics.listen in the config or set it to off",
                      host_port(address, port));
  return {};
}

MetricsServer::~MetricsServer() {
  if (impl_)
    impl_->server.stop();
  if (thread_.joinable())
    thread_.join();
}

}  // namespace bpfgate::agent
