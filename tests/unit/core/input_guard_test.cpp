// Input bpfgate does not control: refused with a reason, in bounded time and
// memory, before anything is applied (core/input_guard, util/text, util/netif).
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <csignal>
#include <filesystem>
#include <functional>
#include <fstream>
#include <iterator>

#include "core/config.hpp"
#include "core/input_guard.hpp"

namespace bpfgate::core::input_guard {
namespace {

namespace fs = std::filesystem;

bool has(const std::string &h, const std::string &n) {
  return h.find(n) != std::string::npos;
}

std::string problems_text(const std::string &yaml, uint64_t max_nodes = kConfigMaxNodes) {
  std::string all;
  for (const auto &[line, why] : yaml_problems(yaml, max_nodes))
    all += std::to_string(line) + ": " + why + "\n";
  return all;
}

TEST(InputGuard, ExcerptEscapesAndCuts) {
  EXPECT_EQ(excerpt("eth0"), "eth0");
  EXPECT_EQ(excerpt("a\x1b[31mb\n\t"), "a\\x1b[31mb\\n\\t");
  EXPECT_EQ(excerpt(std::string(100, 'x'), 8), "xxxxxxxx...");
  EXPECT_EQ(excerpt("\xc3\xa9"), "\\xc3\\xa9");
}

TEST(InputGuard, InterfaceNamesAsTheKernelTakesThem) {
  for (const char *ok : {"eth0", "veth-a_1", "bond0.100", "a", "123456789012345"})
    EXPECT_FALSE(interface_name_problem(ok)) << ok;
  for (const std::string &bad :
       std::vector<std::string>{"", ".", "..", "../x", "a/b", "eth0:1", "a b", "a\tb",
                                "1234567890123456", std::string("a\0b", 3), "a\x7f"})
    EXPECT_TRUE(interface_name_problem(bad)) << excerpt(bad);
}

TEST(InputGuard, YamlProblemsBeforeLoading) {
  EXPECT_EQ(problems_text("interfaces: [{name: eth0}]\nlimits: {rate: 5}\n"), "");
  EXPECT_TRUE(has(problems_text("a: 1\n---\nb: 2\n"), "2: a second YAML document"));
  EXPECT_TRUE(has(problems_text("a: 1\nb: 2\na: 3\n"),
                  "3: key 'a' appears twice in one mapping (first on line 1)"));
  EXPECT_TRUE(has(problems_text("x:\n  - {k: 1, k: 2}\n"), "2: key 'k' appears twice"));
  // The same key in two mappings is fine.
  EXPECT_EQ(problems_text("x: [{k: 1}, {k: 2}]\n"), "");
  // Aliases: counted as expanded, never expanded.
  std::string lol = "a: &a [x, x, x, x, x, x, x, x, x, x]\n";
  std::string prev = "a";
  for (char c = 'b'; c <= 'j'; c++) {
    lol += std::string(1, c) + ": &" + c + " [";
    for (int i = 0; i < 10; i++)
      lol += (i ? ", *" : "*") + prev;
    lol += "]\n";
    prev = std::string(1, c);
  }
  EXPECT_TRUE(has(problems_text(lol), "expands to more than 100000 nodes"));
  EXPECT_EQ(problems_text("a: &a [1, 2]\nb: *a\nc: *a\n"), "");
  EXPECT_TRUE(has(problems_text("a: &a [1, 2]\nb: [*a, *a, *a]\n", 5), "more than 5 nodes"));
}

class Files : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("bgguard" + std::to_string(getpid()));
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  fs::path dir_;
};

TEST_F(Files, OnlyRegularFilesWithinTheCap) {
  auto f = dir_ / "ok.txt";
  std::ofstream(f) << "198.18.0.0/15\n";
  auto r = read_bounded_file(f.string(), 100, "allow_file");
  ASSERT_TRUE(r.ok()) << r.error().what();
  EXPECT_EQ(*r, "198.18.0.0/15\n");
  auto big = read_bounded_file(f.string(), 5, "allow_file");
  ASSERT_FALSE(big.ok());
  EXPECT_TRUE(has(big.error().what(), "has 14 bytes, more than the 5 allowed"));
  for (const std::string &p : {dir_.string(), std::string("/dev/zero")}) {
    auto e = read_bounded_file(p, 1 << 20, "config");
    ASSERT_FALSE(e.ok()) << p;
    EXPECT_TRUE(has(e.error().what(), "is not a regular file")) << e.error().what();
  }
  auto fifo = dir_ / "fifo";
  ASSERT_EQ(mkfifo(fifo.c_str(), 0600), 0);
  auto e = read_bounded_file(fifo.string(), 1 << 20, "config");  // no writer: must not wait
  ASSERT_FALSE(e.ok());
  EXPECT_TRUE(has(e.error().what(), "is not a regular file"));
  EXPECT_FALSE(read_bounded_file((dir_ / "none").string(), 10, "config").ok());
}

TEST_F(Files, TheConfigRefusesWhatItCannotUse) {
  auto parse = [&](const std::string &text) {
    auto path = dir_ / "c.yaml";
    std::ofstream(path) << text;
    auto c = load_config(path.string());
    return c.ok() ? std::string() : std::string(c.error().what());
  };
  EXPECT_EQ(parse("interfaces: [{name: eth0}]\n"), "");
  EXPECT_TRUE(has(parse("interfaces: []\n"), "c.yaml:1: interfaces is empty"));
  EXPECT_TRUE(has(parse("interfaces: [{name: ..}]\n"), "is not a valid interface name"));
  EXPECT_TRUE(has(parse("interfaces: [{name: eth0}]\nallow_file: /dev/zero\n"),
                  "c.yaml:2: allow_file /dev/zero is not a regular file"));
  auto prefixes = dir_ / "p.txt";
  std::ofstream(prefixes) << "198.18.0.0/24\n198.18.1.0/24\n";
  EXPECT_EQ(parse("interfaces: [{name: eth0}]\ndeny_file: p.txt\n"), "");
  EXPECT_TRUE(has(parse("interfaces: [{name: eth0}]\nprefix_file_max: 16\ndeny_file: p.txt\n"),
                  "more than the 16 allowed"));
  EXPECT_TRUE(has(parse("interfaces: [{name: eth0}]\nprefix_file_max: lots\n"),
                  "prefix_file_max 'lots' is not a size"));
  for (const char *bad : {"x.sock", "\"\"", "/etc/passwd"})
    EXPECT_TRUE(has(
        parse(std::string("interfaces: [{name: eth0}]\nagent: {control_socket: ") + bad + "}\n"),
        "control_socket"))
        << bad;
  EXPECT_TRUE(has(parse("interfaces: [{name: eth0}]\nagent: {control_socket: /" +
                        std::string(120, 'a') + "}\n"),
                  "longer than a socket path can be"));
  // Control characters of the file never reach the terminal raw.
  auto msg = parse("interfaces: [{name: eth0}]\nrules: [{match: \"tcp/\\e[31m\"}]\n");
  EXPECT_FALSE(msg.empty());
  EXPECT_EQ(msg.find('\x1b'), std::string::npos) << msg;
}

// Runs `body` in a child; whether it finished within `limit` (killed if not),
// so that a parser that loops forever fails the test instead of hanging it.
bool finishes_within(std::chrono::milliseconds limit, const std::function<void()> &body) {
  pid_t pid = fork();
  if (pid == 0) {
    body();
    _exit(0);
  }
  auto deadline = std::chrono::steady_clock::now() + limit;
  int status = 0;
  while (waitpid(pid, &status, WNOHANG) == 0) {
    if (std::chrono::steady_clock::now() > deadline) {
      kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
      return false;
    }
    usleep(10'000);
  }
  return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

// Found by tests/fuzz/config_fuzz.cpp (kept in its corpus): a ',' that opens
// the file made yaml-cpp 0.7 start document after document at it, and
// yaml_problems, which walks every document, never returned: `bpfgate check`
// and a reload hung on a 3-byte config.
TEST(InputGuard, YamlThatStopsTheParserIsRefusedInBoundedTime) {
  std::ifstream in(fs::path(BPFGATE_SOURCE_DIR) / "tests/fuzz/config/regress-stray-comma-hang",
                   std::ios::binary);
  std::string found((std::istreambuf_iterator<char>(in)), {});
  ASSERT_EQ(found, ",[\xdb");
  for (const std::string &text :
       {found, std::string(","), std::string(",\n"), std::string("a: 1\n---\n,\n")}) {
    auto refused = [&] {
      auto c = parse_config(text, "/nonexistent/bpfgate.yaml");
      _exit(!c && has(c.error().message(), "not valid YAML") ? 0 : 1);
    };
    EXPECT_TRUE(finishes_within(std::chrono::seconds(5), refused))
        << excerpt(text) << ": not refused as invalid YAML within 5 s";
  }
  EXPECT_TRUE(has(problems_text(","), "1: not valid YAML: nothing can be read at column 1"));
}

}  // namespace
}  // namespace bpfgate::core::input_guard
