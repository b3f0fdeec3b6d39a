// libFuzzer target: the contents of an allow_file/deny_file
// (core::parse_prefix_lines, what the config loader runs on them), each
// prefix formatted and parsed back, and the ACL they compile into.
#include <cstdint>
#include <string_view>

#include "core/cidr.hpp"
#include "core/policy.hpp"
#include "support/fuzz_check.hpp"

using bpfgate::fuzz::check;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  using namespace bpfgate::core;
  std::string_view text(reinterpret_cast<const char *>(data), size);
  auto lines = parse_prefix_lines(text);
  int last = 0;
  for (const auto &[line, why] : lines.problems) {
    check(line > last, "problems in line order, one a line");
    check(!why.empty(), "a problem says why");
    last = line;
  }
  for (const auto &p : lines.prefixes) {
    check(p.key.prefixlen <= 128 && (!p.v4 || p.key.prefixlen >= 96), "a prefix length in range");
    auto again = parse_prefix(format_prefix(p));
    check(again && *again == p && again->v4 == p.v4, "a prefix formats into itself");
  }
  // The first half allowed, the rest denied, as two files would give.
  size_t half = lines.prefixes.size() / 2;
  std::vector<Prefix> allow(lines.prefixes.begin(), lines.prefixes.begin() + half);
  std::vector<Prefix> deny(lines.prefixes.begin() + half, lines.prefixes.end());
  for (const auto &[key, action] : compile_acl(allow, deny))
    check(key.prefixlen <= 128 && (action == BG_ACL_ALLOW || action == BG_ACL_DENY),
          "an ACL entry is a prefix and an action");
  return 0;
}
