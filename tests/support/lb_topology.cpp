#include "support/lb_topology.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include <fmt/format.h>

namespace bpfgate::test {

namespace {

// A veth takes redirected (and XDP_TX) frames from its peer only while its
// NAPI runs: an XDP program of its own on the receiving end.
void give_napi(const Netns &ns, const std::string &dev) {
  run_ok(ns.exec() + fmt::format("ip link set dev {} xdpdrv obj {}/xdp_pass.bpf.o sec xdp", dev,
                                 BPFGATE_BPF_DIR));
}

// Frames as they come from a wire: with their checksums complete. A local
// sender on veth leaves TCP/UDP checksums partial (offloaded to a device that
// never computes them), which XDP cannot tell; the balancer's rewrite of a
// partial checksum makes it wrong (README: the load balancer's limits).
void full_checksums(const Netns &ns, const std::string &dev) {
  run_ok(ns.exec() + fmt::format("ethtool -K {} tx off", dev) + " >/dev/null");
}

void enable_v6(const Netns &ns, const std::string &dev, const std::string &addr) {
  run_ok(ns.exec() + fmt::format("sysctl -qw net.ipv6.conf.{}.disable_ipv6=0", dev));
  run_ok(ns.exec() + fmt::format("ip -6 addr add {} dev {} nodad", addr, dev));
}

std::string nginx_conf(const std::string &dir, const std::string &name, const std::string &v4,
                       const std::string &v6) {
  return fmt::format(R"(daemon off;
worker_processes 1;
pid {0}/nginx.pid;
error_log {0}/nginx-error.log warn;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  client_body_temp_path {0}; proxy_temp_path {0}; fastcgi_temp_path {0};
  uwsgi_temp_path {0}; scgi_temp_path {0};
  keepalive_timeout 120s;
  keepalive_requests 100000;
  server {{
    listen {2}:80 backlog=4096;
    listen [{3}]:80 backlog=4096;
    location / {{ default_type text/plain; return 200 "{1}\n"; }}
  }}
}}
)",
                     dir, name, v4, v6);
}

// True once something accepts on addr:80 in ns (bounded: 5 s).
bool wait_listening(const Netns &ns, const std::string &addr) {
  for (int i = 0; i < 100; i++) {
    if (run(ns.exec() + fmt::format("ss -Htln 'sport = :80' | grep -q '{}'", addr)).exit_code == 0)
      return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return false;
}

}  // namespace

std::string lb_client_bin() {
  return BPFGATE_LB_CLIENT;
}

LbTopology::LbTopology(int backends) {
  const auto &gw = pair_.gw();
  const auto &cl = pair_.peer();
  run_ok(gw.exec() + "sysctl -qw net.ipv4.ip_forward=1");
  run_ok(gw.exec() + "sysctl -qw net.ipv6.conf.all.forwarding=1");
  enable_v6(gw, pair_.gw_if(), "2001:db8::1/64");
  enable_v6(cl, pair_.peer_if(), "2001:db8::2/64");
  run_ok(cl.exec() + fmt::format("ip route add 198.18.20.0/24 via {}", GatewayPair::kGatewayAddr));
  run_ok(cl.exec() + "ip -6 route add 2001:db8:20::/64 via 2001:db8::1");
  give_napi(cl, pair_.peer_if());
  full_checksums(cl, pair_.peer_if());
  for (int i = 0; i < backends; i++)
    add_backend();
}

LbTopology::~LbTopology() {
  for (size_t i = 0; i < backends_.size(); i++)
    kill_nginx(i);
}

std::string LbTopology::addr4(size_t i) const {
  return fmt::format("198.18.{}.2", 11 + i);
}

std::string LbTopology::addr6(size_t i) const {
  return fmt::format("2001:db8:{}::2", 11 + i);
}

std::string LbTopology::gw_ifs_yaml() const {
  std::string s = "[";
  for (size_t i = 0; i < backends_.size(); i++)
    s += (i ? ", " : "") + backends_[i]->gw_if;
  return s + "]";
}

void LbTopology::wire(Backend &b, size_t i) {
  const auto &gw = pair_.gw();
  make_veth(gw, b.gw_if, fmt::format("198.18.{}.1/24", 11 + i), *b.ns, b.b_if, addr4(i) + "/24");
  enable_v6(gw, b.gw_if, fmt::format("2001:db8:{}::1/64", 11 + i));
  enable_v6(*b.ns, b.b_if, addr6(i) + "/64");
  run_ok(b.ns->exec() + "ip link set lo up");
  // The client's network is reached through the gateway, as a backend behind a
  // balancer sees it; nothing else is routed.
  run_ok(b.ns->exec() +
         fmt::format("ip route add 198.18.0.0/24 via 198.18.{}.1 dev {}", 11 + i, b.b_if));
  run_ok(b.ns->exec() +
         fmt::format("ip -6 route add 2001:db8::/64 via 2001:db8:{}::1 dev {}", 11 + i, b.b_if));
  give_napi(*b.ns, b.b_if);
  full_checksums(*b.ns, b.b_if);
}

size_t LbTopology::add_backend() {
  size_t i = backends_.size();
  auto b = std::make_unique<Backend>();
  std::string base = fmt::format("{}lb{}", pair_.gw_if(), i + 1);
  b->ns = std::make_unique<Netns>(base + "ns");
  b->gw_if = base + "g";
  b->b_if = base + "b";
  b->dir = std::make_unique<ScratchDir>(base + "-nginx");
  wire(*b, i);
  backends_.push_back(std::move(b));
  start_nginx(i);
  return i;
}

void LbTopology::start_nginx(size_t i) {
  auto &b = *backends_[i];
  b.nginx.reset();
  std::string d = b.dir->string();
  std::ofstream(b.dir->file("nginx.conf")) << nginx_conf(d, name(i), addr4(i), addr6(i));
  b.nginx.emplace(Process::spawn("exec " + b.ns->exec() + "nginx -e " + d + "/nginx-error.log -p " +
                                 d + " -c " + d + "/nginx.conf"));
  EXPECT_TRUE(wait_listening(*b.ns, addr4(i)))
      << "nginx of " << name(i) << " did not listen: " << read_file(d + "/nginx-error.log");
}

void LbTopology::kill_nginx(size_t i) {
  auto &b = *backends_[i];
  // Every process of the backend's namespace (nginx's master and its worker,
  // whose command line does not name the config): SIGKILL, so every
  // connection dies with them.
  run("ip netns pids " + b.ns->name() + " | xargs -r kill -KILL");
  b.nginx.reset(), b.slow.reset();
}

void LbTopology::use_slow_backend(size_t i) {
  kill_nginx(i);
  auto &b = *backends_[i];
  std::string bin = std::filesystem::path(bpfgate_bin()).parent_path() / "bpfgate-slow-backend";
  b.slow.emplace(Process::spawn("exec " + b.ns->exec() + bin + " " + addr4(i) + " 80 " + name(i)));
  EXPECT_TRUE(wait_listening(*b.ns, addr4(i)))
      << "the slow backend of " << name(i) << " did not listen";
}

void LbTopology::set_delay(size_t i, int ms) const {
  // From the gateway, which reaches every backend's network directly.
  run_ok(gw().exec() +
         fmt::format("curl -sf --max-time 3 'http://{}/_delay?ms={}' -o /dev/null", addr4(i), ms));
}

std::vector<nlohmann::json> LbTopology::client_run(const std::string &args) const {
  auto r = run(client().exec() + lb_client_bin() + " " + args);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  std::vector<nlohmann::json> lines;
  std::istringstream in(r.out);
  for (std::string line; std::getline(in, line);) {
    auto j = nlohmann::json::parse(line, nullptr, false);
    if (!j.is_discarded())
      lines.push_back(std::move(j));
  }
  return lines;
}

Process LbTopology::client_spawn(const std::string &args, const std::string &out_file) const {
  return Process::spawn("exec " + client().exec() + lb_client_bin() + " " + args + " > " +
                        out_file);
}

}  // namespace bpfgate::test
