#include "lb_harness.hpp"

#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <net/if.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <fmt/format.h>

#include <cstdio>
#include <cstring>

#include "lb.skel.h"

namespace bpfgate::test {

Addr addr16(const std::string &text) {
  Addr a{};
  in_addr v4{};
  if (inet_pton(AF_INET, text.c_str(), &v4) == 1) {
    a[10] = a[11] = 0xff;
    std::memcpy(a.data() + 12, &v4, 4);
  } else if (inet_pton(AF_INET6, text.c_str(), a.data()) != 1) {
    ADD_FAILURE() << "not an address: " << text;
  }
  return a;
}

std::string addr_text(const Addr &a) {
  static const uint8_t kMapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  char buf[INET6_ADDRSTRLEN] = {};
  if (std::memcmp(a.data(), kMapped, 12) == 0)
    inet_ntop(AF_INET, a.data() + 12, buf, sizeof(buf));
  else
    inet_ntop(AF_INET6, a.data(), buf, sizeof(buf));
  return buf;
}

namespace {

core::Mac mac(uint8_t a, uint8_t b) {
  return {0x02, 0x00, 0x00, 0x00, a, b};
}

std::string mac_text(const core::Mac &m) {
  return fmt::format("{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}", m[0], m[1], m[2], m[3], m[4],
                     m[5]);
}

// A link's MAC address and index, asked from inside the namespace (sysfs
// shows the namespace it was mounted in).
void link_of(const Netns &ns, const std::string &dev, int &index, core::Mac &m) {
  ns.within([&] {
    index = static_cast<int>(if_nametoindex(dev.c_str()));
    int s = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    ifreq req{};
    std::snprintf(req.ifr_name, sizeof(req.ifr_name), "%s", dev.c_str());
    EXPECT_EQ(ioctl(s, SIOCGIFHWADDR, &req), 0) << dev << ": " << std::strerror(errno);
    std::memcpy(m.data(), req.ifr_hwaddr.sa_data, 6);
    ::close(s);
  });
  EXPECT_GT(index, 0) << dev;
}

}  // namespace

core::Mac LbNet::backend_mac(int i) {
  return mac(0x01, static_cast<uint8_t>(0x10 + i));
}
core::Mac LbNet::client_mac() {
  return mac(0x00, 0x10);
}
core::Mac LbNet::near_backend_mac() {
  return mac(0x00, 0x20);
}

LbNet::LbNet() : ns_(unique_prefix() + "lb") {
  const std::string x = ns_.exec();
  const std::string c = "lbc0", b = "lbb0";
  run_ok(x + "ip link add lbc0 type veth peer name lbc1");
  run_ok(x + "ip link add lbb0 type veth peer name lbb1");
  run_ok(x + "sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1");
  for (const char *dev : {"lbc0", "lbc1", "lbb0", "lbb1"})
    run_ok(x + fmt::format("ip link set {} up", dev));
  run_ok(x + "ip addr add 198.18.0.1/24 dev lbc0");
  run_ok(x + "ip addr add 2001:db8::1/64 dev lbc0 nodad");
  run_ok(x + "ip addr add 198.18.1.1/24 dev lbb0");
  run_ok(x + "ip addr add 2001:db8:1::1/64 dev lbb0 nodad");
  run_ok(x + "ip route add blackhole 198.18.3.0/24");
  auto neigh = [&](const std::string &addr, const core::Mac &m, const std::string &dev) {
    run_ok(x + fmt::format("ip neigh replace {} lladdr {} dev {} nud permanent", addr, mac_text(m),
                           dev));
  };
  neigh(kClient4, client_mac(), c);
  neigh(kClient6, client_mac(), c);
  neigh(kRouter4, client_mac(), c);
  neigh(kRouter6, client_mac(), c);
  neigh(kNearBackend4, near_backend_mac(), c);
  for (int i = 0; i < 3; i++) {
    neigh(kBackend4[i], backend_mac(i), b);
    neigh(kBackend6[i], backend_mac(i), b);
  }
  link_of(ns_, c, client_ifindex_, client_mac_);
  link_of(ns_, b, backend_ifindex_, backend_mac_);
}

XdpRun run_in(const Netns &ns, int prog_fd, int ifindex, const std::vector<uint8_t> &frame) {
  XdpRun r;
  ns.within([&] {
    // On one CPU, so that a flow's frames find the hot slots (per CPU) the
    // ones before them filled.
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(0, &one);
    if (sched_setaffinity(0, sizeof(one), &one) != 0) {
      ADD_FAILURE() << "sched_setaffinity: " << std::strerror(errno);
      return;
    }
    std::vector<uint8_t> out(frame.size() + 256);
    xdp_md ctx{};
    ctx.data_end = static_cast<uint32_t>(frame.size());
    ctx.ingress_ifindex = static_cast<uint32_t>(ifindex);
    LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = frame.data(), .data_out = out.data(),
                .data_size_in = static_cast<uint32_t>(frame.size()),
                .data_size_out = static_cast<uint32_t>(out.size()), .ctx_in = &ctx,
                .ctx_size_in = sizeof(ctx), .repeat = 1);
    int err = bpf_prog_test_run_opts(prog_fd, &opts);
    if (err) {
      ADD_FAILURE() << "bpf_prog_test_run_opts: " << std::strerror(-err);
      return;
    }
    r.action = opts.retval;
    out.resize(opts.data_size_out);
    r.out = std::move(out);
  });
  return r;
}

LbHarness::LbHarness(uint32_t ring_size, uint32_t conns) : ring_size_(ring_size) {
  skel_ = lb__open();
  if (!skel_) {
    ADD_FAILURE() << "open the lb object: " << std::strerror(errno);
    std::abort();
  }
  // What the control plane does before load: the ring map holds both
  // generations' rings of every service slot.
  bpf_map__set_max_entries(skel_->maps.bg_lb_ring, 2 * BG_LB_SERVICES_MAX * ring_size);
  bpf_map__set_max_entries(skel_->maps.bg_lb_conns, conns);
  bpf_map__set_max_entries(skel_->maps.bg_lb_reverse, conns);
  if (int err = lb__load(skel_)) {
    ADD_FAILURE() << "load the lb object: " << std::strerror(-err);
    std::abort();
  }
  set_ctl(0, 0);
}

LbHarness::~LbHarness() {
  lb__destroy(skel_);
}

int LbHarness::prog_fd() const {
  return bpf_program__fd(skel_->progs.bg_xdp_lb);
}

int LbHarness::fd(const char *map) const {
  return bpf_map__fd(bpf_object__find_map_by_name(skel_->obj, map));
}

void LbHarness::set_ctl(uint32_t active, uint64_t conn_idle_ns) {
  bg_lb_ctl ctl{.active = active, .ring_size = ring_size_, .conn_idle_ns = conn_idle_ns};
  uint32_t zero = 0;
  ASSERT_EQ(bpf_map_update_elem(fd("bg_lb_ctl"), &zero, &ctl, BPF_ANY), 0);
}

void LbHarness::add_service(uint8_t gen, const std::string &vip, uint16_t port, uint8_t proto,
                            uint32_t id, uint32_t slot, uint32_t flags) {
  bg_lb_vip_key k{};
  Addr a = addr16(vip);
  std::memcpy(k.addr, a.data(), 16);
  k.port = htons(port);
  k.proto = proto;
  k.gen = gen;
  bg_lb_service s{.id = id, .slot = slot, .flags = flags, ._pad = 0};
  ASSERT_EQ(bpf_map_update_elem(fd("bg_lb_vips"), &k, &s, BPF_ANY), 0);
}

void LbHarness::set_backend(uint32_t id, const std::string &addr, uint16_t port, uint8_t flags,
                            uint32_t service) {
  bg_lb_backend b{};
  Addr a = addr16(addr);
  std::memcpy(b.addr, a.data(), 16);
  b.port = htons(port);
  b.flags = flags;
  b.service = service;
  ASSERT_EQ(bpf_map_update_elem(fd("bg_lb_backends"), &id, &b, BPF_ANY), 0);
}

void LbHarness::fill_ring(uint32_t slot, const std::vector<uint32_t> &ids) {
  for (uint32_t i = 0; i < ring_size_; i++) {
    uint32_t idx = slot * ring_size_ + i, id = ids.empty() ? 0 : ids[i % ids.size()];
    ASSERT_EQ(bpf_map_update_elem(fd("bg_lb_ring"), &idx, &id, BPF_ANY), 0);
  }
}

uint32_t LbHarness::ring_at(uint32_t slot, uint32_t index) const {
  uint32_t idx = slot * ring_size_ + index, id = 0;
  EXPECT_EQ(bpf_map_lookup_elem(fd("bg_lb_ring"), &idx, &id), 0);
  return id;
}

uint64_t LbHarness::counter(bg_lb_counter c) const {
  std::vector<bg_counter> v(static_cast<size_t>(libbpf_num_possible_cpus()));
  uint32_t key = c;
  EXPECT_EQ(bpf_map_lookup_elem(fd("bg_lb_counters"), &key, v.data()), 0);
  uint64_t n = 0;
  for (const auto &x : v)
    n += x.packets;
  return n;
}

bg_lb_backend_stats LbHarness::stats(uint32_t backend) const {
  std::vector<bg_lb_backend_stats> v(static_cast<size_t>(libbpf_num_possible_cpus()));
  EXPECT_EQ(bpf_map_lookup_elem(fd("bg_lb_stats"), &backend, v.data()), 0);
  bg_lb_backend_stats s{};
  for (const auto &x : v) {
    s.packets += x.packets;
    s.bytes += x.bytes;
    s.rx_packets += x.rx_packets;
    s.rx_bytes += x.rx_bytes;
    s.new_flows += x.new_flows;
    s.resets += x.resets;
    s.connect_ns += x.connect_ns;
    s.connects += x.connects;
    s.response_ns += x.response_ns;
    s.responses += x.responses;
  }
  return s;
}

namespace {
bg_lb_conn_key conn_key(const std::string &client, uint16_t cport, const std::string &vip,
                        uint16_t vport, uint8_t proto) {
  bg_lb_conn_key k{};
  Addr c = addr16(client), v = addr16(vip);
  std::memcpy(k.client, c.data(), 16);
  std::memcpy(k.vip, v.data(), 16);
  k.cport = htons(cport);
  k.vport = htons(vport);
  k.proto = proto;
  return k;
}
}  // namespace

std::optional<bg_lb_conn> LbHarness::conn(const std::string &client, uint16_t cport,
                                          const std::string &vip, uint16_t vport,
                                          uint8_t proto) const {
  bg_lb_conn_key k = conn_key(client, cport, vip, vport, proto);
  bg_lb_conn c{};
  if (bpf_map_lookup_elem(fd("bg_lb_conns"), &k, &c) != 0)
    return std::nullopt;
  return c;
}

void LbHarness::put_conn(const std::string &client, uint16_t cport, const std::string &vip,
                         uint16_t vport, uint8_t proto, const bg_lb_conn &c) {
  bg_lb_conn_key k = conn_key(client, cport, vip, vport, proto);
  ASSERT_EQ(bpf_map_update_elem(fd("bg_lb_conns"), &k, &c, BPF_EXIST), 0);
}

namespace {
bg_lb_rev_key rev_key(const std::string &backend, uint16_t bport, const std::string &client,
                      uint16_t cport, uint8_t proto) {
  bg_lb_rev_key k{};
  Addr b = addr16(backend), c = addr16(client);
  std::memcpy(k.backend, b.data(), 16);
  std::memcpy(k.client, c.data(), 16);
  k.bport = htons(bport);
  k.cport = htons(cport);
  k.proto = proto;
  return k;
}
}  // namespace

namespace {
// Every CPU's copy of hot slot `index`.
std::vector<bg_lb_hot> hot_slots(int fd, uint32_t index) {
  std::vector<bg_lb_hot> v(static_cast<size_t>(libbpf_num_possible_cpus()));
  EXPECT_EQ(bpf_map_lookup_elem(fd, &index, v.data()), 0);
  return v;
}

bool hot_holds(const bg_lb_hot &h, const Addr &src, uint16_t sport, const Addr &dst, uint16_t dport,
               uint8_t proto) {
  return h.kind != 0 && std::memcmp(h.src, src.data(), 16) == 0 &&
         std::memcmp(h.dst, dst.data(), 16) == 0 && h.sport == htons(sport) &&
         h.dport == htons(dport) && h.proto == proto;
}
}  // namespace

std::optional<bg_lb_hot> LbHarness::hot(const std::string &src, uint16_t sport,
                                        const std::string &dst, uint16_t dport,
                                        uint8_t proto) const {
  Addr s = addr16(src), d = addr16(dst);
  for (uint32_t i = 0; i < BG_LB_HOT_SLOTS; i++)
    for (const auto &h : hot_slots(fd("bg_lb_hot"), i))
      if (hot_holds(h, s, sport, d, dport, proto))
        return h;
  return std::nullopt;
}

bool LbHarness::edit_hot(const std::string &src, uint16_t sport, const std::string &dst,
                         uint16_t dport, uint8_t proto,
                         const std::function<void(bg_lb_hot &)> &edit) {
  Addr s = addr16(src), d = addr16(dst);
  for (uint32_t i = 0; i < BG_LB_HOT_SLOTS; i++) {
    auto v = hot_slots(fd("bg_lb_hot"), i);
    bool found = false;
    for (auto &h : v)
      if (hot_holds(h, s, sport, d, dport, proto)) {
        edit(h);
        found = true;
      }
    if (found) {
      EXPECT_EQ(bpf_map_update_elem(fd("bg_lb_hot"), &i, v.data(), BPF_ANY), 0);
      return true;
    }
  }
  return false;
}

void LbHarness::forget_hot() {
  std::vector<bg_lb_hot> v(static_cast<size_t>(libbpf_num_possible_cpus()));
  for (uint32_t i = 0; i < BG_LB_HOT_SLOTS; i++)
    ASSERT_EQ(bpf_map_update_elem(fd("bg_lb_hot"), &i, v.data(), BPF_ANY), 0);
}

void LbHarness::put_reverse(const std::string &backend, uint16_t bport, const std::string &client,
                            uint16_t cport, uint8_t proto, const bg_lb_rev &r) {
  bg_lb_rev_key k = rev_key(backend, bport, client, cport, proto);
  ASSERT_EQ(bpf_map_update_elem(fd("bg_lb_reverse"), &k, &r, BPF_EXIST), 0);
}

std::optional<bg_lb_rev> LbHarness::reverse(const std::string &backend, uint16_t bport,
                                            const std::string &client, uint16_t cport,
                                            uint8_t proto) const {
  bg_lb_rev_key k = rev_key(backend, bport, client, cport, proto);
  bg_lb_rev r{};
  if (bpf_map_lookup_elem(fd("bg_lb_reverse"), &k, &r) != 0)
    return std::nullopt;
  return r;
}

std::string FrameView::src() const {
  Addr a{};
  if (v6()) {
    std::memcpy(a.data(), f.data() + 22, 16);
  } else {
    a[10] = a[11] = 0xff;
    std::memcpy(a.data() + 12, f.data() + 26, 4);
  }
  return addr_text(a);
}

std::string FrameView::dst() const {
  Addr a{};
  if (v6()) {
    std::memcpy(a.data(), f.data() + 38, 16);
  } else {
    a[10] = a[11] = 0xff;
    std::memcpy(a.data() + 12, f.data() + 30, 4);
  }
  return addr_text(a);
}

core::Mac FrameView::eth_dst() const {
  core::Mac m{};
  std::memcpy(m.data(), f.data(), 6);
  return m;
}

core::Mac FrameView::eth_src() const {
  core::Mac m{};
  std::memcpy(m.data(), f.data() + 6, 6);
  return m;
}

namespace {

// The one's complement sum of len bytes at p (big-endian words), added to acc.
uint64_t sum_bytes(const uint8_t *p, size_t len, uint64_t acc = 0) {
  for (size_t i = 0; i + 1 < len; i += 2)
    acc += static_cast<uint64_t>(p[i] << 8 | p[i + 1]);
  if (len & 1)
    acc += static_cast<uint64_t>(p[len - 1] << 8);
  return acc;
}

uint16_t fold(uint64_t s) {
  while (s >> 16)
    s = (s & 0xffff) + (s >> 16);
  return static_cast<uint16_t>(s);
}

}  // namespace

bool ipv4_csum_ok(const std::vector<uint8_t> &f, size_t l3) {
  size_t hl = (f[l3] & 0x0f) * 4u;
  return l3 + hl <= f.size() && fold(sum_bytes(f.data() + l3, hl)) == 0xffff;
}

bool l4_csum_ok(const std::vector<uint8_t> &f, size_t l3) {
  bool v6 = (f[l3] >> 4) == 6;
  size_t l4, len;
  uint8_t proto;
  uint64_t pseudo;
  if (v6) {
    l4 = l3 + 40;
    len = static_cast<size_t>(f[l3 + 4] << 8 | f[l3 + 5]);
    proto = f[l3 + 6];
    pseudo = sum_bytes(f.data() + l3 + 8, 32);
  } else {
    l4 = l3 + (f[l3] & 0x0f) * 4u;
    len = static_cast<size_t>(f[l3 + 2] << 8 | f[l3 + 3]) - (l4 - l3);
    proto = f[l3 + 9];
    pseudo = sum_bytes(f.data() + l3 + 12, 8);
  }
  if (l4 + len > f.size())
    return false;
  if (proto == 17 && !v6 && f[l4 + 6] == 0 && f[l4 + 7] == 0)
    return true;  // no checksum
  if (proto == 1)
    return fold(sum_bytes(f.data() + l4, len)) == 0xffff;  // ICMP: no pseudo header
  uint64_t s = sum_bytes(f.data() + l4, len, pseudo + proto + len);
  return fold(s) == 0xffff;
}

}  // namespace bpfgate::test
