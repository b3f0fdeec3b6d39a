// The agent's seccomp filter (agent/seccomp.hpp), installed in a forked child
// so the test process stays free: what the agent never does fails with EPERM
// (and works without the filter), what it does still works.
#include <fcntl.h>
#include <linux/bpf.h>
#include <netinet/in.h>
#include <sched.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <functional>
#include <string>
#include <thread>

#include "agent/seccomp.hpp"

namespace bpfgate::agent {
namespace {

constexpr const char *kDone = "<done>";

// Runs `body` in a forked child, with the agent's filter first if `filtered`;
// returns what it reported ("" when all went as expected).
std::string in_child(bool filtered, const std::function<std::string()> &body) {
  int p[2];
  if (pipe(p) != 0)
    return "pipe";
  pid_t pid = fork();
  if (pid == 0) {
    close(p[0]);
    std::string out;
    if (filtered) {
      auto r = seccomp::install();
      out = r ? body() : "install: " + r.error().what();
    } else {
      out = body();
    }
    out += kDone;
    (void)!write(p[1], out.data(), out.size());
    _exit(0);
  }
  close(p[1]);
  std::string out;
  char buf[512];
  for (ssize_t n; (n = read(p[0], buf, sizeof(buf))) > 0;)
    out.append(buf, static_cast<size_t>(n));
  close(p[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
    out += " (the child died: status " + std::to_string(status) + ")";
  if (out.ends_with(kDone))
    out.resize(out.size() - std::strlen(kDone));
  else
    out += " (the child did not finish its checks: replaced by an execve?)";
  return out;
}

// "" when `call` returned -1 with EPERM; otherwise what it did.
std::string refused(const char *what, long rc) {
  if (rc == -1 && errno == EPERM)
    return "";
  return std::string(what) + " was not refused: " +
         (rc == -1 ? std::string(strerror(errno)) : "returned " + std::to_string(rc)) + "\n";
}

// "" when `call` did not fail with EPERM.
std::string works(const char *what, long rc) {
  if (rc >= 0 || errno != EPERM)
    return "";
  return std::string(what) + " was refused\n";
}

// Calls the agent never makes. An execve that succeeds replaces the child,
// whose report then lacks kDone, and the test fails.
std::string forbidden(bool expect_refused) {
  auto check = expect_refused ? refused : works;
  std::string out;
  pid_t child = fork();
  if (child == 0)
    _exit(0);
  if (child > 0)
    waitpid(child, nullptr, 0);
  out += check("fork", child);
  if (expect_refused) {
    char *const argv[] = {const_cast<char *>("/bin/true"), nullptr};
    out += check("execve", execve("/bin/true", argv, environ));
  }
  if (geteuid() == 0) {  // what only root may do anyway
    out += check("unshare(CLONE_NEWUTS)", unshare(CLONE_NEWUTS));
    int fd = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, 0);
    out += check("socket(AF_PACKET)", fd);
    if (fd >= 0)
      close(fd);
  }
  // Last: once traced, the child would stop at its next signal (a SIGCHLD)
  // until the parent, blocked on the pipe, waited for it.
  out += check("ptrace(PTRACE_TRACEME)", ptrace(PTRACE_TRACEME, 0, nullptr, nullptr));
  return out;
}

TEST(Seccomp, WhatTheAgentNeverDoesIsRefusedWithEperm) {
  EXPECT_EQ(in_child(false, [] { return forbidden(false); }), "")
      << "without the filter these calls work here: the test below would prove nothing";
  EXPECT_EQ(in_child(true, [] { return forbidden(true); }), "");
}

TEST(Seccomp, WhatTheAgentDoesStillWorks) {
  auto out = in_child(true, [] {
    std::string out;
    std::ifstream in("/proc/self/status");
    std::string status((std::istreambuf_iterator<char>(in)), {});
    if (status.find("Seccomp:\t2\n") == std::string::npos)
      out += "not in seccomp filter mode: " + status + "\n";
    // A thread: clone3 says ENOSYS, glibc falls back to clone with CLONE_THREAD.
    bool ran = false;
    std::thread([&] { ran = true; }).join();
    if (!ran)
      out += "no thread\n";
    for (int family : {AF_UNIX, AF_INET, AF_INET6, AF_NETLINK}) {
      int fd = socket(
          family,
          (family == AF_UNIX || family == AF_NETLINK ? SOCK_DGRAM : SOCK_STREAM) | SOCK_CLOEXEC, 0);
      out += works(("socket(" + std::to_string(family) + ")").c_str(), fd);
      if (fd >= 0)
        close(fd);
    }
    // How the kernel resumes a sleep after a stop (SIGSTOP, SIGCONT): with
    // nothing to resume, the kernel's EINTR, not the filter's EPERM.
    out += works("restart_syscall", syscall(SYS_restart_syscall));
    // A host name's lookup (the fleet's etcd endpoints): glibc's resolver
    // sends the A and AAAA queries together, with one sendmmsg.
    int udp = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    sockaddr_in to{};
    to.sin_family = AF_INET;
    to.sin_port = htons(9);
    to.sin_addr.s_addr = htonl(0x7f000001);
    if (udp >= 0 && connect(udp, reinterpret_cast<sockaddr *>(&to), sizeof(to)) == 0) {
      char query[2][12] = {};
      iovec iov[2] = {{query[0], sizeof(query[0])}, {query[1], sizeof(query[1])}};
      mmsghdr msgs[2] = {};
      for (int i = 0; i < 2; ++i) {
        msgs[i].msg_hdr.msg_iov = &iov[i];
        msgs[i].msg_hdr.msg_iovlen = 1;
      }
      out += works("sendmmsg", sendmmsg(udp, msgs, 2, MSG_NOSIGNAL));
    } else {
      out += "a UDP socket to 127.0.0.1:9: " + std::string(strerror(errno)) + "\n";
    }
    if (udp >= 0)
      close(udp);
    int fd = open("/proc/self/stat", O_RDONLY | O_CLOEXEC);
    out += works("open", fd);
    if (fd >= 0)
      close(fd);
    // bpf() is reached: an unknown command is the kernel's EINVAL, not the filter's EPERM.
    if (geteuid() == 0)
      out += works("bpf", syscall(SYS_bpf, 1000, nullptr, 0));
    return out;
  });
  EXPECT_EQ(out, "");
}

}  // namespace
}  // namespace bpfgate::agent
