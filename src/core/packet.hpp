// A fluent builder of Ethernet frames: VLAN tags, IPv4 (options, fragments),
// IPv6 (extension headers), TCP/UDP/ICMP, with correct lengths and checksums.
// Used by the traffic generator and by the tests to craft frames.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

namespace bpfgate::core {

using Mac = std::array<uint8_t, 6>;

class PacketBuilder {
 public:
  PacketBuilder &eth(const Mac &src, const Mac &dst);
  PacketBuilder &vlan(uint16_t id, uint16_t tpid = 0x8100);  // outermost first
  PacketBuilder &ipv4(const std::string &src, const std::string &dst);
  PacketBuilder &ipv4(uint32_t src_host_order, uint32_t dst_host_order);
  PacketBuilder &ipv4_options(std::vector<uint8_t> options);  // padded to 4 bytes
  PacketBuilder &fragment(uint16_t offset_bytes, bool more_fragments);
  PacketBuilder &ttl(uint8_t ttl);
  PacketBuilder &ipv6(const std::string &src, const std::string &dst);
  PacketBuilder &ipv6(const std::array<uint8_t, 16> &src, const std::array<uint8_t, 16> &dst);
  // An IPv6 extension header (hop-by-hop 0, routing 43, destination 60,
  // fragment 44) before the transport header, in the order given.
  PacketBuilder &ipv6_ext(uint8_t type, uint8_t length_8_octets = 0);
  PacketBuilder &udp(uint16_t sport, uint16_t dport);
  PacketBuilder &tcp(uint16_t sport, uint16_t dport, uint8_t flags = 0x02 /* SYN */);
  // The TCP sequence and acknowledgment numbers (default 1 and 0).
  PacketBuilder &tcp_seq(uint32_t seq, uint32_t ack);
  // TCP options after the 20-byte header, padded with end-of-options to 4 bytes.
  PacketBuilder &tcp_options(std::vector<uint8_t> options);
  PacketBuilder &icmp(uint8_t type, uint8_t code);
  PacketBuilder &payload(size_t bytes, uint8_t fill = 0xab);
  PacketBuilder &payload(std::vector<uint8_t> bytes);
  // Pads the frame with payload so that it is `bytes` long (without FCS).
  PacketBuilder &frame_size(size_t bytes);

  std::vector<uint8_t> build() const;

 private:
  enum class L3 { kNone, kV4, kV6 };
  enum class L4 { kNone, kUdp, kTcp, kIcmp };
  // build()'s parts: the transport header (without payload), the IP header's
  // length with IPv6 extension headers, the IP protocol number, the Ethernet
  // header with VLAN tags, the IPv4 or IPv6 header (returning the pseudo
  // header's sum), the transport checksum over the frame's l4 part.
  std::vector<uint8_t> l4_header() const;
  size_t l3_length() const;
  uint8_t l4_protocol() const;
  void put_l2(std::vector<uint8_t> &f) const;
  uint32_t put_v4(std::vector<uint8_t> &f, size_t l4_len, uint8_t proto) const;
  uint32_t put_v6(std::vector<uint8_t> &f, size_t ext_len, size_t l4_len, uint8_t proto) const;
  void set_l4_checksum(std::vector<uint8_t> &f, size_t l4_start, size_t l4_len,
                       uint32_t pseudo) const;
  Mac src_mac_{0x02, 0, 0, 0, 0, 1}, dst_mac_{0x02, 0, 0, 0, 0, 2};
  std::vector<std::pair<uint16_t, uint16_t>> vlans_;  // tpid, id
  L3 l3_ = L3::kNone;
  uint32_t v4_src_ = 0, v4_dst_ = 0;
  std::vector<uint8_t> v4_opts_;
  uint16_t frag_off_ = 0;
  bool more_frags_ = false;
  uint8_t ttl_ = 64;
  std::array<uint8_t, 16> v6_src_{}, v6_dst_{};
  std::vector<std::pair<uint8_t, uint8_t>> v6_ext_;
  L4 l4_ = L4::kNone;
  uint16_t sport_ = 0, dport_ = 0;
  uint8_t tcp_flags_ = 0, icmp_type_ = 0, icmp_code_ = 0;
  uint32_t tcp_seq_ = 1, tcp_ack_ = 0;
  std::vector<uint8_t> tcp_opts_;
  std::vector<uint8_t> payload_;
  size_t frame_size_ = 0;
};

// Parses "aa:bb:cc:dd:ee:ff"; throws nothing, returns false on bad input.
bool parse_mac(const std::string &text, Mac &out);
// One's complement sum as used by IP/TCP/UDP checksums.
uint16_t inet_checksum(const uint8_t *data, size_t len, uint32_t seed = 0);

}  // namespace bpfgate::core
