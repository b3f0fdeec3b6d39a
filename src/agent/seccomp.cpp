#include "agent/seccomp.hpp"

#include <sched.h>
#include <seccomp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <memory>

namespace bpfgate::agent::seccomp {

namespace {

// What the agent may call once it runs, by what needs it. Names unknown to
// this architecture (open, stat, ... on arm64) are skipped. Everything else
// fails with EPERM: fork/exec, ptrace, mount, namespaces, module loading,
// reboot, keyrings, identity changes, raw and packet sockets among them.
struct Group {
  const char *why;
  std::initializer_list<const char *> names;
};

const Group kAllowed[] = {
    {"memory", {"brk", "mmap", "munmap", "mremap", "mprotect", "madvise"}},
    // Threads (the metrics server's; a reload may start a new one): clone is
    // allowed below with CLONE_THREAD only, so no process can be forked.
    {"threads",
     {"futex", "set_robust_list", "rseq", "sched_yield", "sched_getaffinity", "gettid", "getpid",
      "exit", "exit_group"}},
    // capget: what the agent may do, checked before a load to explain a refusal.
    {"identity (audit lines, peer checks, capabilities)",
     {"getuid", "geteuid", "getgid", "getegid", "capget"}},
    {"time", {"clock_gettime", "clock_getres", "gettimeofday", "nanosleep", "clock_nanosleep"}},
    // tgkill is allowed below towards this process only (abort(), raise()).
    // restart_syscall: the kernel resumes a sleep interrupted by a stop
    // (SIGSTOP then SIGCONT, a cgroup freeze) with it; refused, a thread
    // waiting on a futex with a timeout (the fleet's backoff) got EPERM and
    // glibc aborted the agent ("The futex facility returned an unexpected
    // error code").
    {"signals",
     {"rt_sigprocmask", "rt_sigaction", "rt_sigreturn", "sigaltstack", "restart_syscall"}},
    // Configs and prefix files read at reload, pins and their lock under
    // bpffs (statfs: is it one?), the control socket's path, /sys and /proc
    // reads by libbpf, the cgroup accel attaches to, the state directory's
    // blocks file (written, fsync'd, renamed: features/xdp/block_store.hpp).
    {"files",
     {"openat",  "open",     "close",     "read",       "write",      "readv",      "writev",
      "pread64", "pwrite64", "lseek",     "fstat",      "newfstatat", "stat",       "lstat",
      "statx",   "access",   "faccessat", "faccessat2", "readlink",   "readlinkat", "getdents64",
      "fcntl",   "flock",    "mkdir",     "mkdirat",    "rmdir",      "unlink",     "unlinkat",
      "rename",  "renameat", "renameat2", "chmod",      "fchmod",     "fchmodat",   "umask",
      "dup",     "dup3",     "getcwd",    "statfs",     "fstatfs",    "fsync",      "fdatasync"}},
    // Interface lookups (SIOCGIFINDEX), FIONREAD, perf buffer enable.
    {"ioctl", {"ioctl"}},
    {"event loop",
     {"epoll_create1", "epoll_ctl", "epoll_wait", "epoll_pwait", "epoll_pwait2", "poll", "ppoll",
      "timerfd_create", "timerfd_settime", "timerfd_gettime", "signalfd4", "eventfd2"}},
    // socket() itself is allowed below for four families only. sendmmsg:
    // glibc's resolver sends a host name's A and AAAA queries in one call, so
    // without it the fleet's etcd endpoints given by name never resolve.
    {"sockets: control socket, /metrics, netlink (XDP, tc, libnl), accel probes, DNS",
     {"bind", "listen", "accept", "accept4", "connect", "getsockname", "getpeername", "getsockopt",
      "setsockopt", "sendto", "sendmsg", "sendmmsg", "recvfrom", "recvmsg", "shutdown"}},
    // perf_event_open: the perf event buffer and tracepoint probes where the
    // kernel lacks ring buffers or BTF attach points.
    {"BPF (load, attach, pin, maps, iterators; libbpf's probes)",
     {"bpf", "perf_event_open", "uname", "getrlimit", "prlimit64", "getrandom"}},
};

// The families of RestrictAddressFamilies= in deploy/bpfgate.service.
constexpr int kFamilies[] = {AF_UNIX, AF_INET, AF_INET6, AF_NETLINK};

// EPERM rather than killing: a call missing here (a libc or kernel update, a
// fallback path no test took) then fails like any refused operation: the
// reload that made it is refused with the error and the running policy
// stays, instead of the agent dying on every reload. The datapath would
// survive a kill (pinned), but reloads, blocks and /metrics would not.
constexpr uint32_t kDefaultAction = SCMP_ACT_ERRNO(EPERM);

struct CtxFree {
  void operator()(void *c) const { seccomp_release(c); }
};
using Ctx = std::unique_ptr<void, CtxFree>;

Status rule(const Ctx &ctx, uint32_t action, int nr, const char *name,
            std::initializer_list<scmp_arg_cmp> args = {}) {
  int rc = seccomp_rule_add_array(ctx.get(), action, nr, static_cast<unsigned>(args.size()),
                                  args.size() ? args.begin() : nullptr);
  if (rc < 0)
    return make_error(-rc, "seccomp: allow {}", name);
  return {};
}

Result<size_t> add_rules(const Ctx &ctx) {
  size_t n = 0;
  for (const auto &g : kAllowed)
    for (const char *name : g.names) {
      int nr = seccomp_syscall_resolve_name(name);
      if (nr == __NR_SCMP_ERROR)
        continue;
      if (auto st = rule(ctx, SCMP_ACT_ALLOW, nr, name); !st)
        return st.error().context(g.why);
      n++;
    }
  for (int family : kFamilies)
    if (auto st = rule(ctx, SCMP_ACT_ALLOW, SCMP_SYS(socket), "socket",
                       {SCMP_A0(SCMP_CMP_EQ, static_cast<scmp_datum_t>(family))});
        !st)
      return st.error();
  // libcurl's wakeup pair (the fleet's etcd client, features/fleet): AF_UNIX only.
  if (auto st = rule(ctx, SCMP_ACT_ALLOW, SCMP_SYS(socketpair), "socketpair",
                     {SCMP_A0(SCMP_CMP_EQ, static_cast<scmp_datum_t>(AF_UNIX))});
      !st)
    return st.error();
  // Threads, not processes: clone must carry CLONE_THREAD. clone3 hides its
  // flags in memory a filter cannot read, so it says ENOSYS, and glibc's
  // pthread_create falls back to clone.
  if (auto st = rule(ctx, SCMP_ACT_ALLOW, SCMP_SYS(clone), "clone",
                     {SCMP_A0(SCMP_CMP_MASKED_EQ, CLONE_THREAD, CLONE_THREAD)});
      !st)
    return st.error();
  if (auto st = rule(ctx, SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(clone3), "clone3"); !st)
    return st.error();
  if (auto st = rule(ctx, SCMP_ACT_ALLOW, SCMP_SYS(tgkill), "tgkill",
                     {SCMP_A0(SCMP_CMP_EQ, static_cast<scmp_datum_t>(getpid()))});
      !st)
    return st.error();
  return n + 4;
}

}  // namespace

std::vector<std::string> allowed_syscalls() {
  std::vector<std::string> names;
  for (const auto &g : kAllowed)
    for (const char *name : g.names)
      if (seccomp_syscall_resolve_name(name) != __NR_SCMP_ERROR)
        names.push_back(name);
  names.insert(names.end(), {"socket", "socketpair", "clone", "tgkill"});
  return names;
}

Result<Installed> install() {
  Ctx ctx(seccomp_init(kDefaultAction));
  if (!ctx)
    return Error(ENOMEM, "seccomp: seccomp_init");
  if (int rc = seccomp_attr_set(ctx.get(), SCMP_FLTATR_CTL_TSYNC, 1); rc < 0)
    return Error(-rc, "seccomp: synchronise threads");
  auto n = add_rules(ctx);
  if (!n)
    return n.error();
  if (int rc = seccomp_load(ctx.get()); rc < 0)
    return Error(-rc, "seccomp: load the filter");
  return Installed{.syscalls = *n};
}

}  // namespace bpfgate::agent::seccomp
