#include "core/packet.hpp"

#include <arpa/inet.h>

#include <cstdio>
#include <cstring>

namespace bpfgate::core {

namespace {
void put16(std::vector<uint8_t> &b, uint16_t v) {
  b.push_back(v >> 8);
  b.push_back(v & 0xff);
}
void put32(std::vector<uint8_t> &b, uint32_t v) {
  put16(b, v >> 16);
  put16(b, v & 0xffff);
}
void set16(std::vector<uint8_t> &b, size_t at, uint16_t v) {
  b[at] = v >> 8;
  b[at + 1] = v & 0xff;
}
uint32_t sum_words(const uint8_t *d, size_t len, uint32_t sum) {
  for (size_t i = 0; i + 1 < len; i += 2)
    sum += (d[i] << 8) | d[i + 1];
  if (len & 1)
    sum += d[len - 1] << 8;
  return sum;
}
uint16_t fold(uint32_t sum) {
  while (sum >> 16)
    sum = (sum & 0xffff) + (sum >> 16);
  return static_cast<uint16_t>(~sum);
}
}  // namespace

uint16_t inet_checksum(const uint8_t *data, size_t len, uint32_t seed) {
  return fold(sum_words(data, len, seed));
}

bool parse_mac(const std::string &text, Mac &out) {
  unsigned v[6];
  if (std::sscanf(text.c_str(), "%x:%x:%x:%x:%x:%x", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5]) != 6)
    return false;
  for (int i = 0; i < 6; i++) {
    if (v[i] > 0xff)
      return false;
    out[i] = static_cast<uint8_t>(v[i]);
  }
  return true;
}

PacketBuilder &PacketBuilder::eth(const Mac &src, const Mac &dst) {
  src_mac_ = src;
  dst_mac_ = dst;
  return *this;
}
PacketBuilder &PacketBuilder::vlan(uint16_t id, uint16_t tpid) {
  vlans_.emplace_back(tpid, id);
  return *this;
}
PacketBuilder &PacketBuilder::ipv4(uint32_t src, uint32_t dst) {
  l3_ = L3::kV4;
  v4_src_ = src;
  v4_dst_ = dst;
  return *this;
}
PacketBuilder &PacketBuilder::ipv4(const std::string &src, const std::string &dst) {
  in_addr s{}, d{};
  inet_pton(AF_INET, src.c_str(), &s);
  inet_pton(AF_INET, dst.c_str(), &d);
  return ipv4(ntohl(s.s_addr), ntohl(d.s_addr));
}
PacketBuilder &PacketBuilder::ipv4_options(std::vector<uint8_t> options) {
  while (options.size() % 4)
    options.push_back(0);  // EOL padding
  v4_opts_ = std::move(options);
  return *this;
}
PacketBuilder &PacketBuilder::fragment(uint16_t offset_bytes, bool more) {
  frag_off_ = offset_bytes;
  more_frags_ = more;
  return *this;
}
PacketBuilder &PacketBuilder::ttl(uint8_t t) {
  ttl_ = t;
  return *this;
}
PacketBuilder &PacketBuilder::ipv6(const std::array<uint8_t, 16> &src,
                                   const std::array<uint8_t, 16> &dst) {
  l3_ = L3::kV6;
  v6_src_ = src;
  v6_dst_ = dst;
  return *this;
}
PacketBuilder &PacketBuilder::ipv6(const std::string &src, const std::string &dst) {
  std::array<uint8_t, 16> s{}, d{};
  inet_pton(AF_INET6, src.c_str(), s.data());
  inet_pton(AF_INET6, dst.c_str(), d.data());
  return ipv6(s, d);
}
PacketBuilder &PacketBuilder::ipv6_ext(uint8_t type, uint8_t len) {
  v6_ext_.emplace_back(type, len);
  return *this;
}
PacketBuilder &PacketBuilder::udp(uint16_t sport, uint16_t dport) {
  l4_ = L4::kUdp;
  sport_ = sport;
  dport_ = dport;
  return *this;
}
PacketBuilder &PacketBuilder::tcp(uint16_t sport, uint16_t dport, uint8_t flags) {
  l4_ = L4::kTcp;
  sport_ = sport;
  dport_ = dport;
  tcp_flags_ = flags;
  return *this;
}

PacketBuilder &PacketBuilder::tcp_seq(uint32_t seq, uint32_t ack) {
  tcp_seq_ = seq;
  tcp_ack_ = ack;
  return *this;
}
PacketBuilder &PacketBuilder::tcp_options(std::vector<uint8_t> options) {
  options.resize((options.size() + 3) / 4 * 4, 0);
  tcp_opts_ = std::move(options);
  return *this;
}
PacketBuilder &PacketBuilder::icmp(uint8_t type, uint8_t code) {
  l4_ = L4::kIcmp;
  icmp_type_ = type;
  icmp_code_ = code;
  return *this;
}
PacketBuilder &PacketBuilder::payload(size_t bytes, uint8_t fill) {
  payload_.assign(bytes, fill);
  return *this;
}
PacketBuilder &PacketBuilder::payload(std::vector<uint8_t> bytes) {
  payload_ = std::move(bytes);
  return *this;
}
PacketBuilder &PacketBuilder::frame_size(size_t bytes) {
  frame_size_ = bytes;
  return *this;
}

std::vector<uint8_t> PacketBuilder::l4_header() const {
  std::vector<uint8_t> l4;
  switch (l4_) {
    case L4::kUdp:
      put16(l4, sport_), put16(l4, dport_), put16(l4, 0), put16(l4, 0);
      break;
    case L4::kTcp:
      put16(l4, sport_), put16(l4, dport_), put32(l4, tcp_seq_), put32(l4, tcp_ack_);
      l4.push_back(static_cast<uint8_t>((5 + tcp_opts_.size() / 4) << 4));
      l4.push_back(tcp_flags_), put16(l4, 65535), put16(l4, 0), put16(l4, 0);
      l4.insert(l4.end(), tcp_opts_.begin(), tcp_opts_.end());
      break;
    case L4::kIcmp:
      l4.push_back(icmp_type_), l4.push_back(icmp_code_), put16(l4, 0), put32(l4, 0);
      break;
    case L4::kNone:
      break;
  }
  return l4;
}

size_t PacketBuilder::l3_length() const {
  size_t l3_len = l3_ == L3::kV4 ? 20 + v4_opts_.size() : l3_ == L3::kV6 ? 40 : 0;
  for (const auto &e : v6_ext_)
    l3_len += l3_ == L3::kV6 ? (e.first == 44 ? 8 : (e.second + 1) * 8) : 0;
  return l3_len;
}

uint8_t PacketBuilder::l4_protocol() const {
  return l4_ == L4::kUdp    ? 17
         : l4_ == L4::kTcp  ? 6
         : l4_ == L4::kIcmp ? (l3_ == L3::kV6 ? 58 : 1)
                            : 59;
}

void PacketBuilder::put_l2(std::vector<uint8_t> &f) const {
  f.insert(f.end(), dst_mac_.begin(), dst_mac_.end());
  f.insert(f.end(), src_mac_.begin(), src_mac_.end());
  uint16_t ethertype = l3_ == L3::kV4 ? 0x0800 : l3_ == L3::kV6 ? 0x86dd : 0x88b5;
  for (const auto &[tpid, id] : vlans_)
    put16(f, tpid), put16(f, id & 0x0fff);
  put16(f, ethertype);
}

uint32_t PacketBuilder::put_v4(std::vector<uint8_t> &f, size_t l4_len, uint8_t proto) const {
  size_t ip = f.size();
  uint8_t ihl = static_cast<uint8_t>((20 + v4_opts_.size()) / 4);
  f.push_back(0x40 | ihl), f.push_back(0);
  put16(f, static_cast<uint16_t>(ihl * 4 + l4_len));
  put16(f, 0x1234);
  put16(f, static_cast<uint16_t>((more_frags_ ? 0x2000 : 0) | ((frag_off_ / 8) & 0x1fff)));
  f.push_back(ttl_), f.push_back(l4_ == L4::kNone ? 253 : proto), put16(f, 0);
  put32(f, v4_src_), put32(f, v4_dst_);
  f.insert(f.end(), v4_opts_.begin(), v4_opts_.end());
  set16(f, ip + 10, inet_checksum(f.data() + ip, ihl * 4));
  return sum_words(f.data() + ip + 12, 8, 0) + proto + static_cast<uint32_t>(l4_len);
}

uint32_t PacketBuilder::put_v6(std::vector<uint8_t> &f, size_t ext_len, size_t l4_len,
                               uint8_t proto) const {
  f.push_back(0x60), f.push_back(0), put16(f, 0);
  put16(f, static_cast<uint16_t>(ext_len + l4_len));
  f.push_back(v6_ext_.empty() ? proto : v6_ext_.front().first), f.push_back(ttl_);
  f.insert(f.end(), v6_src_.begin(), v6_src_.end());
  f.insert(f.end(), v6_dst_.begin(), v6_dst_.end());
  for (size_t i = 0; i < v6_ext_.size(); i++) {
    uint8_t next = i + 1 < v6_ext_.size() ? v6_ext_[i + 1].first : proto;
    if (v6_ext_[i].first == 44) {
      f.push_back(next), f.push_back(0);
      put16(f, static_cast<uint16_t>((frag_off_ & 0xfff8) | (more_frags_ ? 1 : 0)));
      put32(f, 0x1234);
    } else {
      size_t len = (v6_ext_[i].second + 1) * 8;
      f.push_back(next), f.push_back(v6_ext_[i].second);
      f.push_back(1), f.push_back(static_cast<uint8_t>(len - 4));  // PadN option
      f.resize(f.size() + len - 4, 0);
    }
  }
  uint32_t pseudo = sum_words(v6_src_.data(), 16, 0);
  return sum_words(v6_dst_.data(), 16, pseudo) + proto + static_cast<uint32_t>(l4_len);
}

void PacketBuilder::set_l4_checksum(std::vector<uint8_t> &f, size_t l4_start, size_t l4_len,
                                    uint32_t pseudo) const {
  if (l3_ == L3::kNone || l4_ == L4::kNone || l4_len < 8)
    return;
  size_t csum_at = l4_start + (l4_ == L4::kUdp ? 6 : l4_ == L4::kTcp ? 16 : 2);
  bool pseudo_hdr = l4_ != L4::kIcmp || l3_ == L3::kV6;
  uint16_t c = inet_checksum(f.data() + l4_start, l4_len, pseudo_hdr ? pseudo : 0);
  if (l4_ == L4::kUdp && c == 0)
    c = 0xffff;
  if (!(l4_ == L4::kTcp && l4_len < 20))
    set16(f, csum_at, c);
}

std::vector<uint8_t> PacketBuilder::build() const {
  // Transport header and payload first: IP lengths and checksums cover them.
  std::vector<uint8_t> l4 = l4_header();
  size_t l2_len = 14 + 4 * vlans_.size();
  size_t l3_len = l3_length();
  std::vector<uint8_t> pay = payload_;
  size_t base = l2_len + l3_len + l4.size();
  if (frame_size_ > base + pay.size())
    pay.resize(frame_size_ - base, 0xab);
  l4.insert(l4.end(), pay.begin(), pay.end());
  if (l4_ == L4::kUdp)
    set16(l4, 4, static_cast<uint16_t>(l4.size()));

  std::vector<uint8_t> f;
  put_l2(f);
  const uint8_t proto = l4_protocol();
  uint32_t pseudo = 0;
  size_t l4_start = 0;
  if (l3_ == L3::kV4) {
    pseudo = put_v4(f, l4.size(), proto);
    l4_start = f.size();
  } else if (l3_ == L3::kV6) {
    pseudo = put_v6(f, l3_len - 40, l4.size(), proto);
    l4_start = f.size();
  }
  f.insert(f.end(), l4.begin(), l4.end());
  set_l4_checksum(f, l4_start, l4.size(), pseudo);
  return f;
}

}  // namespace bpfgate::core
