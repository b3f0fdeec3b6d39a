#include "support/reference_parse.hpp"

#include <cstring>
#include <vector>

#include <fmt/format.h>

namespace bpfgate::test {

bool ParseOutcome::operator==(const ParseOutcome &o) const {
  return status == o.status && std::memcmp(&pkt, &o.pkt, sizeof(pkt)) == 0;
}

namespace {

constexpr uint16_t kEthIp = 0x0800, kEthIpv6 = 0x86dd, kEth8021q = 0x8100, kEth8021ad = 0x88a8;
constexpr uint8_t kTcp = 6, kUdp = 17, kIcmp = 1, kIcmpv6 = 58;
constexpr uint8_t kHopOpts = 0, kRouting = 43, kFragment = 44, kAh = 51, kDstOpts = 60;

// The frame, read in network order; `has(off, n)`: bytes [off, off+n) exist.
struct Frame {
  std::span<const uint8_t> b;
  bool has(size_t off, size_t n) const { return off + n <= b.size(); }
  uint8_t u8(size_t off) const { return b[off]; }
  uint16_t u16(size_t off) const { return static_cast<uint16_t>(b[off] << 8 | b[off + 1]); }
};

// Network order as the struct holds it (the __be16 fields).
uint16_t be(uint16_t host) {
  uint16_t v;
  uint8_t bytes[2] = {static_cast<uint8_t>(host >> 8), static_cast<uint8_t>(host)};
  std::memcpy(&v, bytes, 2);
  return v;
}

int transport(const Frame &f, size_t off, bg_packet &p) {
  switch (p.l4_proto) {
    case kTcp:
      if (!f.has(off, 20) || (f.u8(off + 12) >> 4) < 5)
        return BG_PARSE_BAD_L4;
      p.tcp_flags = f.u8(off + 13);
      p.l4_off = static_cast<uint16_t>(off);
      p.sport = be(f.u16(off));
      p.dport = be(f.u16(off + 2));
      p.has_l4 = 1;
      return BG_PARSE_OK;
    case kUdp:
      if (!f.has(off, 8))
        return BG_PARSE_BAD_L4;
      p.l4_off = static_cast<uint16_t>(off);
      p.sport = be(f.u16(off));
      p.dport = be(f.u16(off + 2));
      p.has_l4 = 1;
      return BG_PARSE_OK;
    case kIcmp:
    case kIcmpv6:
      if (!f.has(off, 4))
        return BG_PARSE_BAD_L4;
      p.l4_off = static_cast<uint16_t>(off);
      p.sport = 0;
      p.dport = be(f.u16(off));  // type, code
      p.has_l4 = 1;
      return BG_PARSE_OK;
    default:
      return BG_PARSE_OK;
  }
}

int ipv4(const Frame &f, size_t off, bg_packet &p) {
  if (!f.has(off, 20) || f.u8(off) >> 4 != 4)
    return BG_PARSE_BAD_L3;
  size_t hlen = (f.u8(off) & 0x0f) * 4u;
  if (hlen < 20 || f.u16(off + 2) < hlen || !f.has(off, hlen))
    return BG_PARSE_BAD_L3;
  p.l3_proto = kEthIp;
  p.src[10] = p.src[11] = p.dst[10] = p.dst[11] = 0xff;
  std::memcpy(p.src + 12, f.b.data() + off + 12, 4);
  std::memcpy(p.dst + 12, f.b.data() + off + 16, 4);
  p.l4_proto = f.u8(off + 9);
  uint16_t frag = f.u16(off + 6);
  bool more = frag & 0x2000;
  uint16_t offset = frag & 0x1fff;
  p.fragment = more || offset != 0;
  if (offset != 0)
    return BG_PARSE_OK;
  return transport(f, off + hlen, p);
}

int ipv6(const Frame &f, size_t off, bg_packet &p) {
  if (!f.has(off, 40) || f.u8(off) >> 4 != 6)
    return BG_PARSE_BAD_L3;
  p.l3_proto = kEthIpv6;
  std::memcpy(p.src, f.b.data() + off + 8, 16);
  std::memcpy(p.dst, f.b.data() + off + 24, 16);
  uint8_t next = f.u8(off + 6);
  off += 40;
  for (int walked = 0; walked < 6; walked++) {
    size_t len;
    if (next == kHopOpts || next == kRouting || next == kDstOpts) {
      if (!f.has(off, 2))
        return BG_PARSE_BAD_L4;
      len = (f.u8(off + 1) + 1u) * 8;
    } else if (next == kAh) {
      if (!f.has(off, 2))
        return BG_PARSE_BAD_L4;
      len = (f.u8(off + 1) + 2u) * 4;
    } else if (next == kFragment) {
      len = 8;
    } else {
      p.l4_proto = next;
      return transport(f, off, p);
    }
    if (!f.has(off, len))
      return BG_PARSE_BAD_L4;
    uint8_t after = f.u8(off);
    if (next == kFragment) {
      p.fragment = 1;
      if (f.u16(off + 2) >> 3 != 0) {  // a later fragment
        p.l4_proto = after;
        return BG_PARSE_OK;
      }
    }
    next = after;
    off += len;
  }
  return BG_PARSE_BAD_L4;
}

}  // namespace

ParseOutcome reference_parse(std::span<const uint8_t> frame) {
  ParseOutcome r;
  bg_packet &p = r.pkt;
  Frame f{frame};
  r.status = BG_PARSE_BAD_L2;
  if (!f.has(0, 14))
    return r;
  uint16_t type = f.u16(12);
  size_t off = 14;
  auto tagged = [](uint16_t t) { return t == kEth8021q || t == kEth8021ad; };
  for (int depth = 0; depth < 2 && tagged(type); depth++) {
    if (!f.has(off, 4))
      return r;
    p.vlan_id = f.u16(off) & 0x0fff;
    p.vlan_depth++;
    type = f.u16(off + 2);
    off += 4;
  }
  p.l3_off = static_cast<uint16_t>(off);
  if (type == kEthIp)
    r.status = ipv4(f, off, p);
  else if (type == kEthIpv6)
    r.status = ipv6(f, off, p);
  else
    r.status = tagged(type) ? BG_PARSE_BAD_L2 : BG_PARSE_NOT_IP;
  return r;
}

std::string describe_difference(const ParseOutcome &bpf, const ParseOutcome &ref) {
  auto hex = [](const uint8_t *a, size_t n) {
    std::string s;
    for (size_t i = 0; i < n; i++)
      s += fmt::format("{:02x}", a[i]);
    return s;
  };
  struct Field {
    const char *name;
    std::string a, b;
  };
  const bg_packet &x = bpf.pkt, &y = ref.pkt;
  std::vector<Field> fields = {
      {"status", std::to_string(bpf.status), std::to_string(ref.status)},
      {"src", hex(x.src, 16), hex(y.src, 16)},
      {"dst", hex(x.dst, 16), hex(y.dst, 16)},
      {"l3_proto", fmt::format("{:#x}", x.l3_proto), fmt::format("{:#x}", y.l3_proto)},
      {"l4_proto", std::to_string(x.l4_proto), std::to_string(y.l4_proto)},
      {"fragment", std::to_string(x.fragment), std::to_string(y.fragment)},
      {"has_l4", std::to_string(x.has_l4), std::to_string(y.has_l4)},
      {"vlan_depth", std::to_string(x.vlan_depth), std::to_string(y.vlan_depth)},
      {"vlan_id", std::to_string(x.vlan_id), std::to_string(y.vlan_id)},
      {"sport(be)", fmt::format("{:#06x}", x.sport), fmt::format("{:#06x}", y.sport)},
      {"dport(be)", fmt::format("{:#06x}", x.dport), fmt::format("{:#06x}", y.dport)},
      {"tcp_flags", fmt::format("{:#x}", x.tcp_flags), fmt::format("{:#x}", y.tcp_flags)},
      {"_pad", std::to_string(x._pad), std::to_string(y._pad)},
      {"l3_off", std::to_string(x.l3_off), std::to_string(y.l3_off)},
      {"l4_off", std::to_string(x.l4_off), std::to_string(y.l4_off)},
  };
  std::string out = fmt::format("{:<11} {:<34} {}\n", "field", "bpf", "reference");
  for (const auto &f : fields)
    out +=
        fmt::format("{:<11} {:<34} {}{}\n", f.name, f.a, f.b, f.a == f.b ? "" : "   <-- differs");
  return out;
}

}  // namespace bpfgate::test
