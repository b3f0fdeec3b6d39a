#include "support/topology.hpp"

#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <gtest/gtest.h>

#include <atomic>
#include <cstring>
#include <memory>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "bpf/map.hpp"
#include "bpfgate/abi/xdp.h"

namespace bpfgate::test {

namespace {
std::string next_name(const char *role) {
  static std::atomic<int> n{0};
  return fmt::format("{}{}{}", unique_prefix(), role, n++);
}

sockaddr_in gateway_addr(uint16_t port) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  inet_pton(AF_INET, GatewayPair::kGatewayAddr, &a.sin_addr);
  return a;
}
}  // namespace

GatewayPair::GatewayPair()
    : gw_if_(next_name("g")), peer_if_(next_name("p")), gw_(gw_if_ + "ns"), peer_(peer_if_ + "ns") {
  make_link();
  run_ok("mountpoint -q /sys/fs/bpf || mount -t bpf bpf /sys/fs/bpf");
}

void GatewayPair::make_link() const {
  make_veth(gw_, gw_if_, std::string(kGatewayAddr) + "/24", peer_, peer_if_,
            std::string(kClientAddr) + "/24");
  run_ok(peer_.exec() + fmt::format("ip addr add {}/24 dev {}", kAttackerAddr, peer_if_));
}

void GatewayPair::remove_link() const {
  run_ok(gw_.exec() + "ip link del " + gw_if_);
}

GatewayPair::~GatewayPair() {
  run(gw_.exec() + bpfgate_bin() + " detach " + gw_if_ + " 2>/dev/null");
  run("rm -rf " + pin_dir());
}

std::string GatewayPair::gw_mac() const {
  auto r = run_ok(gw_.exec() + "ip -br link show dev " + gw_if_ + " | awk '{print $3}'");
  std::string mac = r.out.substr(0, r.out.find('\n'));
  EXPECT_EQ(mac.size(), 17u) << r.out;
  return mac;
}

CmdResult GatewayPair::bpfgate(const std::string &args) const {
  return run(gw_.exec() + bpfgate_bin() + " " + args);
}

uint64_t GatewayPair::flood(const std::string &src, uint64_t count, double rate_pps,
                            const std::string &extra) const {
  auto r = run_ok(peer_.exec() + fmt::format("{} -i {} --dst-mac {} --src {} --dst {} -n {} "
                                             "--rate {} --duration 20 -j {}",
                                             gen_bin(), peer_if_, gw_mac(), src, kGatewayAddr,
                                             count, rate_pps, extra));
  auto j = nlohmann::json::parse(r.out, nullptr, false);
  if (j.is_discarded() || !j.contains("sent")) {
    ADD_FAILURE() << "bpfgate-gen printed: " << r.out << r.err;
    return 0;
  }
  return j["sent"].get<uint64_t>();
}

uint64_t counter(const nlohmann::json &status, const char *verdict, const char *reason) {
  if (!status.contains("counters") || !status["counters"].contains(verdict) ||
      !status["counters"][verdict].contains(reason))
    return 0;
  return status["counters"][verdict][reason]["packets"].get<uint64_t>();
}

uint64_t GatewayPair::counter(const char *verdict, const char *reason) const {
  return test::counter(status(), verdict, reason);
}

nlohmann::json GatewayPair::status() const {
  auto r = bpfgate("-j status " + gw_if_);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  auto j = nlohmann::json::parse(r.out, nullptr, false);
  EXPECT_FALSE(j.is_discarded()) << r.out;
  if (!j.is_discarded())
    for (const auto &i : j["interfaces"])
      if (i["iface"] == gw_if_)
        return i;
  ADD_FAILURE() << "no status for " << gw_if_ << ": " << r.out;
  return nlohmann::json::object();
}

uint32_t GatewayPair::xdp_prog_id() const {
  auto r = run_ok(gw_.exec() + "ip -j link show dev " + gw_if_);
  auto j = nlohmann::json::parse(r.out, nullptr, false);
  if (j.is_discarded() || j.empty() || !j[0].contains("xdp"))
    return 0;
  const auto &x = j[0]["xdp"];
  if (x.contains("prog") && x["prog"].contains("id"))
    return x["prog"]["id"].get<uint32_t>();
  if (x.contains("attached") && !x["attached"].empty())
    return x["attached"][0]["prog"]["id"].get<uint32_t>();
  return 0;
}

uint32_t GatewayPair::run_other_build(const std::string &object, const std::string &prog) const {
  auto link = bpf::open_pinned(pin_dir() + "/" BG_PIN_LINK);
  EXPECT_TRUE(link.ok()) << link.error().what();
  if (!link)
    return 0;
  bpf::UniqueFd running(bpf_prog_get_fd_by_id(xdp_prog_id()));
  EXPECT_GE(running.get(), 0);
  std::shared_ptr<bpf_object> other(
      bpf_object__open_file((std::string(BPFGATE_BPF_DIR) + "/" + object).c_str(), nullptr),
      bpf_object__close);
  EXPECT_TRUE(other) << object;
  if (running.get() < 0 || !other)
    return 0;
  std::vector<uint32_t> ids(64);
  bpf_prog_info info{};
  uint32_t len = sizeof(info);
  info.nr_map_ids = static_cast<uint32_t>(ids.size());
  info.map_ids = reinterpret_cast<uint64_t>(ids.data());
  EXPECT_EQ(bpf_obj_get_info_by_fd(running.get(), &info, &len), 0);
  ids.resize(info.nr_map_ids);
  std::vector<bpf::UniqueFd> held;  // until the load has taken them
  for (uint32_t id : ids) {
    bpf::UniqueFd fd(bpf_map_get_fd_by_id(id));
    bpf_map_info mi{};
    uint32_t ml = sizeof(mi);
    EXPECT_EQ(bpf_obj_get_info_by_fd(fd.get(), &mi, &ml), 0);
    bpf_map *m;
    bpf_object__for_each_map(m, other.get()) {
      if (!bpf_map__is_internal(m) &&
          std::string(bpf_map__name(m)).substr(0, BPF_OBJ_NAME_LEN - 1) == mi.name) {
        EXPECT_EQ(bpf_map__reuse_fd(m, fd.get()), 0) << mi.name;
      }
    }
    held.push_back(std::move(fd));
  }
  EXPECT_EQ(bpf_object__load(other.get()), 0) << object;
  const bpf_program *p = bpf_object__find_program_by_name(other.get(), prog.c_str());
  EXPECT_NE(p, nullptr) << prog;
  if (!p)
    return 0;
  LIBBPF_OPTS(bpf_link_update_opts, opts, .flags = BPF_F_REPLACE,
              .old_prog_fd = static_cast<__u32>(running.get()));
  EXPECT_EQ(bpf_link_update(link->get(), bpf_program__fd(p), &opts), 0) << strerror(errno);
  return xdp_prog_id();  // the link holds the program now
}

bpf::UniqueFd GatewayPair::tcp_listen(uint16_t port) const {
  auto fd = gw_.socket(AF_INET, SOCK_STREAM);
  EXPECT_GE(fd.get(), 0);
  int one = 1;
  setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  auto a = gateway_addr(port);
  EXPECT_EQ(bind(fd.get(), reinterpret_cast<sockaddr *>(&a), sizeof(a)), 0);
  EXPECT_EQ(listen(fd.get(), 64), 0);
  return fd;
}

bool GatewayPair::tcp_connect(uint16_t port) const {
  auto fd = peer_.socket(AF_INET, SOCK_STREAM);
  if (fd.get() < 0)
    return false;
  timeval tv{2, 0};
  setsockopt(fd.get(), SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
  auto a = gateway_addr(port);
  return connect(fd.get(), reinterpret_cast<sockaddr *>(&a), sizeof(a)) == 0;
}

}  // namespace bpfgate::test
