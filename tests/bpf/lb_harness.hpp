// The XDP load balancer (bpf/lb/lb.bpf.c) for BPF unit tests: its object
// loaded into the kernel (attached nowhere) with its maps filled by hand
// (the control plane's Maglev builder is not used here), a network namespace
// whose routes and neighbours make bpf_fib_lookup answer, runs of crafted
// frames inside it, and independent checks of what came out.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "bpfgate/abi/lb.h"
#include "bpfgate/abi/xdp.h" /* struct bg_counter */
#include "core/packet.hpp"
#include "support/system.hpp"

struct lb;  // the generated skeleton (lb.skel.h)

namespace bpfgate::test {

using Addr = std::array<uint8_t, 16>;  // IPv6, or IPv4 v4-mapped, as the maps hold it
Addr addr16(const std::string &text);
std::string addr_text(const Addr &a);

// One namespace with forwarding on and two veth pairs (both ends in it): the
// clients' side (kClientNet) and the backends' side (kBackendNet), with
// permanent neighbours for kClient*, the backends kBackendA..C and
// kNearBackend (on the clients' side), none for kNoNeighBackend, and a
// blackhole route over kBlackholeNet.
class LbNet {
 public:
  static constexpr const char *kClient4 = "198.18.0.10";
  static constexpr const char *kClient6 = "2001:db8::10";
  static constexpr const char *kRouter4 = "198.18.0.254";  // sends ICMP errors
  static constexpr const char *kRouter6 = "2001:db8::fe";
  static constexpr const char *kNearBackend4 = "198.18.0.20";
  static constexpr const char *kBackend4[3] = {"198.18.1.10", "198.18.1.11", "198.18.1.12"};
  static constexpr const char *kBackend6[3] = {"2001:db8:1::10", "2001:db8:1::11",
                                               "2001:db8:1::12"};
  static constexpr const char *kNoNeighBackend4 = "198.18.1.50";
  static constexpr const char *kNoNeighBackend6 = "2001:db8:1::50";
  static constexpr const char *kBlackholeBackend4 = "198.18.3.10";
  static constexpr const char *kVip4 = "198.18.2.1";
  static constexpr const char *kVip6 = "2001:db8:2::1";

  LbNet();
  const Netns &ns() const { return ns_; }
  int client_ifindex() const { return client_ifindex_; }
  int backend_ifindex() const { return backend_ifindex_; }
  core::Mac client_if_mac() const { return client_mac_; }
  core::Mac backend_if_mac() const { return backend_mac_; }
  // The neighbour MAC the namespace holds for a backend (index 0..2) or a client.
  static core::Mac backend_mac(int i);
  static core::Mac client_mac();
  static core::Mac near_backend_mac();

 private:
  Netns ns_;
  int client_ifindex_ = 0, backend_ifindex_ = 0;
  core::Mac client_mac_{}, backend_mac_{};
};

struct XdpRun {
  uint32_t action = ~0U;
  std::vector<uint8_t> out;
};

// Runs prog_fd once on `frame` on a thread inside `ns`, as if received on
// ifindex (bpf_fib_lookup looks in that namespace, from that device).
XdpRun run_in(const Netns &ns, int prog_fd, int ifindex, const std::vector<uint8_t> &frame);

class LbHarness {
 public:
  // Loads the balancer with rings of ring_size entries (a prime) and
  // connection tables of conns entries.
  explicit LbHarness(uint32_t ring_size = 251, uint32_t conns = 4096);
  ~LbHarness();
  LbHarness(const LbHarness &) = delete;
  LbHarness &operator=(const LbHarness &) = delete;

  int prog_fd() const;
  uint32_t ring_size() const { return ring_size_; }

  void set_ctl(uint32_t active, uint64_t conn_idle_ns);
  void add_service(uint8_t gen, const std::string &vip, uint16_t port, uint8_t proto, uint32_t id,
                   uint32_t slot, uint32_t flags = 0);
  void set_backend(uint32_t id, const std::string &addr, uint16_t port, uint8_t flags,
                   uint32_t service);
  // Ring `slot` filled with ids, repeated to ring_size entries.
  void fill_ring(uint32_t slot, const std::vector<uint32_t> &ids);
  uint32_t ring_at(uint32_t slot, uint32_t index) const;

  uint64_t counter(bg_lb_counter c) const;  // packets, summed over CPUs
  bg_lb_backend_stats stats(uint32_t backend) const;
  std::optional<bg_lb_conn> conn(const std::string &client, uint16_t cport, const std::string &vip,
                                 uint16_t vport, uint8_t proto) const;
  std::optional<bg_lb_rev> reverse(const std::string &backend, uint16_t bport,
                                   const std::string &client, uint16_t cport, uint8_t proto) const;
  void put_conn(const std::string &client, uint16_t cport, const std::string &vip, uint16_t vport,
                uint8_t proto, const bg_lb_conn &c);
  void put_reverse(const std::string &backend, uint16_t bport, const std::string &client,
                   uint16_t cport, uint8_t proto, const bg_lb_rev &r);

  // The hot slot (struct bg_lb_hot) holding the flow of frames from src:sport
  // to dst:dport, on whichever CPU holds it; edit_hot changes it in place
  // (false if no CPU holds it); forget_hot empties every slot, as after a
  // by-hand change of the entries the slots were filled from.
  std::optional<bg_lb_hot> hot(const std::string &src, uint16_t sport, const std::string &dst,
                               uint16_t dport, uint8_t proto) const;
  bool edit_hot(const std::string &src, uint16_t sport, const std::string &dst, uint16_t dport,
                uint8_t proto, const std::function<void(bg_lb_hot &)> &edit);
  void forget_hot();

 private:
  int fd(const char *map) const;
  struct lb *skel_ = nullptr;
  uint32_t ring_size_;
};

// An untagged frame's headers, read independently of the datapath.
struct FrameView {
  const std::vector<uint8_t> &f;
  bool v6() const { return f.size() > 13 && f[12] == 0x86 && f[13] == 0xdd; }
  size_t l4() const { return 14 + (v6() ? 40 : (f[14] & 0x0f) * 4u); }
  uint8_t proto() const { return v6() ? f[20] : f[23]; }
  uint8_t ttl() const { return v6() ? f[21] : f[22]; }
  std::string src() const;
  std::string dst() const;
  uint16_t u16(size_t off) const { return static_cast<uint16_t>(f[off] << 8 | f[off + 1]); }
  uint16_t sport() const { return u16(l4()); }
  uint16_t dport() const { return u16(l4() + 2); }
  core::Mac eth_dst() const;
  core::Mac eth_src() const;
};

// Checksums recomputed over the bytes (a full one's complement sum): the IPv4
// header's, and the transport's with its pseudo header (TCP, UDP, ICMPv6) or
// without (ICMP). A UDP checksum of 0 over IPv4 is "none", which is valid.
// `l3` is where the IP header starts (the inner packet of an ICMP error too).
bool ipv4_csum_ok(const std::vector<uint8_t> &f, size_t l3);
bool l4_csum_ok(const std::vector<uint8_t> &f, size_t l3);

}  // namespace bpfgate::test
