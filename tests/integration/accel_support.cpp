#include "integration/accel_support.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <fstream>
#include <sstream>
#include <thread>
#include <vector>

#include <fmt/format.h>

#include "features/accel/accel.hpp"

namespace bpfgate::test::accel {

using nlohmann::json;
using namespace std::chrono_literals;

std::string name(const std::string &suffix) {
  return fmt::format("bgacc{}{}", getpid() % 100000, suffix);
}

namespace {
std::string unified_root() {
  auto root = agent::accel::unified_hierarchy();
  if (!root) {
    ADD_FAILURE() << root.error().what();
    return "/sys/fs/cgroup/unified";
  }
  return *root;
}

bool write_file(const std::string &path, const std::string &text) {
  std::ofstream f(path);
  f << text;
  f.flush();
  return static_cast<bool>(f);
}
}  // namespace

Cgroup::Cgroup(const std::string &suffix) {
  parent_ = unified_root();
  path_ = parent_ + "/" + name(suffix);
  run("rmdir " + path_ + " 2>/dev/null");  // a leftover of a killed run
  EXPECT_EQ(::mkdir(path_.c_str(), 0755), 0) << path_ << ": " << strerror(errno);
  std::ifstream self("/proc/self/cgroup");
  for (std::string line; std::getline(self, line);)
    if (line.rfind("0::", 0) == 0)
      original_ =
          parent_ + (line.size() > 3 && line[3] == '/' && line.size() > 4 ? line.substr(3) : "");
  if (original_.empty())
    original_ = parent_;
}

std::string Cgroup::run_in(const std::string &cmd) const {
  return fmt::format("sh -c 'echo $$ > {}/cgroup.procs && exec {}'", path_, cmd);
}

void Cgroup::join() {
  EXPECT_TRUE(write_file(path_ + "/cgroup.procs", std::to_string(getpid()))) << "join " << path_;
  joined_ = true;
}

void Cgroup::leave() {
  if (joined_) {
    EXPECT_TRUE(write_file(original_ + "/cgroup.procs", std::to_string(getpid())))
        << "leave " << path_ << " for " << original_;
  }
  joined_ = false;
}

Cgroup::~Cgroup() {
  leave();
  // Whatever is still inside (a child a failed test left) goes to the parent.
  for (int attempt = 0; attempt < 100; attempt++) {
    std::ifstream procs(path_ + "/cgroup.procs");
    for (std::string pid; std::getline(procs, pid);)
      write_file(parent_ + "/cgroup.procs", pid);
    if (::rmdir(path_.c_str()) == 0 || errno == ENOENT)
      return;
    std::this_thread::sleep_for(20ms);
  }
  ADD_FAILURE() << "could not remove cgroup " << path_ << ": " << strerror(errno);
}

Accel::Accel(const Netns &ns, const Cgroup &cg)
    : ns_(ns), cg_(cg), bpffs_("/tmp/" + name("-bpffs-") + ns.name()) {
  run("umount " + bpffs_ + " 2>/dev/null; rmdir " + bpffs_ + " 2>/dev/null");  // a killed run's
  run_ok("mkdir -p " + bpffs_ + " && mount -t bpf bpf " + bpffs_);
}

Accel::~Accel() {
  cli("accel disable --force --timeout 1 2>/dev/null");
  run("umount " + bpffs_ + " && rmdir " + bpffs_);
}

CmdResult Accel::cli(const std::string &args) const {
  return run(ns_.exec() + bpfgate_bin() + " --bpffs " + bpffs_ + " " + args);
}

void Accel::enable(const std::string &extra) {
  auto r = cli("accel enable --cgroup " + cg_.path() + " " + extra);
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
}

json Accel::status() const {
  auto r = cli("-j accel status");
  EXPECT_EQ(r.exit_code, 0) << r.err;
  auto j = json::parse(r.out, nullptr, false);
  EXPECT_FALSE(j.is_discarded()) << r.out;
  return j.is_discarded() ? json::object() : j;
}

uint64_t Accel::redirected_bytes() const {
  auto j = status();
  return j.contains("redirected") ? j["redirected"]["bytes"].get<uint64_t>() : 0;
}

uint64_t Accel::sockets() const {
  auto j = status();
  return j.contains("sockets") ? j["sockets"].get<uint64_t>() : 0;
}

Pair connect_pair(const Netns &ns, int family) {
  Pair p;
  auto listener = ns.socket(family, SOCK_STREAM);
  sockaddr_storage ss{};
  socklen_t len = 0;
  if (family == AF_INET) {
    auto *a = reinterpret_cast<sockaddr_in *>(&ss);
    a->sin_family = AF_INET;
    a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    len = sizeof(*a);
  } else {
    auto *a = reinterpret_cast<sockaddr_in6 *>(&ss);
    a->sin6_family = AF_INET6;
    a->sin6_addr = in6addr_loopback;
    len = sizeof(*a);
  }
  auto *sa = reinterpret_cast<sockaddr *>(&ss);
  EXPECT_EQ(bind(listener.get(), sa, len), 0) << strerror(errno);
  EXPECT_EQ(listen(listener.get(), 16), 0);
  EXPECT_EQ(getsockname(listener.get(), sa, &len), 0);
  p.client = ns.socket(family, SOCK_STREAM);
  EXPECT_EQ(connect(p.client.get(), sa, len), 0) << strerror(errno);
  p.server = bpf::UniqueFd(accept4(listener.get(), nullptr, nullptr, SOCK_CLOEXEC));
  EXPECT_TRUE(p.server.valid()) << strerror(errno);
  return p;
}

uint8_t pattern_byte(uint64_t seed, uint64_t i) {
  uint64_t x = (i >> 3) * 0x9E3779B97F4A7C15ULL ^ (seed * 0xD1B54A32D192ED03ULL + 1);
  x ^= x >> 31;
  x *= 0xBF58476D1CE4E5B9ULL;
  x ^= x >> 29;
  return static_cast<uint8_t>(x >> ((i & 7) * 8));
}

bool send_pattern(int fd, uint64_t seed, uint64_t total, size_t chunk) {
  std::vector<uint8_t> buf(chunk);
  uint64_t off = 0;
  while (off < total) {
    size_t n = static_cast<size_t>(std::min<uint64_t>(chunk, total - off));
    for (size_t i = 0; i < n; i++)
      buf[i] = pattern_byte(seed, off + i);
    size_t done = 0;
    while (done < n) {
      ssize_t w = ::send(fd, buf.data() + done, n - done, MSG_NOSIGNAL);
      if (w < 0 && errno == EINTR)
        continue;
      if (w <= 0)
        return false;
      done += static_cast<size_t>(w);
    }
    off += n;
  }
  return true;
}

ReadResult recv_pattern(int fd, uint64_t seed, uint64_t total, size_t chunk) {
  ReadResult r;
  std::vector<uint8_t> buf(chunk);
  timeval tv{};
  socklen_t tl = sizeof(tv);
  getsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, &tl);
  auto timeout = std::chrono::seconds(tv.tv_sec) + std::chrono::microseconds(tv.tv_usec);
  while (r.bytes < total) {
    size_t want = static_cast<size_t>(std::min<uint64_t>(chunk, total - r.bytes));
    auto t0 = std::chrono::steady_clock::now();
    ssize_t n = ::recv(fd, buf.data(), want, 0);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0 && errno == EAGAIN && timeout.count() > 0 &&
        std::chrono::steady_clock::now() - t0 < timeout / 2) {
      r.early_eagain++;
      continue;
    }
    if (n < 0) {
      r.error = errno;  // timeout or error
      break;
    }
    if (n == 0) {
      r.eof = true;
      break;
    }
    if (r.first_bad < 0)
      for (ssize_t i = 0; i < n; i++)
        if (buf[i] != pattern_byte(seed, r.bytes + i)) {
          r.first_bad = static_cast<int64_t>(r.bytes + i);
          break;
        }
    r.bytes += static_cast<uint64_t>(n);
  }
  return r;
}

void set_timeouts(int fd, int ms) {
  timeval tv{ms / 1000, (ms % 1000) * 1000};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

bool raise_nofile(rlim_t n) {
  rlimit rl{};
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
    return false;
  if (rl.rlim_cur >= n)
    return true;
  rl.rlim_cur = n;
  if (rl.rlim_max < n)
    rl.rlim_max = n;
  return setrlimit(RLIMIT_NOFILE, &rl) == 0;
}

}  // namespace bpfgate::test::accel
