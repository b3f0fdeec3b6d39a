// Manual blocks kept across reboots. bpffs is empty after a reboot, and with
// it every filter's blocklist; the agent keeps the manual entries (`bpfgate
// block`, not auto-blocks) in <state_dir>/blocks too, and puts them back when
// it attaches a new filter (one whose maps were not pinned). One entry a line:
//
//   eth0 198.51.100.0/24 2026-12-06T12:00:00Z   (expires then: wall clock, UTC)
//   eth0 2001:db8::/32 never                    (until unblocked)
//
// '#' starts a comment. The file is the agent's: it rewrites it (a temporary
// file, fsync, rename) whenever the manual entries change, as its sweep sees
// them, so an unblock leaves it at the next sweep too.
#pragma once

#include <algorithm>
#include <cstdint>
#include <iterator>
#include <string>
#include <string_view>
#include <vector>

#include "core/cidr.hpp"
#include "util/result.hpp"

namespace bpfgate::agent {

struct SavedBlock {
  std::string iface;
  core::Prefix prefix;
  int64_t expires_unix_s = 0;  // 0: never
  bool operator==(const SavedBlock &o) const {
    return iface == o.iface && prefix.key.prefixlen == o.prefix.key.prefixlen &&
           std::equal(std::begin(o.prefix.key.addr), std::end(o.prefix.key.addr),
                      std::begin(prefix.key.addr)) &&
           expires_unix_s == o.expires_unix_s;
  }
};

struct BlockFile {
  std::vector<SavedBlock> blocks;
  std::vector<std::string> errors;  // "FILE:LINE: reason", one a line skipped
};

// Bad lines are skipped, each with its error; the others are kept.
BlockFile parse_block_file(const std::string &path, std::string_view text);
std::string format_block_file(const std::vector<SavedBlock> &blocks);
// An absent file is an empty one.
Result<BlockFile> read_block_file(const std::string &path);
// Written whole: a temporary file beside it, fsync, rename.
Status write_block_file(const std::string &path, const std::vector<SavedBlock> &blocks);

}  // namespace bpfgate::agent
