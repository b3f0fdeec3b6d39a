// The XDP load balancer's way back and its measurements: a backend's reply
// gets the VIP as its source (checksums recomputed here), the SYN -> SYN-ACK
// and request -> response delays and the backend's resets land in its stats,
// ICMP errors about a flow reach the flow's backend with their inner packet
// made the backend's own, and the filter hands the balancer only what it
// passes, its own counters unchanged.
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <linux/bpf.h>
#include <netinet/in.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <thread>

#include <unistd.h>

#include "bpf/pin.hpp"
#include "bpf/pin_set.hpp"
#include "bpf/skeletons.hpp"
#include "features/xdp/datapath.hpp"
#include "features/xdp/filter.hpp"
#include "lb_harness.hpp"
#include "support/filter_harness.hpp"

namespace bpfgate::test::lb_flow {
namespace {

using core::PacketBuilder;
using N = LbNet;

constexpr uint16_t kVport = 80;
constexpr uint16_t kBport = 8080;
constexpr uint8_t kUsed = BG_LB_BACKEND_USED;
constexpr uint8_t kSyn = 0x02, kAck = 0x10, kPsh = 0x08, kRst = 0x04;

// Every frame to kVip4:80 and kVip6:80 (TCP, UDP) goes to backend 1
// (kBackend4[0]:8080) or 4 (kBackend6[0]:8080).
std::unique_ptr<LbHarness> one_backend() {
  auto lb = std::make_unique<LbHarness>();
  for (uint8_t proto : {IPPROTO_TCP, IPPROTO_UDP}) {
    lb->add_service(0, N::kVip4, kVport, proto, 1, 0);
    lb->add_service(0, N::kVip6, kVport, proto, 2, 1);
  }
  lb->set_backend(1, N::kBackend4[0], kBport, kUsed, 1);
  lb->set_backend(4, N::kBackend6[0], kBport, kUsed, 2);
  lb->fill_ring(0, {1});
  lb->fill_ring(1, {4});
  return lb;
}

class LbFlowTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { net_ = new LbNet(); }
  static void TearDownTestSuite() {
    delete net_;
    net_ = nullptr;
  }
  void SetUp() override { lb_ = one_backend(); }
  XdpRun from_client(const std::vector<uint8_t> &f) const {
    return run_in(net_->ns(), lb_->prog_fd(), net_->client_ifindex(), f);
  }
  XdpRun from_backend(const std::vector<uint8_t> &f) const {
    return run_in(net_->ns(), lb_->prog_fd(), net_->backend_ifindex(), f);
  }
  static LbNet *net_;
  std::unique_ptr<LbHarness> lb_;
};

LbNet *LbFlowTest::net_ = nullptr;

std::vector<uint8_t> client4(uint16_t cport, uint8_t flags, size_t payload = 0) {
  return PacketBuilder()
      .ipv4(N::kClient4, N::kVip4)
      .tcp(cport, kVport, flags)
      .payload(payload)
      .build();
}
std::vector<uint8_t> backend4(uint16_t cport, uint8_t flags, size_t payload = 0) {
  return PacketBuilder()
      .ipv4(N::kBackend4[0], N::kClient4)
      .tcp(kBport, cport, flags)
      .payload(payload)
      .build();
}

void sleep_ms(int ms) {
  std::this_thread::sleep_for(std::chrono::milliseconds(ms));
}

TEST_F(LbFlowTest, AReplyGetsTheVipAsItsSourceAndGoesToTheClient) {
  from_client(client4(40100, kSyn));
  auto f = backend4(40100, kSyn | kAck);
  auto r = from_backend(f);
  EXPECT_EQ(r.action, XDP_REDIRECT) << "the clients are behind the other interface";
  ASSERT_EQ(r.out.size(), f.size());
  FrameView v{r.out};
  EXPECT_EQ(v.src(), N::kVip4);
  EXPECT_EQ(v.sport(), kVport);
  EXPECT_EQ(v.dst(), N::kClient4);
  EXPECT_EQ(v.dport(), 40100);
  EXPECT_EQ(v.ttl(), 63);
  EXPECT_TRUE(ipv4_csum_ok(r.out, 14));
  EXPECT_TRUE(l4_csum_ok(r.out, 14));
  EXPECT_EQ(v.eth_dst(), N::client_mac());
  EXPECT_EQ(v.eth_src(), net_->client_if_mac());
  EXPECT_EQ(lb_->counter(BG_LB_REPLIED), 1u);
  auto st = lb_->stats(1);
  EXPECT_EQ(st.rx_packets, 1u);
  EXPECT_EQ(st.rx_bytes, f.size());

  // IPv6, UDP.
  auto q = PacketBuilder().ipv6(N::kClient6, N::kVip6).udp(40101, kVport).payload(20).build();
  EXPECT_EQ(from_client(q).action, XDP_REDIRECT);
  auto a =
      PacketBuilder().ipv6(N::kBackend6[0], N::kClient6).udp(kBport, 40101).payload(20).build();
  auto r6 = from_backend(a);
  EXPECT_EQ(r6.action, XDP_REDIRECT);
  FrameView v6{r6.out};
  EXPECT_EQ(v6.src(), N::kVip6);
  EXPECT_EQ(v6.sport(), kVport);
  EXPECT_EQ(v6.ttl(), 63);
  EXPECT_TRUE(l4_csum_ok(r6.out, 14));
  EXPECT_EQ(lb_->counter(BG_LB_REPLIED), 2u);

  // The backend talking to a client it has no flow with: not the balancer's.
  auto other = backend4(40199, kAck);
  auto ro = from_backend(other);
  EXPECT_EQ(ro.action, XDP_PASS);
  EXPECT_EQ(ro.out, other);
  EXPECT_EQ(lb_->counter(BG_LB_NOT_SERVICE), 1u);
}

// A reply's route to the client is kept in the flow's reverse entry for a
// second, as a request's is in its connection entry (lb_test.cpp): the next
// replies take the MACs from there, until it expires.
TEST_F(LbFlowTest, AReplyKeepsItsRouteInTheReverseEntry) {
  from_client(client4(40105, kSyn));
  ASSERT_EQ(from_backend(backend4(40105, kSyn | kAck)).action, XDP_REDIRECT);
  auto rev = lb_->reverse(N::kBackend4[0], kBport, N::kClient4, 40105, IPPROTO_TCP);
  ASSERT_TRUE(rev);
  EXPECT_GT(rev->route.until_ns, 0u);
  EXPECT_EQ(rev->route.in_ifindex, static_cast<uint32_t>(net_->backend_ifindex()));
  EXPECT_EQ(rev->route.ifindex, static_cast<uint32_t>(net_->client_ifindex()));
  EXPECT_EQ(std::to_array(rev->route.dmac), N::client_mac());
  EXPECT_EQ(std::to_array(rev->route.smac), net_->client_if_mac());
  const core::Mac kept{0x02, 0, 0, 0, 0x5e, 0x98};
  auto e = *rev;
  std::copy(kept.begin(), kept.end(), e.route.dmac);
  lb_->put_reverse(N::kBackend4[0], kBport, N::kClient4, 40105, IPPROTO_TCP, e);
  auto r = from_backend(backend4(40105, kAck, 10));
  EXPECT_EQ(r.action, XDP_REDIRECT);
  EXPECT_EQ(FrameView{r.out}.eth_dst(), kept) << "the kept route was not used";
  EXPECT_EQ(FrameView{r.out}.src(), N::kVip4);
  e.route.until_ns = 1;
  lb_->put_reverse(N::kBackend4[0], kBport, N::kClient4, 40105, IPPROTO_TCP, e);
  lb_->forget_hot();  // a slot copied the route the entry kept before
  r = from_backend(backend4(40105, kAck, 10));
  EXPECT_EQ(FrameView{r.out}.eth_dst(), N::client_mac()) << "an expired route was used";
  rev = lb_->reverse(N::kBackend4[0], kBport, N::kClient4, 40105, IPPROTO_TCP);
  ASSERT_TRUE(rev);
  EXPECT_GT(rev->route.until_ns, 1u) << "the FIB's answer was not kept again";
  EXPECT_EQ(lb_->counter(BG_LB_REPLIED), 3u);
}

// A backend's replies are served from their flow's hot slot once the
// stages have nothing left to time (the first response payload): the VIP as
// source, counted as replies; an RST still goes to the stages, which count it.
TEST_F(LbFlowTest, RepliesAreServedFromTheirHotSlotOnceNothingIsLeftToTime) {
  from_client(client4(40120, kSyn));
  from_backend(backend4(40120, kSyn | kAck));
  from_client(client4(40120, kAck | kPsh, 100));
  from_backend(backend4(40120, kAck | kPsh, 200));  // the first response: timed
  auto h = lb_->hot(N::kBackend4[0], kBport, N::kClient4, 40120, IPPROTO_TCP);
  ASSERT_TRUE(h) << "no reply slot after a frame by the kept route";
  EXPECT_EQ(h->kind, 2u);  // BG_LB_KIND_REPLY
  EXPECT_FALSE(h->flags & BG_LB_HOT_PAYLOAD_SLOW);
  const core::Mac mark{0x02, 0, 0, 0, 0x5e, 0x79};
  ASSERT_TRUE(
      lb_->edit_hot(N::kBackend4[0], kBport, N::kClient4, 40120, IPPROTO_TCP,
                    [&](bg_lb_hot &x) { std::copy(mark.begin(), mark.end(), x.route.dmac); }));
  auto f = backend4(40120, kAck | kPsh, 300);
  auto r = from_backend(f);
  EXPECT_EQ(r.action, XDP_REDIRECT);
  FrameView v{r.out};
  EXPECT_EQ(v.eth_dst(), mark) << "not served from the slot";
  EXPECT_EQ(v.src(), N::kVip4);
  EXPECT_EQ(v.sport(), kVport);
  EXPECT_EQ(v.dst(), N::kClient4);
  EXPECT_EQ(v.ttl(), 63);
  EXPECT_TRUE(ipv4_csum_ok(r.out, 14));
  EXPECT_TRUE(l4_csum_ok(r.out, 14));
  auto rst = from_backend(backend4(40120, kRst | kAck));
  EXPECT_NE(FrameView{rst.out}.eth_dst(), mark) << "an RST used the slot";
  auto st = lb_->stats(1);
  EXPECT_EQ(st.resets, 1u);
  EXPECT_EQ(st.responses, 1u);
  EXPECT_EQ(st.rx_packets, 4u);
  EXPECT_EQ(lb_->counter(BG_LB_REPLIED), 4u);
}

TEST_F(LbFlowTest, TheBackendsDelaysAndResetsLandInItsStats) {
  from_client(client4(40110, kSyn));
  sleep_ms(20);
  from_backend(backend4(40110, kSyn | kAck));
  auto st = lb_->stats(1);
  EXPECT_EQ(st.connects, 1u);
  EXPECT_GE(st.connect_ns, 20'000'000u);
  EXPECT_LT(st.connect_ns, 5'000'000'000u);
  auto c = lb_->conn(N::kClient4, 40110, N::kVip4, kVport, IPPROTO_TCP);
  ASSERT_TRUE(c);
  EXPECT_EQ(c->flags, static_cast<uint32_t>(BG_LB_CONN_SYN | BG_LB_CONN_ANSWERED));

  from_client(client4(40110, kAck));              // the handshake's ACK: no payload
  from_client(client4(40110, kAck | kPsh, 120));  // the request
  c = lb_->conn(N::kClient4, 40110, N::kVip4, kVport, IPPROTO_TCP);
  ASSERT_TRUE(c);
  EXPECT_TRUE(c->flags & BG_LB_CONN_REQUEST);
  EXPECT_GT(c->request_ns, c->opened_ns);
  sleep_ms(30);
  from_backend(backend4(40110, kAck));  // acknowledges, answers nothing yet
  EXPECT_EQ(lb_->stats(1).responses, 0u);
  from_backend(backend4(40110, kAck | kPsh, 300));
  from_backend(backend4(40110, kAck | kPsh, 300));  // only the first response counts
  st = lb_->stats(1);
  EXPECT_EQ(st.responses, 1u);
  EXPECT_GE(st.response_ns, 30'000'000u);
  EXPECT_LT(st.response_ns, 5'000'000'000u);
  EXPECT_EQ(st.connects, 1u) << "only the first reply is the SYN-ACK";
  EXPECT_EQ(st.resets, 0u);
  from_backend(backend4(40110, kRst | kAck));
  EXPECT_EQ(lb_->stats(1).resets, 1u);
  EXPECT_EQ(lb_->stats(1).rx_packets, 5u);
  EXPECT_EQ(lb_->stats(1).packets, 3u);

  // A flow that did not start with a SYN measures no connect delay.
  from_client(client4(40111, kAck));
  from_backend(backend4(40111, kSyn | kAck));
  EXPECT_EQ(lb_->stats(1).connects, 1u);
}

// An ICMP error's inner packet, as the VIP sent it (without Ethernet).
std::vector<uint8_t> quoted(PacketBuilder b, size_t keep = 0) {
  auto f = b.build();
  f.erase(f.begin(), f.begin() + 14);
  if (keep)
    f.resize(keep);
  return f;
}

uint16_t u16(const std::vector<uint8_t> &f, size_t off) {
  return static_cast<uint16_t>(f[off] << 8 | f[off + 1]);
}

TEST_F(LbFlowTest, FragNeededReachesTheFlowsBackendWithTheInnerPacketItsOwn) {
  from_client(client4(40200, kSyn));
  // What the VIP (the backend's reply, rewritten) sent, too big for a link.
  auto inner = quoted(
      PacketBuilder().ipv4(N::kVip4, N::kClient4).tcp(kVport, 40200, kAck | kPsh).payload(60));
  auto f = PacketBuilder().ipv4(N::kRouter4, N::kVip4).icmp(3, 4).payload(inner).build();
  ASSERT_TRUE(ipv4_csum_ok(f, 42) && l4_csum_ok(f, 42) && l4_csum_ok(f, 14));
  auto r = from_client(f);
  EXPECT_EQ(r.action, XDP_REDIRECT);
  ASSERT_EQ(r.out.size(), f.size());
  FrameView v{r.out};
  EXPECT_EQ(v.dst(), N::kBackend4[0]);
  EXPECT_EQ(v.src(), N::kRouter4);
  EXPECT_EQ(v.ttl(), 63);
  EXPECT_EQ(v.eth_dst(), N::backend_mac(0));
  EXPECT_TRUE(ipv4_csum_ok(r.out, 14));
  EXPECT_TRUE(l4_csum_ok(r.out, 14)) << "the ICMP checksum";
  const size_t in = 14 + 20 + 8;
  std::vector<uint8_t> want_src = {198, 18, 1, 10};
  EXPECT_EQ(std::vector<uint8_t>(r.out.begin() + in + 12, r.out.begin() + in + 16), want_src);
  EXPECT_EQ(u16(r.out, in + 20), kBport) << "the inner source port is the backend's";
  EXPECT_EQ(u16(r.out, in + 22), 40200);
  EXPECT_TRUE(ipv4_csum_ok(r.out, in)) << "the inner IP header";
  EXPECT_TRUE(l4_csum_ok(r.out, in)) << "the inner TCP segment, whole here";
  EXPECT_EQ(lb_->counter(BG_LB_ICMP), 1u);
  EXPECT_EQ(lb_->counter(BG_LB_FORWARDED), 2u);

  // Quoting only 8 bytes of TCP (no checksum field): ports and sums still right.
  auto shortq = quoted(PacketBuilder().ipv4(N::kVip4, N::kClient4).tcp(kVport, 40200, kAck), 28);
  auto g = PacketBuilder().ipv4(N::kRouter4, N::kVip4).icmp(11, 0).payload(shortq).build();
  auto rs = from_client(g);
  EXPECT_EQ(rs.action, XDP_REDIRECT);
  EXPECT_TRUE(l4_csum_ok(rs.out, 14));
  EXPECT_TRUE(ipv4_csum_ok(rs.out, in));
  EXPECT_EQ(u16(rs.out, in + 20), kBport);

  // About a flow the balancer does not have: the stack's.
  auto stray = quoted(PacketBuilder().ipv4(N::kVip4, N::kClient4).tcp(kVport, 40299, kAck));
  auto h = PacketBuilder().ipv4(N::kRouter4, N::kVip4).icmp(3, 4).payload(stray).build();
  auto rh = from_client(h);
  EXPECT_EQ(rh.action, XDP_PASS);
  EXPECT_EQ(rh.out, h);
  EXPECT_EQ(lb_->counter(BG_LB_ICMP), 2u);
}

TEST_F(LbFlowTest, PacketTooBigReachesTheFlowsBackendOverIpv6) {
  auto syn = PacketBuilder().ipv6(N::kClient6, N::kVip6).tcp(40300, kVport, kSyn).build();
  EXPECT_EQ(from_client(syn).action, XDP_REDIRECT);
  auto inner = quoted(
      PacketBuilder().ipv6(N::kVip6, N::kClient6).tcp(kVport, 40300, kAck | kPsh).payload(80));
  auto f = PacketBuilder().ipv6(N::kRouter6, N::kVip6).icmp(2, 0).payload(inner).build();
  ASSERT_TRUE(l4_csum_ok(f, 14) && l4_csum_ok(f, 62));
  auto r = from_client(f);
  EXPECT_EQ(r.action, XDP_REDIRECT);
  ASSERT_EQ(r.out.size(), f.size());
  FrameView v{r.out};
  EXPECT_EQ(v.dst(), N::kBackend6[0]);
  EXPECT_EQ(v.ttl(), 63);
  EXPECT_EQ(v.eth_dst(), N::backend_mac(0));
  EXPECT_TRUE(l4_csum_ok(r.out, 14)) << "the ICMPv6 checksum, pseudo header included";
  const size_t in = 14 + 40 + 8;
  Addr src{};
  std::memcpy(src.data(), r.out.data() + in + 8, 16);
  EXPECT_EQ(addr_text(src), N::kBackend6[0]);
  EXPECT_EQ(u16(r.out, in + 40), kBport);
  EXPECT_TRUE(l4_csum_ok(r.out, in)) << "the inner TCP segment";
  EXPECT_EQ(lb_->counter(BG_LB_ICMP), 1u);
}

// The ids of the maps a program uses, and the fd of the one named `name`.
int prog_map_fd(int prog_fd, const char *name) {
  bpf_prog_info info{};
  uint32_t len = sizeof(info);
  if (bpf_obj_get_info_by_fd(prog_fd, &info, &len))
    return -1;
  std::vector<uint32_t> ids(info.nr_map_ids);
  bpf_prog_info again{};
  again.nr_map_ids = static_cast<uint32_t>(ids.size());
  again.map_ids = reinterpret_cast<uint64_t>(ids.data());
  len = sizeof(again);
  if (bpf_obj_get_info_by_fd(prog_fd, &again, &len))
    return -1;
  for (uint32_t id : ids) {
    int fd = bpf_map_get_fd_by_id(id);
    bpf_map_info mi{};
    uint32_t ml = sizeof(mi);
    if (fd >= 0 && bpf_obj_get_info_by_fd(fd, &mi, &ml) == 0 && std::strcmp(mi.name, name) == 0)
      return fd;
    if (fd >= 0)
      ::close(fd);
  }
  return -1;
}

TEST(LbChain, TheFilterHandsTheBalancerOnlyWhatItPasses) {
  LbNet net;
  auto lb = one_backend();
  auto policy = policy_from_yaml("limits: {rate: 100000, burst: 100000}\ndeny: [198.18.0.66]\n");
  auto with = FilterHarness::load_or_abort(policy, 1024);
  auto without = FilterHarness::load_or_abort(policy, 1024);
  bpf::UniqueFd next(prog_map_fd(with.prog_fd(), "bg_xdp_next"));
  ASSERT_TRUE(next.valid()) << "the filter has no bg_xdp_next program array";
  uint32_t slot = BG_NEXT_LB;
  int lb_fd = lb->prog_fd();
  ASSERT_EQ(bpf_map_update_elem(next.get(), &slot, &lb_fd, BPF_ANY), 0) << std::strerror(errno);

  auto denied = PacketBuilder().ipv4("198.18.0.66", N::kVip4).tcp(40400, kVport, kSyn).build();
  auto to_vip = client4(40401, kSyn);
  auto other = PacketBuilder().ipv4(N::kClient4, "198.18.0.1").udp(40402, 53).build();
  auto run = [&](FilterHarness &h, const std::vector<uint8_t> &f) {
    return run_in(net.ns(), h.prog_fd(), net.client_ifindex(), f);
  };

  EXPECT_EQ(run(with, denied).action, XDP_DROP);
  EXPECT_EQ(run(without, denied).action, XDP_DROP);
  EXPECT_FALSE(lb->conn("198.18.0.66", 40400, N::kVip4, kVport, IPPROTO_TCP))
      << "a frame the filter dropped was balanced";
  auto fwd = run(with, to_vip);
  EXPECT_EQ(fwd.action, XDP_REDIRECT);
  EXPECT_EQ(FrameView{fwd.out}.dst(), N::kBackend4[0]);
  EXPECT_EQ(run(without, to_vip).action, XDP_PASS);
  auto passed = run(with, other);
  EXPECT_EQ(passed.action, XDP_PASS);
  EXPECT_EQ(passed.out, other);
  EXPECT_EQ(run(without, other).action, XDP_PASS);

  EXPECT_EQ(lb->counter(BG_LB_FORWARDED), 1u);
  EXPECT_EQ(lb->counter(BG_LB_NOT_SERVICE), 1u);
  EXPECT_EQ(lb->counter(BG_LB_NEW_FLOW), 1u);
  auto a = with.counters(), b = without.counters();
  for (size_t i = 0; i < a.size(); i++) {
    EXPECT_EQ(a[i].packets, b[i].packets) << "filter counter " << i;
    EXPECT_EQ(a[i].bytes, b[i].bytes) << "filter counter " << i;
  }
  EXPECT_EQ(with.packets(BG_VERDICT_DROP, BG_REASON_DENY), 1u);
  EXPECT_EQ(with.packets(BG_VERDICT_PASS, BG_REASON_OK), 2u);
}

// The filter pins its program array with its maps; a filter pinned by a
// bpfgate older than the balancer has none, and is adopted all the same.
TEST(LbChain, AFilterPinnedWithoutItsProgramArrayIsAdopted) {
  ASSERT_TRUE(bpf::ensure_bpffs(bpf::kDefaultBpffs).ok());
  const std::string dir =
      bpf::feature_dir(bpf::kDefaultBpffs, "bpfgate-test-lbnext-" + std::to_string(::getpid()));
  struct RemoveDir {
    std::string path;
    ~RemoveDir() {
      std::error_code ec;
      std::filesystem::remove_all(path, ec);
    }
  } cleanup{dir};
  auto skel = bpf::XdpFilterSkel::open("xdp_filter");
  ASSERT_TRUE(skel) << skel.error().what();
  agent::prepare_filter(*skel, 1024);
  ASSERT_TRUE(skel->load().ok());
  auto set = bpf::PinSet::from_object(dir, agent::Datapath::pin_specs(), (*skel)->obj);
  ASSERT_TRUE(set) << set.error().what();
  ASSERT_TRUE(set->pin().ok());
  const std::string next = bpf::pin_path(dir, BG_PIN_NEXT);
  ASSERT_TRUE(bpf::exists(next)) << "the program array is pinned with the filter's maps";
  auto dp = agent::Datapath::from_pins(dir);
  EXPECT_TRUE(dp) << dp.error().what();
  ASSERT_TRUE(bpf::unpin(next).ok());  // as an older bpfgate left its pins
  auto old = agent::Datapath::from_pins(dir);
  EXPECT_TRUE(old) << old.error().what();
  EXPECT_TRUE(set->remove().ok());
}

}  // namespace
}  // namespace bpfgate::test::lb_flow
