#include "features/xdp/block_store.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <ctime>
#include <fstream>
#include <sstream>

#include <fmt/format.h>

#include "util/file.hpp"
#include "util/netif.hpp"
#include "util/text.hpp"

namespace bpfgate::agent {

namespace {

// "2026-12-06T12:00:00Z" -> unix seconds; -1 when it is not one.
int64_t parse_utc(const std::string &s) {
  std::tm tm{};
  const char *end = strptime(s.c_str(), "%Y-%m-%dT%H:%M:%SZ", &tm);
  if (!end || *end != '\0')
    return -1;
  return static_cast<int64_t>(timegm(&tm));
}

std::string format_utc(int64_t t) {
  std::time_t tt = static_cast<std::time_t>(t);
  std::tm tm{};
  gmtime_r(&tt, &tm);
  char buf[32];
  std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

}  // namespace

BlockFile parse_block_file(const std::string &path, std::string_view text) {
  BlockFile f;
  std::istringstream in{std::string(text)};
  std::string line;
  for (int n = 1; std::getline(in, line); n++) {
    if (auto hash = line.find('#'); hash != std::string::npos)
      line.erase(hash);
    std::istringstream words(line);
    std::string iface, prefix, expiry, extra;
    if (!(words >> iface))
      continue;  // blank or a comment
    auto bad = [&](const std::string &why) {
      f.errors.push_back(fmt::format("{}:{}: {}", path, n, why));
    };
    if (!(words >> prefix >> expiry) || (words >> extra)) {
      bad("expected 'INTERFACE PREFIX EXPIRY' (EXPIRY: YYYY-MM-DDTHH:MM:SSZ or never)");
      continue;
    }
    if (auto why = util::interface_name_problem(iface)) {
      bad(*why);
      continue;
    }
    auto p = core::parse_prefix(prefix);
    if (!p) {
      bad(p.error().what());
      continue;
    }
    SavedBlock b{iface, *p, 0};
    if (expiry != "never") {
      b.expires_unix_s = parse_utc(expiry);
      if (b.expires_unix_s <= 0) {
        bad(fmt::format("expiry '{}' is neither YYYY-MM-DDTHH:MM:SSZ (UTC) nor never",
                        util::excerpt(expiry)));
        continue;
      }
    }
    f.blocks.push_back(b);
  }
  return f;
}

std::string format_block_file(const std::vector<SavedBlock> &blocks) {
  std::string out =
      "# bpfgate: manual blocks, put back after a reboot (written by the agent; see README)\n"
      "# interface prefix expiry (UTC, or never)\n";
  for (const auto &b : blocks)
    out += fmt::format("{} {} {}\n", b.iface, core::format_prefix(b.prefix),
                       b.expires_unix_s ? format_utc(b.expires_unix_s) : "never");
  return out;
}

Result<BlockFile> read_block_file(const std::string &path) {
  std::ifstream in(path);
  if (!in) {
    if (errno == ENOENT)
      return BlockFile{};
    return Error(errno, "read " + path);
  }
  std::string text((std::istreambuf_iterator<char>(in)), {});
  if (in.bad())
    return Error(EIO, "read " + path);
  return parse_block_file(path, text);
}

Status write_block_file(const std::string &path, const std::vector<SavedBlock> &blocks) {
  return util::write_file_atomic(path, format_block_file(blocks));
}

}  // namespace bpfgate::agent
