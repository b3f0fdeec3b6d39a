// A reference for the datapath's packet parser (bpf/lib/parse.h,
// bg_parse), written apart from it, byte by byte over a frame in memory: the
// differential tests (tests/bpf/parse_diff_test.cpp, tests/fuzz/packet_fuzz.cpp)
// run both on the same frames and want the same status and bg_packet.
#pragma once

#include <cstdint>
#include <span>
#include <string>

#include "bpfgate/abi/parse.h"

namespace bpfgate::test {

struct ParseOutcome {
  int status = BG_PARSE_OK;  // enum bg_parse_status
  bg_packet pkt{};
  bool operator==(const ParseOutcome &o) const;
};

// What bg_parse makes of `frame`:
// - Ethernet (14 bytes) and at most two 802.1Q/802.1ad tags (4 bytes each;
//   vlan_id the innermost tag's 12 bits, vlan_depth how many were read); a
//   header cut short is BAD_L2, a third tag too. l3_off: where the tags end.
// - Not IPv4 or IPv6 after the tags: NOT_IP.
// - IPv4: 20 bytes, version 4, IHL >= 5, total length >= IHL*4, IHL*4 bytes
//   present; else BAD_L3. Then l3_proto, src, dst (::ffff:a.b.c.d), l4_proto;
//   fragment when MF or an offset is set; a later fragment (offset != 0)
//   stops there, OK.
// - IPv6: 40 bytes and version 6, else BAD_L3. Then up to six extension
//   headers: hop-by-hop, routing, destination ((len+1)*8 bytes), AH
//   ((len+2)*4), fragment (8 bytes; fragment set; a later fragment stops with
//   l4_proto its next header, OK); one cut short is BAD_L4; a seventh is
//   BAD_L4 with l4_proto unknown (0).
// - Transport, at the end of the IP headers (l4_off): TCP 20 bytes with data
//   offset >= 5 (flags byte), UDP 8 bytes, ICMP or ICMPv6 4 bytes (sport 0,
//   dport type<<8|code); cut short is BAD_L4; another protocol is OK without
//   ports (nor l4_off).
ParseOutcome reference_parse(std::span<const uint8_t> frame);

// Both outcomes side by side, the fields that differ marked.
std::string describe_difference(const ParseOutcome &bpf, const ParseOutcome &ref);

}  // namespace bpfgate::test
