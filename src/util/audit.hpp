// The audit log: every change bpfgate makes to the machine (a program loaded,
// attached or detached, a policy applied, a block added or removed, a config
// reloaded) is one line on stderr, which the journal keeps under systemd:
//
//   audit: action=attach iface=eth0 mode=native prog_id=12 by=uid:0,pid:123 config=9f0c...
//
// `action` first, then what changed, then `by` (who asked) and, where a config
// is involved, `config` (its FNV-1a 64 hash, as /metrics shows it). Pairs are
// key=value apart by one space. A value that is empty or holds a space, '"',
// '\', '=', a control or a non-ASCII byte is quoted: "...", '"' and '\' as \"
// and \\, control and non-ASCII bytes as \n, \t, \xNN (util/text.hpp).
#pragma once

#include <concepts>
#include <cstdint>
#include <string>
#include <string_view>

namespace bpfgate::audit {

// Who asked, as the value of by=.
std::string by_agent();                          // "agent": its own doing (start, sweep)
std::string by_datapath();                       // "datapath": the XDP filter (auto-blocks)
std::string by_peer(uint32_t uid, int32_t pid);  // "uid:0,pid:123": a control-socket client
std::string by_cli();                            // "cli,uid:0,pid:123": this CLI process
// "SIGHUP,uid:0,pid:1": a signal, with its sender as the kernel tells it.
std::string by_signal(std::string_view signal, uint32_t uid, int32_t pid);

// `value` as it stands after '=': as it is, or quoted and escaped.
std::string quote(std::string_view value);

// One audit line, built field by field and written once.
class Entry {
 public:
  Entry(std::string_view action, std::string by);
  Entry &set(std::string_view key, std::string_view value);
  Entry &set(std::string_view key, const char *value) { return set(key, std::string_view(value)); }
  Entry &set(std::string_view key, const std::string &value) {
    return set(key, std::string_view(value));
  }
  template <std::integral T>
  Entry &set(std::string_view key, T value) {
    return set(key, std::string_view(std::to_string(value)));
  }
  // The hash of the config this change comes from (core::Config::hash).
  Entry &config(std::string hash);

  // "audit: action=... by=... config=..."
  std::string line() const;
  // line() on stderr, whatever the log level: an audit line is never filtered.
  void write() const;

 private:
  std::string action_, by_, config_, fields_;
};

}  // namespace bpfgate::audit
