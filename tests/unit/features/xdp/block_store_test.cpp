// The manual blocks file (features/xdp/block_store.hpp): what it holds, written and
// read back; a bad line named with its line and skipped, the others kept.
#include "features/xdp/block_store.hpp"

#include <unistd.h>

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

namespace bpfgate::agent {
namespace {

core::Prefix prefix(const char *s) {
  auto p = core::parse_prefix(s);
  EXPECT_TRUE(p.ok()) << s;
  return *p;
}

TEST(BlockStore, WritesAndReadsBackEveryEntry) {
  auto dir = std::filesystem::temp_directory_path() / ("bgt-blocks-" + std::to_string(getpid()));
  std::filesystem::create_directories(dir);
  std::string path = (dir / "blocks").string();
  std::vector<SavedBlock> blocks = {{"eth0", prefix("198.51.100.0/24"), 1796558400},
                                    {"eth0", prefix("2001:db8::/32"), 0},
                                    {"tap7", prefix("198.18.0.9"), 0}};
  ASSERT_TRUE(write_block_file(path, blocks).ok());
  std::ifstream in(path);
  std::string text((std::istreambuf_iterator<char>(in)), {});
  EXPECT_NE(text.find("eth0 198.51.100.0/24 2026-12-06T12:00:00Z\n"), std::string::npos) << text;
  EXPECT_NE(text.find("eth0 2001:db8::/32 never\n"), std::string::npos) << text;
  EXPECT_FALSE(std::filesystem::exists(path + ".tmp"));
  auto back = read_block_file(path);
  ASSERT_TRUE(back.ok()) << back.error().what();
  EXPECT_TRUE(back->errors.empty());
  EXPECT_EQ(back->blocks, blocks);
  std::filesystem::remove_all(dir);
}

TEST(BlockStore, AnAbsentFileIsAnEmptyOne) {
  auto f = read_block_file("/nonexistent-bpfgate-dir/blocks");
  ASSERT_TRUE(f.ok()) << f.error().what();
  EXPECT_TRUE(f->blocks.empty());
}

TEST(BlockStore, BadLinesAreNamedAndSkipped) {
  auto f = parse_block_file("/var/lib/bpfgate/blocks",
                            "# comment\n"
                            "\n"
                            "eth0 198.51.100.0/24 never  # kept\n"
                            "eth0 198.51.100.1/24 never\n"
                            "eth0 198.51.100.7 2026-13-45T99:00:00Z\n"
                            "eth0 198.51.100.8\n"
                            "eth0 198.51.100.9 never extra\n"
                            "a/b 198.51.100.10 never\n"
                            "eth0 198.51.100.11 2026-12-06T12:00:00Z\n");
  ASSERT_EQ(f.blocks.size(), 2u);
  EXPECT_EQ(f.blocks[0].expires_unix_s, 0);
  EXPECT_EQ(f.blocks[1].expires_unix_s, 1796558400);
  ASSERT_EQ(f.errors.size(), 5u);
  EXPECT_EQ(f.errors[0].rfind("/var/lib/bpfgate/blocks:4: ", 0), 0u) << f.errors[0];
  EXPECT_NE(f.errors[0].find("198.51.100.0/24"), std::string::npos) << f.errors[0];
  EXPECT_EQ(f.errors[1],
            "/var/lib/bpfgate/blocks:5: expiry '2026-13-45T99:00:00Z' is neither "
            "YYYY-MM-DDTHH:MM:SSZ (UTC) nor never");
  EXPECT_EQ(f.errors[2].rfind("/var/lib/bpfgate/blocks:6: expected 'INTERFACE PREFIX EXPIRY'", 0),
            0u);
  EXPECT_EQ(f.errors[3].rfind("/var/lib/bpfgate/blocks:7: expected", 0), 0u);
  EXPECT_EQ(f.errors[4].rfind("/var/lib/bpfgate/blocks:8: ", 0), 0u) << f.errors[4];
}

}  // namespace
}  // namespace bpfgate::agent
