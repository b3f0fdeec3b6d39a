// bpf::PinSet and bpf::DirLock on a real bpffs, through the tc datapath (whose
// programs and maps are one PinSet): pinned with mode 0600 under a 0700
// directory, adopted from the pins as the same objects, a pin of another
// layout refused, removed without a trace; a lock on a directory that went.
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <filesystem>

#include "bpf/map.hpp"
#include "bpf/pin.hpp"
#include "bpf/pin_set.hpp"
#include "features/tc/tc.hpp"

namespace bpfgate::test {
namespace {

namespace fs = std::filesystem;

// A directory of its own on the bpffs, removed with whatever is in it.
struct TempPinDir {
  std::string path =
      bpf::feature_dir(bpf::kDefaultBpffs, "bpfgate-test-pinset-" + std::to_string(::getpid()));
  TempPinDir() { EXPECT_TRUE(bpf::ensure_bpffs(bpf::kDefaultBpffs).ok()); }
  ~TempPinDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

mode_t mode_of(const std::string &p) {
  struct stat st {};
  EXPECT_EQ(::stat(p.c_str(), &st), 0) << p;
  return st.st_mode & 07777;
}

uint32_t id_of(int fd) {
  auto id = bpf::prog_id_of(fd);
  EXPECT_TRUE(id) << id.error().what();
  return id ? *id : 0;
}

TEST(PinSet, PinsAdoptsAndRemovesEveryObjectOfAFeature) {
  TempPinDir tmp;
  std::string dir = tmp.path + "/eth0";
  auto dp = agent::TcDatapath::load();
  ASSERT_TRUE(dp) << dp.error().what();
  auto st = dp->pin(dir);
  ASSERT_TRUE(st.ok()) << st.error().what();
  EXPECT_EQ(mode_of(dir), 0700u);
  auto names = agent::TcDatapath::pin_names();
  ASSERT_EQ(names.size(), 7u + BG_TC_STAGE_NR);
  for (const auto &n : names)
    EXPECT_EQ(mode_of(bpf::pin_path(dir, n)), 0600u) << n;

  auto adopted = agent::TcDatapath::from_pins(dir);
  ASSERT_TRUE(adopted) << adopted.error().what();
  for (bool egress : {false, true})
    EXPECT_EQ(id_of(adopted->prog_fd(egress)), id_of(dp->prog_fd(egress)));
  for (uint32_t s = 0; s < BG_TC_STAGE_NR; s++)
    EXPECT_EQ(id_of(adopted->stage_fd(s)), id_of(dp->stage_fd(s)));

  st = agent::TcDatapath::unpin(dir);
  ASSERT_TRUE(st.ok()) << st.error().what();
  EXPECT_FALSE(fs::exists(dir));
}

TEST(PinSet, RefusesAMapOfAnotherLayout) {
  TempPinDir tmp;
  std::string dir = tmp.path + "/eth0";
  auto dp = agent::TcDatapath::load();
  ASSERT_TRUE(dp) << dp.error().what();
  ASSERT_TRUE(dp->pin(dir).ok());
  // The config map's value is a bg_tc_config, not a __u64.
  auto set = bpf::PinSet::adopt(dir, {bpf::map_pin<__u32, __u64>(BG_TC_PIN_CONFIG, "")});
  ASSERT_FALSE(set);
  EXPECT_EQ(set.error().err(), EPROTO) << set.error().what();
  // Absent, but optional: left out.
  auto link = bpf::PinSet::adopt(dir, {bpf::link_pin("link")});
  ASSERT_TRUE(link) << link.error().what();
  EXPECT_FALSE(link->holds("link"));
}

TEST(DirLock, MakesTheDirectoryOrSaysItIsGone) {
  TempPinDir tmp;
  auto gone = bpf::DirLock::acquire(tmp.path);
  ASSERT_FALSE(gone);
  EXPECT_EQ(gone.error().err(), ENOENT);
  auto made = bpf::DirLock::acquire(tmp.path, true);
  ASSERT_TRUE(made) << made.error().what();
  EXPECT_EQ(mode_of(tmp.path), 0700u);
}

}  // namespace
}  // namespace bpfgate::test
