// The agent's own seccomp filter (libseccomp). Once `bpfgate run` is set up it
// confines itself to the system calls its steady state makes: reloads (which
// load and attach BPF programs over bpf() and netlink), blocks, sweeps, the
// event buffers, /metrics, the control socket, signals and logging. Any other
// call fails with EPERM. The allow-list lives in one place, seccomp.cpp's
// kAllowed table, each group with why the agent needs it.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include "util/result.hpp"

namespace bpfgate::agent::seccomp {

struct Installed {
  size_t syscalls = 0;  // allowed, some only with certain arguments (socket, clone, tgkill)
};

// Every system call the filter allows on this architecture, some only with
// certain arguments (socket, clone, tgkill): the unit's SystemCallFilter=
// must allow them all (tests/unit/deploy/service_test.cpp checks).
std::vector<std::string> allowed_syscalls();

// Builds the filter and loads it into every thread of this process (the
// metrics server's too, and threads made later inherit it). It cannot be
// undone: the process keeps it until it exits. Sets no_new_privs.
Result<Installed> install();

}  // namespace bpfgate::agent::seccomp
