// The XDP load balancer (bpf/lb/lb.bpf.c) on crafted frames, in a network
// namespace of the test's own where bpf_fib_lookup finds routes and
// neighbours: the DNAT rewrite checked byte by byte (addresses, ports, TTL,
// MACs, checksums recomputed here), the FIB's answers (redirect, XDP_TX, the
// stack without a neighbour, drop on a blackhole), stickiness across ring
// changes, re-placement, the reverse rewrite and what it measures,
// fragments, frames that are not the balancer's, and the flow hash against
// the C++ side's.
#include <arpa/inet.h>
#include <linux/bpf.h>
#include <netinet/in.h>

#include <gtest/gtest.h>

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstring>
#include <functional>
#include <memory>
#include <set>
#include <thread>

#include "lb_harness.hpp"

namespace bpfgate::test {
namespace {

using core::PacketBuilder;
using N = LbNet;

constexpr uint16_t kVport = 80;
constexpr uint16_t kBport = 8080;  // backend A listens here; B and C on the VIP's port
constexpr uint32_t kService = 7;
constexpr uint8_t kUsed = BG_LB_BACKEND_USED;

class LbTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { net_ = new LbNet(); }
  static void TearDownTestSuite() {
    delete net_;
    net_ = nullptr;
  }

  // Services at kVip4:80 and kVip6:80 (TCP and UDP) in generation 0, slot 0
  // (v4) and 1 (v6), rings over backends 1..3 (v4) and 4..6 (v6).
  void SetUp() override {
    lb_ = std::make_unique<LbHarness>();
    for (uint8_t proto : {IPPROTO_TCP, IPPROTO_UDP}) {
      lb_->add_service(0, N::kVip4, kVport, proto, kService, 0);
      lb_->add_service(0, N::kVip6, kVport, proto, kService + 1, 1);
    }
    for (uint32_t i = 0; i < 3; i++) {
      lb_->set_backend(1 + i, N::kBackend4[i], i == 0 ? kBport : 0, kUsed, kService);
      lb_->set_backend(4 + i, N::kBackend6[i], i == 0 ? kBport : 0, kUsed, kService + 1);
    }
    lb_->fill_ring(0, {1, 2, 3});
    lb_->fill_ring(1, {4, 5, 6});
  }

  XdpRun from_client(const std::vector<uint8_t> &f) const {
    return run_in(net_->ns(), lb_->prog_fd(), net_->client_ifindex(), f);
  }
  XdpRun from_backend(const std::vector<uint8_t> &f) const {
    return run_in(net_->ns(), lb_->prog_fd(), net_->backend_ifindex(), f);
  }

  // The backend id the kernel must choose for a new flow, computed here.
  uint32_t placed(const std::string &client, uint16_t cport, const std::string &vip, uint8_t proto,
                  uint32_t slot) const {
    bg_lb_conn_key k{};
    Addr c = addr16(client), v = addr16(vip);
    std::memcpy(k.client, c.data(), 16);
    std::memcpy(k.vip, v.data(), 16);
    k.cport = htons(cport);
    k.vport = htons(kVport);
    k.proto = proto;
    return lb_->ring_at(slot, bg_lb_hash(&k) % lb_->ring_size());
  }

  static std::string backend_addr(uint32_t id) {
    return id <= 3 ? N::kBackend4[id - 1] : N::kBackend6[id - 4];
  }
  static uint16_t backend_port(uint32_t id) { return id == 1 || id == 4 ? kBport : kVport; }

  // Checks a frame forwarded to backend `id`: addresses, port, TTL, MACs, checksums.
  void expect_to_backend(const XdpRun &r, const std::vector<uint8_t> &in, uint32_t id,
                         uint16_t cport) const {
    ASSERT_EQ(r.out.size(), in.size());
    FrameView v{r.out}, o{in};
    EXPECT_EQ(v.dst(), backend_addr(id));
    EXPECT_EQ(v.src(), o.src());
    EXPECT_EQ(v.dport(), backend_port(id));
    EXPECT_EQ(v.sport(), cport);
    EXPECT_EQ(v.ttl(), o.ttl() - 1);
    if (!v.v6()) {
      EXPECT_TRUE(ipv4_csum_ok(r.out, 14));
    }
    EXPECT_TRUE(l4_csum_ok(r.out, 14));
    // Beyond the ports, only the transport checksum may change.
    auto rest = [](const std::vector<uint8_t> &f, size_t l4, bool udp) {
      std::vector<uint8_t> b(f.begin() + static_cast<long>(l4) + 4, f.end());
      b.at(udp ? 2 : 12) = b.at(udp ? 3 : 13) = 0;
      return b;
    };
    bool udp = v.proto() == IPPROTO_UDP;
    EXPECT_EQ(rest(r.out, v.l4(), udp), rest(in, o.l4(), udp));
  }

  static LbNet *net_;
  std::unique_ptr<LbHarness> lb_;
};

LbNet *LbTest::net_ = nullptr;

std::vector<uint8_t> tcp4(uint16_t cport, uint8_t flags = 0x02, size_t payload = 0,
                          const char *src = N::kClient4) {
  return PacketBuilder().ipv4(src, N::kVip4).tcp(cport, kVport, flags).payload(payload).build();
}
std::vector<uint8_t> tcp6(uint16_t cport, uint8_t flags = 0x02, size_t payload = 0) {
  return PacketBuilder()
      .ipv6(N::kClient6, N::kVip6)
      .tcp(cport, kVport, flags)
      .payload(payload)
      .build();
}
std::vector<uint8_t> udp4(uint16_t cport, size_t payload = 32) {
  return PacketBuilder().ipv4(N::kClient4, N::kVip4).udp(cport, kVport).payload(payload).build();
}
std::vector<uint8_t> udp6(uint16_t cport, size_t payload = 32) {
  return PacketBuilder().ipv6(N::kClient6, N::kVip6).udp(cport, kVport).payload(payload).build();
}

TEST_F(LbTest, TcpV4GoesToTheRingsBackendRewrittenAndRedirected) {
  auto f = tcp4(40000);
  uint32_t id = placed(N::kClient4, 40000, N::kVip4, IPPROTO_TCP, 0);
  auto r = from_client(f);
  EXPECT_EQ(r.action, XDP_REDIRECT) << "the backends are behind the other interface";
  expect_to_backend(r, f, id, 40000);
  FrameView v{r.out};
  EXPECT_EQ(v.eth_dst(), N::backend_mac(static_cast<int>(id) - 1));
  EXPECT_EQ(v.eth_src(), net_->backend_if_mac());
  EXPECT_EQ(lb_->counter(BG_LB_NEW_FLOW), 1u);
  EXPECT_EQ(lb_->counter(BG_LB_FORWARDED), 1u);
  auto c = lb_->conn(N::kClient4, 40000, N::kVip4, kVport, IPPROTO_TCP);
  ASSERT_TRUE(c);
  EXPECT_EQ(c->backend, id);
  EXPECT_EQ(c->flags, static_cast<uint32_t>(BG_LB_CONN_SYN));
  EXPECT_GT(c->opened_ns, 0u);
  auto rev = lb_->reverse(backend_addr(id), backend_port(id), N::kClient4, 40000, IPPROTO_TCP);
  ASSERT_TRUE(rev);
  EXPECT_EQ(rev->backend, id);
  EXPECT_EQ(ntohs(rev->vport), kVport);
  EXPECT_EQ(addr_text(std::to_array(rev->vip)), N::kVip4);
  auto st = lb_->stats(id);
  EXPECT_EQ(st.new_flows, 1u);
  EXPECT_EQ(st.packets, 1u);
  EXPECT_EQ(st.bytes, f.size());
}

TEST_F(LbTest, EveryBackendPortAndFamilyIsRewrittenWithValidChecksums) {
  int seen_port_rewrite = 0;
  for (uint16_t cport = 41000; cport < 41030; cport++) {
    for (int kind = 0; kind < 4; kind++) {
      bool v6 = kind & 1, udp = kind & 2;
      auto f = udp ? (v6 ? udp6(cport) : udp4(cport)) : (v6 ? tcp6(cport) : tcp4(cport));
      uint32_t id = placed(v6 ? N::kClient6 : N::kClient4, cport, v6 ? N::kVip6 : N::kVip4,
                           udp ? IPPROTO_UDP : IPPROTO_TCP, v6 ? 1 : 0);
      auto r = from_client(f);
      EXPECT_EQ(r.action, XDP_REDIRECT);
      expect_to_backend(r, f, id, cport);
      seen_port_rewrite += backend_port(id) != kVport;
    }
  }
  EXPECT_GT(seen_port_rewrite, 0) << "some flows must land on the backend with its own port";
  EXPECT_EQ(lb_->counter(BG_LB_FORWARDED), 120u);
}

TEST_F(LbTest, UdpWithoutChecksumOverIpv4StaysWithout) {
  auto f = udp4(42000);
  f[14 + 20 + 6] = f[14 + 20 + 7] = 0;
  uint32_t id = placed(N::kClient4, 42000, N::kVip4, IPPROTO_UDP, 0);
  auto r = from_client(f);
  EXPECT_EQ(r.action, XDP_REDIRECT);
  expect_to_backend(r, f, id, 42000);
  EXPECT_EQ(r.out[14 + 20 + 6], 0);
  EXPECT_EQ(r.out[14 + 20 + 7], 0);
}

TEST_F(LbTest, ABackendOnTheIngressSideIsSentBackOut) {
  lb_->set_backend(2, N::kNearBackend4, 0, kUsed, kService);
  lb_->fill_ring(0, {2});
  auto f = tcp4(40001);
  auto r = from_client(f);
  EXPECT_EQ(r.action, XDP_TX);
  FrameView v{r.out};
  EXPECT_EQ(v.dst(), N::kNearBackend4);
  EXPECT_EQ(v.eth_dst(), N::near_backend_mac());
  EXPECT_EQ(v.eth_src(), net_->client_if_mac());
  EXPECT_EQ(lb_->counter(BG_LB_FORWARDED), 1u);
}

TEST_F(LbTest, WithoutANeighbourTheStackGetsTheRewrittenFrame) {
  lb_->set_backend(2, N::kNoNeighBackend4, 0, kUsed, kService);
  lb_->set_backend(5, N::kNoNeighBackend6, 0, kUsed, kService + 1);
  lb_->fill_ring(0, {2});
  lb_->fill_ring(1, {5});
  for (auto f : {tcp4(40002), tcp6(40002)}) {
    auto r = from_client(f);
    EXPECT_EQ(r.action, XDP_PASS);
    FrameView v{r.out}, o{f};
    EXPECT_EQ(v.dst(), v.v6() ? N::kNoNeighBackend6 : N::kNoNeighBackend4);
    EXPECT_EQ(v.ttl(), o.ttl() - 1);
    EXPECT_EQ(v.eth_dst(), o.eth_dst()) << "MACs are the FIB's to set, and it had none";
    if (!v.v6()) {
      EXPECT_TRUE(ipv4_csum_ok(r.out, 14));
    }
    EXPECT_TRUE(l4_csum_ok(r.out, 14));
  }
  EXPECT_EQ(lb_->counter(BG_LB_TO_STACK), 2u);
  EXPECT_EQ(lb_->counter(BG_LB_FORWARDED), 0u);
}

// The FIB's answer for a flow is kept in its entry for a second: the flow's
// next frames take the MACs and interface from there (proven by a MAC only
// the entry holds), and ask the FIB again once it expired, when the frame is
// longer than the route's MTU kept or comes in by another interface.
TEST_F(LbTest, AFlowKeepsItsRouteInItsEntryForASecond) {
  lb_->fill_ring(0, {2});
  ASSERT_EQ(from_client(tcp4(40030)).action, XDP_REDIRECT);
  auto c = lb_->conn(N::kClient4, 40030, N::kVip4, kVport, IPPROTO_TCP);
  ASSERT_TRUE(c);
  EXPECT_GT(c->route.until_ns, c->last_ns);
  EXPECT_LE(c->route.until_ns, c->last_ns + BG_LB_ROUTE_TTL_NS);
  EXPECT_EQ(c->route.in_ifindex, static_cast<uint32_t>(net_->client_ifindex()));
  EXPECT_EQ(c->route.ifindex, static_cast<uint32_t>(net_->backend_ifindex()));
  EXPECT_EQ(std::to_array(c->route.dmac), N::backend_mac(1));
  EXPECT_EQ(std::to_array(c->route.smac), net_->backend_if_mac());
  EXPECT_GE(c->route.mtu, 1280);
  const core::Mac kept{0x02, 0, 0, 0, 0x5e, 0x99};
  auto keep = [&](uint64_t until, uint16_t mtu, uint32_t in_ifindex) {
    auto e = *c;
    std::copy(kept.begin(), kept.end(), e.route.dmac);
    e.route.until_ns = until;
    e.route.mtu = mtu;
    e.route.in_ifindex = in_ifindex;
    lb_->put_conn(N::kClient4, 40030, N::kVip4, kVport, IPPROTO_TCP, e);
    lb_->forget_hot();  // the slot copied the route the entry kept before
  };
  auto next = [&] {
    auto r = from_client(tcp4(40030, 0x10, 100));
    EXPECT_EQ(r.action, XDP_REDIRECT);
    EXPECT_EQ(FrameView{r.out}.dst(), N::kBackend4[1]);
    return FrameView{r.out}.eth_dst();
  };
  auto in = static_cast<uint32_t>(net_->client_ifindex());
  keep(c->route.until_ns, c->route.mtu, in);
  EXPECT_EQ(next(), kept) << "the kept route was not used";
  keep(1, c->route.mtu, in);
  EXPECT_EQ(next(), N::backend_mac(1)) << "an expired route was used";
  auto refreshed = lb_->conn(N::kClient4, 40030, N::kVip4, kVport, IPPROTO_TCP);
  ASSERT_TRUE(refreshed);
  EXPECT_GT(refreshed->route.until_ns, 1u) << "the FIB's answer was not kept again";
  keep(c->route.until_ns + BG_LB_ROUTE_TTL_NS, 100, in);
  EXPECT_EQ(next(), N::backend_mac(1)) << "a frame over the kept MTU skipped the FIB";
  keep(c->route.until_ns + BG_LB_ROUTE_TTL_NS, c->route.mtu, in + 1000);
  EXPECT_EQ(next(), N::backend_mac(1)) << "a frame from another interface skipped the FIB";
  EXPECT_EQ(lb_->counter(BG_LB_FORWARDED), 5u);
  EXPECT_EQ(lb_->counter(BG_LB_NEW_FLOW), 1u);
}

TEST_F(LbTest, ABackendBehindABlackholeIsDroppedAndCounted) {
  lb_->set_backend(2, N::kBlackholeBackend4, 0, kUsed, kService);
  lb_->fill_ring(0, {2});
  EXPECT_EQ(from_client(tcp4(40003)).action, XDP_DROP);
  EXPECT_EQ(lb_->counter(BG_LB_UNROUTABLE), 1u);
}

TEST_F(LbTest, EstablishedFlowsStayOnTheirBackendWhenTheRingChanges) {
  lb_->fill_ring(0, {1});
  ASSERT_EQ(FrameView{from_client(tcp4(40010)).out}.dst(), N::kBackend4[0]);
  // Generation 1: the same service on a ring of backend 2 only, then the flip.
  lb_->add_service(1, N::kVip4, kVport, IPPROTO_TCP, kService, BG_LB_SERVICES_MAX);
  lb_->fill_ring(BG_LB_SERVICES_MAX, {2});
  lb_->set_ctl(1, 0);
  for (int i = 0; i < 3; i++) {
    auto r = from_client(tcp4(40010, 0x10, 100));  // ACKs with data
    EXPECT_EQ(r.action, XDP_REDIRECT);
    EXPECT_EQ(FrameView{r.out}.dst(), N::kBackend4[0]) << "an established flow moved";
  }
  EXPECT_EQ(FrameView{from_client(tcp4(40011)).out}.dst(), N::kBackend4[1])
      << "a new flow follows the new ring";
  EXPECT_EQ(FrameView{from_client(tcp4(40012, 0x10)).out}.dst(), N::kBackend4[1])
      << "so does a flow never seen, even mid-connection";
  EXPECT_EQ(lb_->counter(BG_LB_NEW_FLOW), 3u);
  // A draining backend keeps its flows.
  lb_->set_backend(1, N::kBackend4[0], kBport, kUsed | BG_LB_BACKEND_DRAINING, kService);
  EXPECT_EQ(FrameView{from_client(tcp4(40010, 0x10)).out}.dst(), N::kBackend4[0]);
  EXPECT_EQ(lb_->counter(BG_LB_NEW_FLOW), 3u);
}

TEST_F(LbTest, ASynADownBackendOrAnIdleEntryPlacesTheFlowAgain) {
  lb_->fill_ring(0, {1});
  from_client(tcp4(40020));
  lb_->fill_ring(0, {2});
  EXPECT_EQ(FrameView{from_client(tcp4(40020, 0x10)).out}.dst(), N::kBackend4[0]);
  // A SYN opens a new connection on the same 5-tuple: the ring places it.
  EXPECT_EQ(FrameView{from_client(tcp4(40020)).out}.dst(), N::kBackend4[1]);
  // Its backend goes down: the flow's next frame goes where the ring says.
  lb_->fill_ring(0, {3});
  lb_->set_backend(2, N::kBackend4[1], 0, kUsed | BG_LB_BACKEND_DOWN, kService);
  EXPECT_EQ(FrameView{from_client(tcp4(40020, 0x10)).out}.dst(), N::kBackend4[2]);
  // Idle longer than conn_idle_ns: placed again.
  lb_->fill_ring(0, {1});
  lb_->set_ctl(0, 300'000'000);  // 300 ms: the next frame comes sooner, even on a busy host
  std::this_thread::sleep_for(std::chrono::milliseconds(400));
  EXPECT_EQ(FrameView{from_client(tcp4(40020, 0x10)).out}.dst(), N::kBackend4[0]);
  EXPECT_EQ(FrameView{from_client(tcp4(40020, 0x10)).out}.dst(), N::kBackend4[0])
      << "not idle: kept";
  EXPECT_EQ(lb_->counter(BG_LB_NEW_FLOW), 4u);
  // A backend id that is no longer configured: placed again too.
  lb_->fill_ring(0, {3});
  lb_->set_backend(1, N::kBackend4[0], kBport, 0, kService);
  EXPECT_EQ(FrameView{from_client(tcp4(40020, 0x10)).out}.dst(), N::kBackend4[2]);
}

// The hot slot (abi/lb.h, struct bg_lb_hot): from the frame after the one
// that went by its kept route, a flow's frames are served from its slot on
// the CPU (a MAC only the slot holds proves it), rewritten and counted as the
// stages would, in both families and for TCP and UDP.
TEST_F(LbTest, AnEstablishedFlowIsServedFromItsHotSlotAsTheStagesWould) {
  lb_->fill_ring(0, {2});
  lb_->fill_ring(1, {5});
  const core::Mac mark{0x02, 0, 0, 0, 0x5e, 0x77};
  struct Case {
    std::vector<uint8_t> first, next;
    std::string client, vip;
    uint8_t proto;
    uint32_t backend;
  };
  std::vector<Case> cases = {
      {tcp4(40040), tcp4(40040, 0x10, 50), N::kClient4, N::kVip4, IPPROTO_TCP, 2},
      {tcp6(40040), tcp6(40040, 0x10, 50), N::kClient6, N::kVip6, IPPROTO_TCP, 5},
      {udp4(40040), udp4(40040, 60), N::kClient4, N::kVip4, IPPROTO_UDP, 2},
      {udp6(40040), udp6(40040, 60), N::kClient6, N::kVip6, IPPROTO_UDP, 5}};
  uint64_t frames = 0, bytes2 = 0, bytes5 = 0;
  for (const auto &c : cases) {
    SCOPED_TRACE(c.client + " " + std::to_string(c.proto));
    auto count = [&](const std::vector<uint8_t> &f) {
      frames++;
      (c.backend == 2 ? bytes2 : bytes5) += f.size();
    };
    ASSERT_EQ(from_client(c.first).action, XDP_REDIRECT);  // placed, routed by the FIB
    count(c.first);
    EXPECT_FALSE(lb_->hot(c.client, 40040, c.vip, kVport, c.proto)) << "filled by the FIB's answer";
    auto slow = from_client(c.next);  // by the route its entry kept: fills the slot
    count(c.next);
    auto h = lb_->hot(c.client, 40040, c.vip, kVport, c.proto);
    ASSERT_TRUE(h) << "no slot after a frame by the kept route";
    EXPECT_EQ(h->kind, 1u);  // BG_LB_KIND_REQUEST
    EXPECT_EQ(h->backend, c.backend);
    auto fast = from_client(c.next);
    count(c.next);
    EXPECT_EQ(fast.action, XDP_REDIRECT);
    EXPECT_EQ(fast.out, slow.out) << "the slot rewrote the frame otherwise than the stages";
    expect_to_backend(fast, c.next, c.backend, 40040);
    ASSERT_TRUE(lb_->edit_hot(c.client, 40040, c.vip, kVport, c.proto, [&](bg_lb_hot &x) {
      std::copy(mark.begin(), mark.end(), x.route.dmac);
    }));
    auto marked = from_client(c.next);
    count(c.next);
    EXPECT_EQ(FrameView{marked.out}.eth_dst(), mark) << "not served from the slot";
    expect_to_backend(marked, c.next, c.backend, 40040);
  }
  EXPECT_EQ(lb_->counter(BG_LB_FORWARDED), frames);
  EXPECT_EQ(lb_->counter(BG_LB_NEW_FLOW), 4u);
  EXPECT_EQ(lb_->stats(2).packets + lb_->stats(5).packets, frames);
  EXPECT_EQ(lb_->stats(2).bytes, bytes2);
  EXPECT_EQ(lb_->stats(5).bytes, bytes5);
}

// What the stages would see differently, the slot gives way to: each of
// these fails if the frame is still served from the slot (a marked MAC).
TEST_F(LbTest, AHotSlotGivesWayToWhatTheStagesWouldSee) {
  const core::Mac mark{0x02, 0, 0, 0, 0x5e, 0x78};
  lb_->fill_ring(0, {1});
  auto warm = [&](uint16_t cport) {
    from_client(tcp4(cport));
    from_client(tcp4(cport, 0x10));
    ASSERT_TRUE(lb_->edit_hot(N::kClient4, cport, N::kVip4, kVport, IPPROTO_TCP, [&](bg_lb_hot &x) {
      std::copy(mark.begin(), mark.end(), x.route.dmac);
    }));
    ASSERT_EQ(FrameView{from_client(tcp4(cport, 0x10)).out}.eth_dst(), mark);
  };
  auto next = [&](uint16_t cport, size_t payload = 0) {
    auto r = from_client(tcp4(cport, 0x10, payload));
    EXPECT_EQ(r.action, XDP_REDIRECT);
    return r;
  };
  auto edit = [&](uint16_t cport, const std::function<void(bg_lb_hot &)> &f) {
    ASSERT_TRUE(lb_->edit_hot(N::kClient4, cport, N::kVip4, kVport, IPPROTO_TCP, f));
  };

  // Its backend goes down: the ring places the flow again.
  warm(40050);
  lb_->fill_ring(0, {3});
  lb_->set_backend(1, N::kBackend4[0], kBport, kUsed | BG_LB_BACKEND_DOWN, kService);
  auto r = next(40050);
  EXPECT_EQ(FrameView{r.out}.dst(), N::kBackend4[2]) << "a backend down kept its flow";
  EXPECT_NE(FrameView{r.out}.eth_dst(), mark);
  lb_->set_backend(1, N::kBackend4[0], kBport, kUsed, kService);
  lb_->fill_ring(0, {1});

  // A SYN reusing the 5-tuple is placed on another backend: the slot (still
  // naming a backend that is up) would send its next frames to the old one,
  // as a slot on another CPU would.
  warm(40051);
  lb_->fill_ring(0, {2});
  EXPECT_EQ(FrameView{from_client(tcp4(40051)).out}.dst(), N::kBackend4[1]);
  r = next(40051);
  EXPECT_EQ(FrameView{r.out}.dst(), N::kBackend4[1]) << "the slot outlived a move";
  lb_->fill_ring(0, {1});

  // A new generation.
  warm(40052);
  lb_->add_service(1, N::kVip4, kVport, IPPROTO_TCP, kService, BG_LB_SERVICES_MAX);
  lb_->fill_ring(BG_LB_SERVICES_MAX, {1});
  lb_->set_ctl(1, 0);
  EXPECT_NE(FrameView{next(40052).out}.eth_dst(), mark) << "the slot outlived a generation";

  // The kept route expired; a frame over its MTU; from another interface.
  warm(40053);
  edit(40053, [](bg_lb_hot &x) { x.route.until_ns = 1; });
  EXPECT_NE(FrameView{next(40053).out}.eth_dst(), mark) << "an expired slot was used";
  warm(40054);
  edit(40054, [](bg_lb_hot &x) { x.route.mtu = 39; });  // the frame: 40 bytes of IP
  EXPECT_NE(FrameView{next(40054).out}.eth_dst(), mark) << "a frame over the MTU used the slot";
  warm(40055);
  edit(40055, [](bg_lb_hot &x) { x.route.in_ifindex += 1000; });
  EXPECT_NE(FrameView{next(40055).out}.eth_dst(), mark) << "another interface used the slot";

  // The backend no longer configured, or given to another service.
  warm(40056);
  lb_->set_backend(1, N::kBackend4[0], kBport, kUsed, kService + 5);
  EXPECT_NE(FrameView{next(40056).out}.eth_dst(), mark) << "another service's backend";
  lb_->set_backend(1, N::kBackend4[0], kBport, kUsed, kService);

  // An RST and a TTL of one never use a slot (a SYN: above).
  warm(40057);
  EXPECT_NE(FrameView{from_client(tcp4(40057, 0x14)).out}.eth_dst(), mark) << "an RST";
  warm(40058);
  auto ttl1 = PacketBuilder().ipv4(N::kClient4, N::kVip4).ttl(1).tcp(40058, kVport, 0x10).build();
  EXPECT_EQ(from_client(ttl1).action, XDP_PASS);
  EXPECT_EQ(lb_->counter(BG_LB_TTL), 1u);

  // The first payload of a request is timed by the stages, whose entry then
  // says so and whose slot is filled again without the payload rule.
  warm(40059);
  auto h = lb_->hot(N::kClient4, 40059, N::kVip4, kVport, IPPROTO_TCP);
  ASSERT_TRUE(h);
  EXPECT_TRUE(h->flags & BG_LB_HOT_PAYLOAD_SLOW);
  EXPECT_NE(FrameView{next(40059, 200).out}.eth_dst(), mark) << "a first payload used the slot";
  auto c = lb_->conn(N::kClient4, 40059, N::kVip4, kVport, IPPROTO_TCP);
  ASSERT_TRUE(c);
  EXPECT_TRUE(c->flags & BG_LB_CONN_REQUEST);
  EXPECT_GT(c->request_ns, 0u);
  h = lb_->hot(N::kClient4, 40059, N::kVip4, kVport, IPPROTO_TCP);
  ASSERT_TRUE(h);
  EXPECT_FALSE(h->flags & BG_LB_HOT_PAYLOAD_SLOW);
}

// A malformed frame of a flow that has a hot slot gets what the stages give
// it (their parser refuses it: passed untouched), never the slot's rewrite.
TEST_F(LbTest, AMalformedFrameOfAHotFlowGetsTheStagesVerdict) {
  lb_->fill_ring(0, {1});
  lb_->fill_ring(1, {4});
  // Past its first request (timed), so that frames with payload use the slot too.
  for (uint8_t flags : {0x02, 0x18, 0x10}) {
    from_client(tcp4(40070, flags, flags == 0x18 ? 20 : 0));
    from_client(tcp6(40070, flags, flags == 0x18 ? 20 : 0));
  }
  auto h4 = lb_->hot(N::kClient4, 40070, N::kVip4, kVport, IPPROTO_TCP);
  auto h6 = lb_->hot(N::kClient6, 40070, N::kVip6, kVport, IPPROTO_TCP);
  ASSERT_TRUE(h4 && h6);
  ASSERT_FALSE(h4->flags & BG_LB_HOT_PAYLOAD_SLOW);
  ASSERT_FALSE(h6->flags & BG_LB_HOT_PAYLOAD_SLOW);
  ASSERT_EQ(FrameView{from_client(tcp4(40070, 0x10)).out}.dst(), N::kBackend4[0]);
  ASSERT_EQ(FrameView{from_client(tcp6(40070, 0x10)).out}.dst(), N::kBackend6[0]);
  struct Bad {
    const char *what;
    std::vector<uint8_t> frame;
  };
  auto v4 = [&](size_t off, uint8_t value) {
    auto f = tcp4(40070, 0x10, 20);
    f.at(off) = value;
    return f;
  };
  auto v6 = [&](size_t off, uint8_t value) {
    auto f = tcp6(40070, 0x10, 20);
    f.at(off) = value;
    return f;
  };
  std::vector<Bad> bad = {
      {"IPv4 header of version 5", v4(14, 0x55)},
      {"IPv4 total length 19",
       [&] {
         auto f = v4(16, 0);
         f.at(17) = 19;
         return f;
       }()},
      {"TCP data offset 4", v4(14 + 20 + 12, 0x40)},
      {"IPv6 header of version 7", v6(14, 0x70)},
      {"TCP data offset 4 over IPv6", v6(14 + 40 + 12, 0x40)},
  };
  for (const auto &b : bad) {
    auto r = from_client(b.frame);
    EXPECT_EQ(r.action, XDP_PASS) << b.what;
    EXPECT_EQ(r.out, b.frame) << b.what << ": rewritten";
  }
  EXPECT_EQ(lb_->counter(BG_LB_NOT_SERVICE), bad.size());
}

// A flow may sit in either slot of its pair: two flows of one pair are both
// served from slots; a third takes the slow path without pushing out either
// while both were seen within BG_LB_HOT_KEEP_MS, and then takes the slot of
// the one seen longer ago.
TEST_F(LbTest, FlowsThatKeepComingKeepTheirHotSlots) {
  lb_->fill_ring(0, {1});
  Addr client = addr16(N::kClient4), vip = addr16(N::kVip4);
  auto pair_of = [&](uint16_t cport) {
    uint32_t c[4], v[4];
    std::memcpy(c, client.data(), 16);
    std::memcpy(v, vip.data(), 16);
    return bg_lb_hot_index(c, v, htons(cport), htons(kVport), IPPROTO_TCP) >> 1;
  };
  std::vector<uint16_t> same;
  for (uint32_t p = 41000; same.size() < 3 && p < 65536; p++)
    if (pair_of(static_cast<uint16_t>(p)) == pair_of(41000))
      same.push_back(static_cast<uint16_t>(p));
  ASSERT_EQ(same.size(), 3u);
  auto hot = [&](uint16_t cport) {
    return lb_->hot(N::kClient4, cport, N::kVip4, kVport, IPPROTO_TCP).has_value();
  };
  auto seen = [&](uint16_t cport, int64_t by) {  // moves its last use by `by` units
    ASSERT_TRUE(lb_->edit_hot(N::kClient4, cport, N::kVip4, kVport, IPPROTO_TCP,
                              [&](bg_lb_hot &x) { x.seen += static_cast<uint32_t>(by); }));
  };
  for (uint16_t p : {same[0], same[1]}) {
    from_client(tcp4(p));
    from_client(tcp4(p, 0x10));
    ASSERT_TRUE(hot(p)) << p;
  }
  // Both in use (their last use set ahead, so however slow this host is).
  seen(same[0], 1000);
  seen(same[1], 1000);
  from_client(tcp4(same[2]));
  auto r = from_client(tcp4(same[2], 0x10));
  EXPECT_EQ(FrameView{r.out}.dst(), N::kBackend4[0]);
  EXPECT_FALSE(hot(same[2])) << "pushed out a flow in use";
  EXPECT_TRUE(hot(same[0]));
  EXPECT_TRUE(hot(same[1]));
  // The second one's last use long ago: the third takes its slot.
  seen(same[1], -100000);
  from_client(tcp4(same[2], 0x10));
  EXPECT_TRUE(hot(same[2]));
  EXPECT_TRUE(hot(same[0]));
  EXPECT_FALSE(hot(same[1]));
}

TEST_F(LbTest, AServiceWithoutBackendDropsNewFlows) {
  lb_->fill_ring(0, {});
  EXPECT_EQ(from_client(tcp4(40030)).action, XDP_DROP);
  lb_->fill_ring(0, {1});
  lb_->add_service(0, N::kVip4, kVport, IPPROTO_TCP, kService, 0, BG_LB_SVC_NO_BACKEND);
  EXPECT_EQ(from_client(tcp4(40031)).action, XDP_DROP);
  EXPECT_EQ(lb_->counter(BG_LB_NO_BACKEND), 2u);
  EXPECT_FALSE(lb_->conn(N::kClient4, 40030, N::kVip4, kVport, IPPROTO_TCP));
}

TEST_F(LbTest, TtlOfOneGoesToTheStackUntouched) {
  auto f = PacketBuilder().ipv4(N::kClient4, N::kVip4).ttl(1).tcp(40040, kVport).build();
  auto r = from_client(f);
  EXPECT_EQ(r.action, XDP_PASS);
  EXPECT_EQ(r.out, f);
  EXPECT_EQ(lb_->counter(BG_LB_TTL), 1u);
  EXPECT_FALSE(lb_->conn(N::kClient4, 40040, N::kVip4, kVport, IPPROTO_TCP));
}

TEST_F(LbTest, FragmentsToAServiceAreDroppedAndCounted) {
  auto first4 = PacketBuilder()
                    .ipv4(N::kClient4, N::kVip4)
                    .fragment(0, true)
                    .udp(40050, kVport)
                    .payload(64)
                    .build();
  auto first6 = PacketBuilder()
                    .ipv6(N::kClient6, N::kVip6)
                    .ipv6_ext(44)
                    .fragment(0, true)
                    .udp(40050, kVport)
                    .payload(64)
                    .build();
  EXPECT_EQ(from_client(first4).action, XDP_DROP);
  EXPECT_EQ(from_client(first6).action, XDP_DROP);
  // A later fragment has no ports: an entry of port 0 marks the address.
  auto later4 = PacketBuilder()
                    .ipv4(N::kClient4, N::kVip4)
                    .fragment(72, false)
                    .udp(40050, kVport)
                    .payload(64)
                    .build();
  EXPECT_EQ(from_client(later4).action, XDP_PASS);
  lb_->add_service(0, N::kVip4, 0, IPPROTO_UDP, kService, 0);
  EXPECT_EQ(from_client(later4).action, XDP_DROP);
  EXPECT_EQ(lb_->counter(BG_LB_FRAGMENT), 3u);
  EXPECT_EQ(lb_->counter(BG_LB_NEW_FLOW), 0u);
}

TEST_F(LbTest, TrafficNotForTheBalancerPassesUntouched) {
  std::vector<std::vector<uint8_t>> frames = {
      PacketBuilder().ipv4(N::kClient4, "198.18.0.1").udp(40060, 53).build(),
      PacketBuilder().ipv4(N::kClient4, N::kVip4).tcp(40060, 443).build(),  // another port
      PacketBuilder().ipv4(N::kClient4, N::kVip4).icmp(8, 0).payload(16).build(),
      PacketBuilder().ipv6(N::kClient6, N::kVip6).icmp(128, 0).payload(16).build(),
      PacketBuilder().ipv6(N::kClient6, "2001:db8::1").tcp(40060, 22).build(),
      PacketBuilder().vlan(5).ipv4(N::kClient4, "198.18.0.1").udp(40060, 53).build(),
      PacketBuilder().build(),  // not IP
  };
  auto trunc = tcp4(40060);
  trunc.resize(14 + 20 + 10);  // a transport header cut short
  frames.push_back(trunc);
  for (const auto &f : frames) {
    auto r = from_client(f);
    EXPECT_EQ(r.action, XDP_PASS);
    EXPECT_EQ(r.out, f);
  }
  EXPECT_EQ(lb_->counter(BG_LB_NOT_SERVICE), frames.size());
  EXPECT_EQ(lb_->counter(BG_LB_NEW_FLOW), 0u);
}

TEST_F(LbTest, AVlanTaggedFrameIsRewrittenForTheStack) {
  auto f = PacketBuilder().vlan(5).ipv4(N::kClient4, N::kVip4).tcp(40070, kVport).build();
  auto r = from_client(f);
  EXPECT_EQ(r.action, XDP_PASS);
  uint32_t id = placed(N::kClient4, 40070, N::kVip4, IPPROTO_TCP, 0);
  std::vector<uint8_t> untagged(r.out);
  untagged.erase(untagged.begin() + 12, untagged.begin() + 16);
  EXPECT_EQ(FrameView{untagged}.dst(), backend_addr(id));
  EXPECT_TRUE(ipv4_csum_ok(untagged, 14));
  EXPECT_TRUE(l4_csum_ok(untagged, 14));
  EXPECT_EQ(lb_->counter(BG_LB_TO_STACK), 1u);
}

// The C++ side's bg_lb_hash places flows exactly where the kernel does: a
// ring whose every entry is a different backend shows the index chosen.
TEST(LbHash, TheKernelPlacesFlowsWhereTheSharedHashSays) {
  LbNet net;
  LbHarness lb(13);
  std::vector<uint32_t> ids;
  for (uint32_t i = 0; i < 13; i++) {
    lb.set_backend(1 + i, fmt::format("198.18.1.{}", 100 + i), 0, kUsed, 1);
    lb.set_backend(20 + i, fmt::format("2001:db8:1::{:x}", 0x100 + i), 0, kUsed, 2);
    ids.push_back(1 + i);
  }
  lb.add_service(0, N::kVip4, kVport, IPPROTO_UDP, 1, 3);
  lb.add_service(0, N::kVip6, kVport, IPPROTO_UDP, 2, 5);
  lb.fill_ring(3, ids);
  for (auto &id : ids)
    id += 19;
  lb.fill_ring(5, ids);
  std::set<uint32_t> indexes;
  for (uint16_t cport = 30000; cport < 30060; cport++) {
    for (bool v6 : {false, true}) {
      bg_lb_conn_key k{};
      Addr c = addr16(v6 ? N::kClient6 : N::kClient4), v = addr16(v6 ? N::kVip6 : N::kVip4);
      std::memcpy(k.client, c.data(), 16);
      std::memcpy(k.vip, v.data(), 16);
      k.cport = htons(cport);
      k.vport = htons(kVport);
      k.proto = IPPROTO_UDP;
      uint32_t index = bg_lb_hash(&k) % 13;
      indexes.insert(index);
      auto f = v6 ? udp6(cport) : udp4(cport);
      auto r = run_in(net.ns(), lb.prog_fd(), net.client_ifindex(), f);
      std::string want = v6 ? fmt::format("2001:db8:1::{:x}", 0x100 + index)
                            : fmt::format("198.18.1.{}", 100 + index);
      EXPECT_EQ(FrameView{r.out}.dst(), want) << "client port " << cport;
    }
  }
  EXPECT_GE(indexes.size(), 10u) << "the hash spreads flows over the ring";
}

}  // namespace
}  // namespace bpfgate::test
