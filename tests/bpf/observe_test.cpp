// The tc latency probes (bpf/observe/observe.h) on crafted segments
// through BPF_PROG_TEST_RUN: handshake time, requests and responses with
// their latency, HTTP/1.x status classes, resets, and everything that must
// not count (other ports, a response with no request, pure ACKs, IPv6 too).
#include <linux/bpf.h>
#include <linux/pkt_cls.h>

#include <gtest/gtest.h>

#include <chrono>
#include <cstring>
#include <thread>

#include "features/observe/probes.hpp"
#include "bpf/map.hpp"
#include "bpf/observe_skeletons.hpp"
#include "core/packet.hpp"
#include "support/prog_runner.hpp"

namespace bpfgate::test {
namespace {

using core::PacketBuilder;
constexpr uint8_t kSyn = 0x02, kAck = 0x10, kPsh = 0x08, kRst = 0x04, kFin = 0x01;

std::vector<uint8_t> bytes(const std::string &s) {
  return std::vector<uint8_t>(s.begin(), s.end());
}

class Probes : public ::testing::Test {
 protected:
  void SetUp() override {
    auto s = bpf::ObserveTcSkel::open("observe_tc");
    ASSERT_TRUE(s.ok());
    skel_ = std::make_unique<bpf::ObserveTcSkel>(std::move(*s));
    auto st = skel_->load();
    ASSERT_TRUE(st.ok()) << st.error().what();
    set_service(1, 80, true);
    set_service(2, 5432, false);
  }
  void set_service(uint16_t id, uint16_t port, bool http) {
    bpf::Map<__u32, bg_obs_service> m(bpf_map__fd((*skel_)->maps.bg_obs_services));
    ASSERT_TRUE(
        m.update(port, bg_obs_service{id, static_cast<__u16>(http ? BG_OBS_HTTP : 0)}).ok());
  }
  // Client -> service, as tc ingress sees it.
  void in(const std::vector<uint8_t> &f) {
    run(bpf_program__fd((*skel_)->progs.bg_obs_tc_ingress), f);
  }
  // Service -> client, as tc egress sees it.
  void out(const std::vector<uint8_t> &f) {
    run(bpf_program__fd((*skel_)->progs.bg_obs_tc_egress), f);
  }
  void run(int fd, const std::vector<uint8_t> &f) {
    auto r = ProgRunner(fd).run(f);
    ASSERT_TRUE(r.ok()) << r.error().what();
    EXPECT_EQ(static_cast<int32_t>(r->retval), TC_ACT_UNSPEC)
        << "the probes give no verdict: later filters on the hook still run";
    EXPECT_EQ(r->data_out, f) << "the probes never change a packet";
  }
  bg_obs_stats stats(uint32_t id) {
    bpf::PerCpuMap<__u32, bg_obs_stats> m(bpf_map__fd((*skel_)->maps.bg_obs_stats));
    auto v = m.lookup(id);
    bg_obs_stats sum{};
    EXPECT_TRUE(v.ok());
    constexpr size_t kWords = sizeof(bg_obs_stats) / 8;
    for (const auto &c : *v)
      for (size_t i = 0; i < kWords; i++)
        reinterpret_cast<uint64_t *>(&sum)[i] += reinterpret_cast<const uint64_t *>(&c)[i];
    return sum;
  }
  static std::vector<uint8_t> c2s(uint8_t flags, const std::string &payload = "",
                                  uint16_t cport = 40000, uint16_t port = 80) {
    PacketBuilder b;
    b.ipv4("198.18.0.2", "198.18.0.1").tcp(cport, port, flags);
    if (!payload.empty())
      b.payload(bytes(payload));
    return b.build();
  }
  static std::vector<uint8_t> s2c(uint8_t flags, const std::string &payload = "",
                                  uint16_t cport = 40000, uint16_t port = 80) {
    PacketBuilder b;
    b.ipv4("198.18.0.1", "198.18.0.2").tcp(port, cport, flags);
    if (!payload.empty())
      b.payload(bytes(payload));
    return b.build();
  }
  std::unique_ptr<bpf::ObserveTcSkel> skel_;
};

TEST_F(Probes, HandshakeRequestResponseAndStatusClass) {
  in(c2s(kSyn));
  out(s2c(kSyn | kAck));
  in(c2s(kAck));
  auto s = stats(1);
  EXPECT_EQ(s.handshakes, 1u);
  EXPECT_GT(s.handshake_sum_ns, 0u);
  in(c2s(kAck | kPsh, "GET / HTTP/1.1\r\nHost: x\r\n\r\n"));
  in(c2s(kAck | kPsh, "more of the same request"));  // still one request
  in(c2s(kAck));
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  out(s2c(kAck | kPsh, "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"));
  out(s2c(kAck | kPsh, "rest of the response"));  // no second response
  s = stats(1);
  EXPECT_EQ(s.requests, 1u);
  EXPECT_EQ(s.responses, 1u);
  EXPECT_GE(s.latency_sum_ns, 20'000'000u);
  EXPECT_LT(s.latency_sum_ns, 200'000'000u);
  EXPECT_EQ(s.status[BG_HTTP_4XX], 1u);
  uint64_t in_hist = 0;
  for (uint64_t c : s.latency_hist)
    in_hist += c;
  EXPECT_EQ(in_hist, 1u);
  EXPECT_EQ(s.latency_hist[bg_obs_bucket(s.latency_sum_ns)], 1u);
  // Keep-alive: the next request on the same connection is timed again.
  in(c2s(kAck | kPsh, "GET /b HTTP/1.1\r\n\r\n"));
  out(s2c(kAck | kPsh, "HTTP/1.0 503 Service Unavailable\r\n\r\n"));
  in(c2s(kAck | kPsh, "GET /c HTTP/1.1\r\n\r\n"));
  out(s2c(kAck | kPsh, "HTTP/1.1 200 OK\r\n\r\n"));
  in(c2s(kAck | kPsh, "GET /d HTTP/1.1\r\n\r\n"));
  out(s2c(kAck | kPsh, "SSH-2.0-not http"));
  s = stats(1);
  EXPECT_EQ(s.requests, 4u);
  EXPECT_EQ(s.responses, 4u);
  EXPECT_EQ(s.status[BG_HTTP_5XX], 1u);
  EXPECT_EQ(s.status[BG_HTTP_2XX], 1u);
  EXPECT_EQ(s.status[BG_HTTP_OTHER], 1u);
}

TEST_F(Probes, ResetsBothWays) {
  in(c2s(kSyn, "", 40001));
  out(s2c(kRst | kAck, "", 40001));  // a closed port answers with RST
  in(c2s(kAck | kPsh, "x", 40002));
  in(c2s(kRst, "", 40002));
  auto s = stats(1);
  EXPECT_EQ(s.resets_tx, 1u);
  EXPECT_EQ(s.resets_rx, 1u);
  EXPECT_EQ(s.requests, 1u);
  EXPECT_EQ(s.responses, 0u);
  out(s2c(kAck | kPsh, "HTTP/1.1 200 OK\r\n\r\n", 40002));  // after the RST: no request open
  EXPECT_EQ(stats(1).responses, 0u);
}

TEST_F(Probes, OnlyServicesCountAndTcpServicesHaveNoStatus) {
  in(c2s(kAck | kPsh, "GET / HTTP/1.1\r\n\r\n", 40000, 8080));  // not a service
  out(s2c(kAck | kPsh, "HTTP/1.1 200 OK\r\n\r\n", 40000, 8080));
  out(s2c(kAck | kPsh, "HTTP/1.1 200 OK\r\n\r\n", 40003, 80));  // a server speaking first
  in(c2s(kAck | kPsh, "Q", 40000, 5432));
  out(s2c(kAck | kPsh, "HTTP/1.1 200 OK\r\n\r\n", 40000, 5432));
  in(c2s(kFin | kAck, "", 40000, 5432));
  EXPECT_EQ(stats(1).requests, 0u);
  EXPECT_EQ(stats(1).responses, 0u);
  auto pg = stats(2);
  EXPECT_EQ(pg.requests, 1u);
  EXPECT_EQ(pg.responses, 1u);
  EXPECT_EQ(pg.status[BG_HTTP_2XX], 0u) << "a tcp service has no status classes";
  for (uint32_t id = 3; id < BG_OBS_SERVICES_MAX; id++)
    EXPECT_EQ(stats(id).requests, 0u);
}

TEST_F(Probes, Ipv6AndVlan) {
  auto v6 = [](bool to_service, uint8_t flags, const std::string &payload) {
    PacketBuilder b;
    b.vlan(7);
    if (to_service)
      b.ipv6("2001:db8::2", "2001:db8::1").tcp(40000, 80, flags);
    else
      b.ipv6("2001:db8::1", "2001:db8::2").tcp(80, 40000, flags);
    if (!payload.empty())
      b.payload(bytes(payload));
    return b.build();
  };
  in(v6(true, kAck | kPsh, "GET / HTTP/1.1\r\n\r\n"));
  out(v6(false, kAck | kPsh, "HTTP/1.1 302 Found\r\n\r\n"));
  auto s = stats(1);
  EXPECT_EQ(s.requests, 1u);
  EXPECT_EQ(s.status[BG_HTTP_3XX], 1u);
}

TEST(ObserveBuckets, Log2OfMicroseconds) {
  EXPECT_EQ(bg_obs_bucket(0), 0u);
  EXPECT_EQ(bg_obs_bucket(999), 0u);          // < 1 us
  EXPECT_EQ(bg_obs_bucket(1000), 1u);         // [1, 2) us
  EXPECT_EQ(bg_obs_bucket(3999), 2u);         // [2, 4) us
  EXPECT_EQ(bg_obs_bucket(50'000'000), 16u);  // 50 ms: [32.768, 65.536) ms
  EXPECT_EQ(bg_obs_bucket(~0ULL), BG_OBS_HIST_BUCKETS - 1);
  for (uint32_t i = 1; i + 1 < BG_OBS_HIST_BUCKETS; i++) {
    uint64_t lo_ns = (1ULL << (i - 1)) * 1000, hi_ns = (1ULL << i) * 1000;
    EXPECT_EQ(bg_obs_bucket(lo_ns), i);
    EXPECT_EQ(bg_obs_bucket(hi_ns - 1), i);
    EXPECT_LT(hi_ns / 1e9 - 1e-12, agent::bucket_upper_seconds(i));
  }
}

}  // namespace
}  // namespace bpfgate::test
