#include "support/system.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cerrno>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <mutex>
#include <thread>

#include <fmt/format.h>

namespace bpfgate::test {

namespace {
void drain(int fd, std::string &into) {
  char buf[4096];
  ssize_t n = ::read(fd, buf, sizeof(buf));
  if (n > 0)
    into.append(buf, static_cast<size_t>(n));
}
}  // namespace

CmdResult run(const std::string &cmd) {
  CmdResult r;
  int out[2], err[2];
  if (pipe2(out, O_CLOEXEC) != 0 || pipe2(err, O_CLOEXEC) != 0)
    return r;
  pid_t pid = fork();
  if (pid == 0) {
    dup2(out[1], 1);
    dup2(err[1], 2);
    execl("/bin/sh", "sh", "-c", cmd.c_str(), nullptr);
    _exit(127);
  }
  ::close(out[1]);
  ::close(err[1]);
  pollfd fds[2] = {{out[0], POLLIN, 0}, {err[0], POLLIN, 0}};
  int open_fds = 2;
  while (open_fds > 0) {
    if (poll(fds, 2, -1) < 0)
      break;
    for (auto &p : fds) {
      if (p.fd < 0 || !(p.revents & (POLLIN | POLLHUP | POLLERR)))
        continue;
      std::string &into = p.fd == out[0] ? r.out : r.err;
      size_t before = into.size();
      drain(p.fd, into);
      if (into.size() == before) {
        ::close(p.fd);
        p.fd = -1;
        open_fds--;
      }
    }
  }
  int status = 0;
  waitpid(pid, &status, 0);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

CmdResult run_ok(const std::string &cmd) {
  CmdResult r = run(cmd);
  if (r.exit_code != 0)
    ADD_FAILURE() << "command failed (" << r.exit_code << "): " << cmd << "\nstdout: " << r.out
                  << "\nstderr: " << r.err;
  return r;
}

std::string in_ns(const std::string &ns) {
  return "nsenter --net=/run/netns/" + ns + " ";
}
std::string bpfgate_bin() {
  return BPFGATE_BINARY;
}
std::string gen_bin() {
  return BPFGATE_GEN;
}
std::string crashpoints_bin() {
  return BPFGATE_CRASHPOINTS;
}
std::string unique_prefix() {
  return fmt::format("bgt{}", getpid() % 100000);
}
bool contains(const std::string &h, const std::string &n) {
  return h.find(n) != std::string::npos;
}

size_t occurrences(const std::string &haystack, const std::string &needle) {
  size_t n = 0;
  for (size_t at = 0; (at = haystack.find(needle, at)) != std::string::npos; at += needle.size())
    n++;
  return n;
}

namespace {

// One file per namespace a test made, named as it and holding its owner's
// pid: a process that dies without running its destructors (a crash, a
// timeout's SIGKILL) leaves its namespaces, and the next test process to make
// one removes those whose owner is gone.
constexpr const char *kNetnsOwners = "/run/bpfgate-tests";

void remove_orphan_namespaces() {
  static std::once_flag once;
  std::call_once(once, [] {
    std::error_code ec;
    for (const auto &e : std::filesystem::directory_iterator(kNetnsOwners, ec)) {
      if (e.path().extension() == ".new")
        continue;  // being written
      pid_t pid = 0;
      std::ifstream(e.path()) >> pid;
      if (pid > 0 && (::kill(pid, 0) == 0 || errno == EPERM))
        continue;  // its owner runs
      run("ip netns del " + e.path().filename().string() + " 2>/dev/null");
      std::filesystem::remove(e.path(), ec);
    }
  });
}

}  // namespace

Netns::Netns(std::string name) : name_(std::move(name)) {
  remove_orphan_namespaces();
  run("ip netns del " + name_ + " 2>/dev/null");  // a leftover of a killed run
  run_ok("ip netns add " + name_);
  std::error_code ec;
  std::filesystem::create_directories(kNetnsOwners, ec);
  // Written whole, then renamed: another process's sweep never reads it empty.
  std::string owner = std::string(kNetnsOwners) + "/" + name_;
  std::ofstream(owner + ".new") << ::getpid() << "\n";
  std::filesystem::rename(owner + ".new", owner, ec);
  run_ok(exec() + "ip link set lo up");
}

Netns::~Netns() {
  if (name_.empty())
    return;
  run("ip netns del " + name_);
  std::error_code ec;
  std::filesystem::remove(std::string(kNetnsOwners) + "/" + name_, ec);
}

void Netns::within(const std::function<void()> &fn) const {
  std::thread t([&] {
    int fd = ::open(("/run/netns/" + name_).c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0 || setns(fd, CLONE_NEWNET) != 0) {
      ADD_FAILURE() << "setns " << name_ << ": " << strerror(errno);
      if (fd >= 0)
        ::close(fd);
      return;
    }
    ::close(fd);
    fn();
  });
  t.join();
}

bpf::UniqueFd Netns::socket(int domain, int type, int protocol) const {
  int fd = -1;
  within([&] { fd = ::socket(domain, type | SOCK_CLOEXEC, protocol); });
  EXPECT_GE(fd, 0) << "socket in " << name_;
  return bpf::UniqueFd(fd);
}

void make_veth(const Netns &ns_a, const std::string &a, const std::string &addr_a,
               const Netns &ns_b, const std::string &b, const std::string &addr_b) {
  run_ok(fmt::format("ip link add {} netns {} type veth peer name {} netns {}", a, ns_a.name(), b,
                     ns_b.name()));
  for (const auto &[ns, dev, addr] : {std::tuple{&ns_a, a, addr_a}, std::tuple{&ns_b, b, addr_b}}) {
    // No IPv6 autoconf chatter: counters must see only the traffic a test sends.
    run_ok(ns->exec() + fmt::format("sysctl -qw net.ipv6.conf.{}.disable_ipv6=1", dev));
    if (!addr.empty())
      run_ok(ns->exec() + fmt::format("ip addr add {} dev {}", addr, dev));
    run_ok(ns->exec() + fmt::format("ip link set {} up", dev));
  }
}

ScratchDir::ScratchDir(const std::string &name)
    : path_(std::filesystem::temp_directory_path() / name) {
  std::filesystem::remove_all(path_);
  std::filesystem::create_directories(path_);
}

ScratchDir::~ScratchDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

std::string read_file(const std::string &path) {
  std::ifstream in(path);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

Process Process::spawn(const std::string &cmd) {
  pid_t pid = fork();
  if (pid == 0) {
    setpgid(0, 0);
    dup2(2, 1);
    execl("/bin/sh", "sh", "-c", cmd.c_str(), nullptr);
    _exit(127);
  }
  if (pid > 0)
    setpgid(pid, pid);  // both sides: no window where a kill misses
  return Process(pid);
}

int Process::wait(std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (pid_ > 0) {
    int status = 0;
    pid_t r = waitpid(pid_, &status, WNOHANG);
    if (r == pid_) {
      pid_ = -1;
      return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    }
    if (std::chrono::steady_clock::now() >= deadline)
      return -1;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return -1;
}

void Process::kill(int sig) {
  if (pid_ > 0)
    ::kill(-pid_, sig);
}

Process::~Process() {
  if (pid_ > 0) {
    ::kill(-pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
  }
}

}  // namespace bpfgate::test
