// Running commands and processes from tests, with RAII owners for network
// namespaces and background processes so a failing test still cleans up.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <filesystem>
#include <functional>
#include <optional>
#include <thread>
#include <string>
#include <vector>

#include "bpf/fd.hpp"

namespace bpfgate::test {

struct CmdResult {
  int exit_code = -1;  // -1: killed by a signal or not run
  std::string out;
  std::string err;
};

// Runs `cmd` with /bin/sh -c, capturing stdout and stderr separately.
CmdResult run(const std::string &cmd);
// Runs and fails the current test (ADD_FAILURE) when the exit code is not 0.
CmdResult run_ok(const std::string &cmd);

// "nsenter --net=/run/netns/NS " (the prefix that runs a command in a netns
// without remounting /sys, so /sys/fs/bpf stays visible).
std::string in_ns(const std::string &ns);

// The bpfgate and bpfgate-gen binaries of this build.
std::string bpfgate_bin();
std::string gen_bin();
// bpfgate built with crash points that end it (agent/crash_point.hpp), for the fault tests.
std::string crashpoints_bin();

// A unique short prefix for names made by this test process ("bgt1234").
std::string unique_prefix();

// A network namespace, deleted (with every link in it) when the owner goes.
class Netns {
 public:
  explicit Netns(std::string name);
  Netns(Netns &&o) noexcept : name_(std::move(o.name_)) { o.name_.clear(); }
  Netns(const Netns &) = delete;
  Netns &operator=(const Netns &) = delete;
  ~Netns();

  const std::string &name() const { return name_; }
  std::string exec() const { return in_ns(name_); }  // prefix for commands
  // Runs fn on a thread that has entered this namespace; sockets it creates
  // belong to the namespace for their whole life.
  void within(const std::function<void()> &fn) const;
  bpf::UniqueFd socket(int domain, int type, int protocol = 0) const;

 private:
  std::string name_;
};

// Creates a veth pair a (in ns_a, address addr_a) <-> b (in ns_b, addr_b),
// both up, no default route anywhere. Addresses in CIDR form.
void make_veth(const Netns &ns_a, const std::string &a, const std::string &addr_a,
               const Netns &ns_b, const std::string &b, const std::string &addr_b);

// A folder of its own under the temp directory (made empty), removed with
// everything in it when the owner goes.
class ScratchDir {
 public:
  explicit ScratchDir(const std::string &name);
  ScratchDir(const ScratchDir &) = delete;
  ScratchDir &operator=(const ScratchDir &) = delete;
  ~ScratchDir();

  const std::filesystem::path &path() const { return path_; }
  std::string string() const { return path_.string(); }
  // The path of `name` in the folder.
  std::string file(const std::string &name) const { return (path_ / name).string(); }

 private:
  std::filesystem::path path_;
};

// The text of the file at `path` ("" if none).
std::string read_file(const std::string &path);

// A background child process, SIGKILLed and reaped when the owner goes.
class Process {
 public:
  static Process spawn(const std::string &cmd);  // /bin/sh -c cmd, output to stderr
  Process(Process &&o) noexcept : pid_(o.pid_) { o.pid_ = -1; }
  Process(const Process &) = delete;
  Process &operator=(const Process &) = delete;
  ~Process();
  pid_t pid() const { return pid_; }
  // Waits up to `timeout` for the process to exit; its exit code or -1.
  int wait(std::chrono::milliseconds timeout);
  void kill(int sig);

 private:
  explicit Process(pid_t pid) : pid_(pid) {}
  pid_t pid_ = -1;
};

// Polls `ok` every `every` for at most `limit`: how long it took to hold, or
// nullopt if it never did.
template <class F>
std::optional<std::chrono::milliseconds> within(
    std::chrono::milliseconds limit, F &&ok,
    std::chrono::milliseconds every = std::chrono::milliseconds(20)) {
  auto t0 = std::chrono::steady_clock::now();
  while (std::chrono::steady_clock::now() - t0 < limit) {
    if (ok())
      return std::chrono::duration_cast<std::chrono::milliseconds>(
          std::chrono::steady_clock::now() - t0);
    std::this_thread::sleep_for(every);
  }
  return std::nullopt;
}

// True if `haystack` contains `needle`.
bool contains(const std::string &haystack, const std::string &needle);
// How many times `needle` stands in `haystack`, not overlapping.
size_t occurrences(const std::string &haystack, const std::string &needle);

}  // namespace bpfgate::test
