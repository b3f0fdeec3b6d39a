// The agent's manual blocks kept in its state directory (features/xdp/block_store.hpp):
// read at start, put back into a filter attached anew, written when the
// sweep sees them change.
#include <cstdlib>
#include <ctime>
#include <filesystem>

#include "features/xdp/blocklist.hpp"
#include "features/xdp/feature.hpp"
#include "core/duration.hpp"
#include "util/audit.hpp"
#include "util/log.hpp"

namespace bpfgate::agent {

void XdpFeature::load_saved_blocks(const core::Config &c) {
  if (c.state_dir.empty()) {
    log::info("agent.state_dir: off: manual blocks are not kept across reboots");
    return;
  }
  blocks_path_ = c.state_dir + "/blocks";
  std::error_code ec;
  if (std::filesystem::create_directories(c.state_dir, ec))
    std::filesystem::permissions(c.state_dir, std::filesystem::perms::owner_all, ec);
  auto f = read_block_file(blocks_path_);
  if (!f) {
    log::error("{}: the manual blocks kept there are not put back", f.error().what());
    return;
  }
  for (const auto &e : f->errors)
    log::error("{}", e);
  if (!f->errors.empty())
    log::error(
        "{}: {} bad line{} skipped: the agent starts without those entries (the file is "
        "rewritten without them when the blocks change)",
        blocks_path_, f->errors.size(), f->errors.size() == 1 ? "" : "s");
  saved_ = std::move(f->blocks);
}

void XdpFeature::restore_blocks(const std::string &iface, Datapath &dp) {
  int64_t now = static_cast<int64_t>(std::time(nullptr));
  size_t put = 0, expired = 0;
  for (const auto &b : saved_) {
    if (b.iface != iface)
      continue;
    if (b.expires_unix_s && b.expires_unix_s <= now) {
      expired++;
      continue;
    }
    uint64_t ttl_ns =
        b.expires_unix_s ? static_cast<uint64_t>(b.expires_unix_s - now) * 1'000'000'000ULL : 0;
    if (auto st = block(dp, b.prefix, ttl_ns); !st) {
      log::error("{}: put back the block of {}: {}", iface, core::format_prefix(b.prefix),
                 st.error().what());
      continue;
    }
    put++;
    audit::Entry("block", audit::by_agent())
        .set("iface", iface)
        .set("prefix", core::format_prefix(b.prefix))
        .set("ttl", ttl_ns ? core::format_duration_ns(ttl_ns) : "none")
        .set("why", "restored from " + blocks_path_)
        .write();
  }
  if (put || expired)
    log::info("{}: put back {} manual block{} from {} ({} expired meanwhile, dropped)", iface, put,
              put == 1 ? "" : "s", blocks_path_, expired);
}

void XdpFeature::save_blocks(const core::Config &c) {
  if (blocks_path_.empty())
    return;
  std::map<std::string, uint64_t> versions;
  for (const auto &i : c.interfaces)
    if (auto f = filters_.find(i.name); f != filters_.end())
      versions[i.name] = f->second.datapath().block_version();
  if (versions == saved_versions_)
    return;  // the same blocklists as when the file was last found up to date
  int64_t now_s = static_cast<int64_t>(std::time(nullptr));
  std::vector<SavedBlock> now;
  for (const auto &i : c.interfaces) {
    auto f = filters_.find(i.name);
    if (f == filters_.end()) {  // not attached (absent): what the file held stays
      for (const auto &b : saved_)
        if (b.iface == i.name)
          now.push_back(b);
      continue;
    }
    auto blocks = list_blocks(f->second.datapath());
    if (!blocks)
      return;
    for (const auto &b : *blocks) {
      if (b.value.reason != BG_BLOCK_MANUAL || b.expired)
        continue;
      SavedBlock s{i.name, b.prefix, 0};
      if (b.value.expires_ns) {
        s.expires_unix_s =
            now_s + static_cast<int64_t>((b.remaining_ns + 999'999'999ULL) / 1'000'000'000ULL);
        // The same entry as written before (the clocks' offset moves by a
        // second at times): its time as written.
        for (const auto &o : saved_)
          if (o.iface == s.iface &&
              core::format_prefix(o.prefix) == core::format_prefix(s.prefix) && o.expires_unix_s &&
              std::abs(o.expires_unix_s - s.expires_unix_s) <= 2)
            s.expires_unix_s = o.expires_unix_s;
      }
      now.push_back(s);
    }
  }
  if (now == saved_) {
    saved_versions_ = std::move(versions);
    return;
  }
  if (auto st = write_block_file(blocks_path_, now); !st) {
    if (st.error().what() != save_error_)
      log::error("manual blocks: {} (they are not kept across a reboot until this works)",
                 st.error().what());
    save_error_ = st.error().what();
    return;
  }
  save_error_.clear();
  log::debug("manual blocks: {} entries written to {}", now.size(), blocks_path_);
  saved_ = std::move(now);
  saved_versions_ = std::move(versions);
}

}  // namespace bpfgate::agent
