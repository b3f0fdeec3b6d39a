// A config compiled into the contents of one policy generation of the
// datapath's maps: pure data, no kernel, so it is unit-tested on its own.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "bpfgate/abi/xdp.h"
#include "core/config.hpp"

namespace bpfgate::core {

struct PolicyImage {
  std::vector<std::pair<bg_lpm_key, uint32_t>> acl;  // prefix -> bg_acl_action
  std::vector<std::pair<uint32_t, uint32_t>> ports;  // port-table index -> rule id (non-zero)
  std::array<uint32_t, 256> protos{};                // IP protocol -> rule id (0: none)
  std::vector<bg_rule> rules;                        // index = rule id; [0] the default limit
  bg_settings settings{};
  std::vector<bg_lpm_key> noblock;  // never auto-blocked (not generational: see Datapath::apply)
  bool prove = true;                // BG_SET_PROVE: TCP sources prove themselves with SYN cookies
  bool syn_proxy = false;           // BG_SET_SYN_PROXY where the host allows it (Datapath::apply)
  bool dry_run = false;             // BG_SET_DRY_RUN: drops are passed and counted (dry_run: on)
};

// Whether an IPv6 prefix holds ::ffff:0:0/96, where IPv4 sources live in the
// tries (::ffff:a.b.c.d): as a trie key it would match IPv4 sources too.
bool covers_ipv4(const Prefix &p);

// The allow/deny trie's entries. An IPv6 prefix never matches an IPv4 source
// (those are ::ffff:a.b.c.d in the trie): one that would, such as ::/0, is
// split into the prefixes covering it except ::ffff:0:0/96. Where two entries
// have the same key, the longer original prefix's action is kept.
std::vector<std::pair<bg_lpm_key, uint32_t>> compile_acl(const std::vector<Prefix> &allow,
                                                         const std::vector<Prefix> &deny);

// Rule ids follow the config's order, starting at 1.
PolicyImage compile(const Config &c);

// A policy with only a default limit (what `bpfgate attach` starts with).
// new_sources: how fast sources without state get some; unproven: how many
// frames of sources that have not proved themselves pass (rate 0: no bound).
PolicyImage default_policy(const Limits &limits, bg_verdict unparsed,
                           const Limits &new_sources = {}, const Limits &unproven = {});

// The window scale Linux gives a connection whose receive space may reach
// `space` bytes (tcp_select_initial_window: log2(space) - 15, 0 to 14).
uint8_t syn_wscale(long space);

// Why the SYN answer (limits.syn_proxy) is off, or answers without options,
// given limits.prove and the namespace's tcp_syncookies and tcp_timestamps
// (-1: unreadable); nothing if it works in full.
std::optional<std::string> syn_answer_note(bool prove, int syncookies, int timestamps);

// Index into the port table for a TCP or UDP destination port.
inline uint32_t port_index(uint8_t proto, uint16_t port) {
  return (proto == 6 ? 0u : 1u) * 65536u + port;
}

}  // namespace bpfgate::core
