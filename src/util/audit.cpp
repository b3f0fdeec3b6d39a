#include "util/audit.hpp"

#include <unistd.h>

#include <fmt/format.h>

#include "util/log.hpp"
#include "util/text.hpp"

namespace bpfgate::audit {

std::string by_agent() {
  return "agent";
}
std::string by_datapath() {
  return "datapath";
}
std::string by_peer(uint32_t uid, int32_t pid) {
  return fmt::format("uid:{},pid:{}", uid, pid);
}
std::string by_cli() {
  return fmt::format("cli,uid:{},pid:{}", ::getuid(), ::getpid());
}
std::string by_signal(std::string_view signal, uint32_t uid, int32_t pid) {
  return fmt::format("{},uid:{},pid:{}", signal, uid, pid);
}

namespace {
bool plain(std::string_view value) {
  if (value.empty())
    return false;
  for (unsigned char c : value)
    if (c <= ' ' || c >= 0x7f || c == '"' || c == '\\' || c == '=')
      return false;
  return true;
}
}  // namespace

std::string quote(std::string_view value) {
  if (plain(value))
    return std::string(value);
  std::string out = "\"";
  for (unsigned char c : value) {
    if (c == '"' || c == '\\')
      out += '\\';
    util::append_escaped(out, c);
  }
  return out + "\"";
}

Entry::Entry(std::string_view action, std::string by) : action_(quote(action)), by_(quote(by)) {}

Entry &Entry::set(std::string_view key, std::string_view value) {
  fields_ += fmt::format(" {}={}", key, quote(value));
  return *this;
}

Entry &Entry::config(std::string hash) {
  config_ = quote(hash);
  return *this;
}

std::string Entry::line() const {
  std::string out = fmt::format("audit: action={}{} by={}", action_, fields_, by_);
  if (!config_.empty())
    out += " config=" + config_;
  return out;
}

void Entry::write() const {
  log::write(log::Level::kInfo, line());
}

}  // namespace bpfgate::audit
