#include "agent/tc_qdisc.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <chrono>
#include <cstring>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "bpf/fd.hpp"
#include "util/log.hpp"

namespace bpfgate::agent::qdisc {

namespace {

constexpr int kTcTimeoutMs = 10'000;
// Every leaf has a distinct priority, so the quantum (DRR among leaves of one
// priority) only needs to exceed a frame.
constexpr unsigned kQuantum = 60000;

std::string handle_str() {
  return fmt::format("{:x}:", BG_TC_HTB_MAJOR);
}

}  // namespace

Result<std::string> run_tc(const std::vector<std::string> &args, const std::string &input) {
  int in[2], out[2], err[2];
  if (pipe2(in, O_CLOEXEC) != 0 || pipe2(out, O_CLOEXEC) != 0 || pipe2(err, O_CLOEXEC) != 0)
    return Error(errno, "pipe for tc");
  bpf::UniqueFd in_w(in[1]), out_r(out[0]), err_r(err[0]);
  std::vector<char *> argv;
  argv.push_back(const_cast<char *>("tc"));
  for (const auto &a : args)
    argv.push_back(const_cast<char *>(a.c_str()));
  argv.push_back(nullptr);
  pid_t pid = fork();
  if (pid < 0) {
    ::close(in[0]);
    ::close(out[1]);
    ::close(err[1]);
    return Error(errno, "fork tc");
  }
  if (pid == 0) {
    dup2(in[0], 0);
    dup2(out[1], 1);
    dup2(err[1], 2);
    execvp("tc", argv.data());
    execv("/usr/sbin/tc", argv.data());
    execv("/sbin/tc", argv.data());
    _exit(127);
  }
  ::close(in[0]);
  ::close(out[1]);
  ::close(err[1]);
  if (!input.empty())
    (void)!::write(in_w.get(), input.data(), input.size());
  in_w.reset();
  std::string sout, serr;
  pollfd fds[2] = {{out_r.get(), POLLIN, 0}, {err_r.get(), POLLIN, 0}};
  int open_fds = 2;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(kTcTimeoutMs);
  while (open_fds > 0) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                    deadline - std::chrono::steady_clock::now())
                    .count();
    if (left <= 0 || poll(fds, 2, static_cast<int>(left)) <= 0)
      break;
    for (auto &p : fds) {
      if (p.fd < 0 || !(p.revents & (POLLIN | POLLHUP | POLLERR)))
        continue;
      char buf[4096];
      ssize_t n = ::read(p.fd, buf, sizeof(buf));
      if (n > 0) {
        (p.fd == out_r.get() ? sout : serr).append(buf, static_cast<size_t>(n));
      } else {
        p.fd = -1;
        open_fds--;
      }
    }
  }
  if (open_fds > 0)
    ::kill(pid, SIGKILL);
  int status = 0;
  waitpid(pid, &status, 0);
  std::string cmd = "tc";
  for (const auto &a : args)
    cmd += " " + a;
  while (!serr.empty() && serr.back() == '\n')
    serr.pop_back();
  if (open_fds > 0)
    return make_error(ETIMEDOUT, "`{}` did not finish in {} s", cmd, kTcTimeoutMs / 1000);
  if (!WIFEXITED(status) || WEXITSTATUS(status) == 127)
    return make_error(ENOENT, "could not run `{}`: is iproute2 installed?", cmd);
  if (WEXITSTATUS(status) != 0)
    return make_error(EIO, "`{}` failed: {}", cmd, serr.empty() ? "(no message)" : serr);
  return sout;
}

Result<RootQdisc> root_qdisc(const std::string &iface) {
  auto out = run_tc({"-j", "qdisc", "show", "dev", iface, "root"});
  if (!out)
    return out.error();
  auto j = nlohmann::json::parse(*out, nullptr, false);
  RootQdisc r;
  if (j.is_discarded() || !j.is_array())
    return make_error(EPROTO, "could not read `tc -j qdisc show dev {} root`: {}", iface, *out);
  if (j.empty())
    return r;  // noqueue shows nothing
  const auto &q = j[0];
  std::string kind = q.value("kind", "");
  std::string handle = q.value("handle", "");
  r.description = kind + " " + handle;
  if (kind == "htb" && q.contains("options") && q["options"].is_object()) {
    // iproute2 prints the default class as hex text ("0x14").
    const auto &d = q["options"].value("default", nlohmann::json());
    if (d.is_string())
      r.htb_default = std::strtoll(d.get<std::string>().c_str(), nullptr, 16);
    else if (d.is_number_integer())
      r.htb_default = d.get<int64_t>();
  }
  if (handle == "0:" || handle.empty())
    r.kind = RootKind::kDefault;
  else if (kind == "htb" && handle == handle_str())
    r.kind = RootKind::kOurs;
  else
    r.kind = RootKind::kForeign;
  return r;
}

// The root (when created: HTB has no `qdisc change`), its parent class and
// the leaves; `change` updates the classes of a root that is there.
std::string htb_batch(const std::string &iface, const core::TcHtbConfig &htb, bool create) {
  const char *verb = create ? "add" : "change";
  std::string h = handle_str();
  uint64_t leaf = std::max<uint64_t>(htb.rate_bps / BG_TC_PRIORITIES, core::kTcRateMinBps);
  std::string b;
  if (create)
    b += fmt::format("qdisc add dev {} root handle {} htb default {:x}\n", iface, h,
                     BG_TC_HTB_MINOR_BASE + htb.default_priority);
  b += fmt::format("class {} dev {} parent {} classid {}1 htb rate {}bit ceil {}bit quantum {}\n",
                   verb, iface, h, h, htb.rate_bps, htb.rate_bps, kQuantum);
  // Each leaf is guaranteed an eighth of the link and may borrow up to all of
  // it; a leaf under its guarantee is served first, lower priority first.
  for (unsigned p = 0; p < BG_TC_PRIORITIES; p++)
    b += fmt::format(
        "class {} dev {} parent {}1 classid {}{:x} htb rate {}bit ceil {}bit prio {} quantum {}\n",
        verb, iface, h, h, BG_TC_HTB_MINOR_BASE + p, leaf, htb.rate_bps, p, kQuantum);
  return b;
}

Result<bool> htb_apply(const std::string &iface, const core::TcHtbConfig &htb) {
  auto root = root_qdisc(iface);
  if (!root)
    return root.error();
  if (root->kind == RootKind::kForeign)
    return make_error(EBUSY,
                      "{} already has a root qdisc ({}) that bpfgate did not set up; remove it "
                      "(`tc qdisc del dev {} root`) or leave tc.htb out of the config",
                      iface, root->description, iface);
  bool create = root->kind == RootKind::kDefault;
  if (root->kind == RootKind::kOurs &&
      root->htb_default != BG_TC_HTB_MINOR_BASE + htb.default_priority) {
    // The default class is fixed when an HTB root is made: a new one is made,
    // and what was queued under the old one is dropped.
    log::info("{}: HTB default priority changes to {}: the root qdisc is re-created", iface,
              htb.default_priority);
    if (auto st = htb_remove(iface); !st)
      return st.error().context("re-create HTB on " + iface);
    create = true;
  }
  auto out = run_tc({"-batch", "-"}, htb_batch(iface, htb, create));
  if (!out) {
    if (create)
      (void)run_tc({"qdisc", "del", "dev", iface, "root", "handle", handle_str()});
    return out.error().context("set up HTB on " + iface);
  }
  return create;
}

Status htb_remove(const std::string &iface) {
  auto root = root_qdisc(iface);
  if (!root)
    return root.error();
  if (root->kind != RootKind::kOurs)
    return {};
  auto out = run_tc({"qdisc", "del", "dev", iface, "root", "handle", handle_str()});
  if (!out)
    return out.error();
  return {};
}

Result<bool> clsact_has_filters(const std::string &iface) {
  for (const char *dir : {"ingress", "egress"}) {
    auto out = run_tc({"-j", "filter", "show", "dev", iface, dir});
    if (!out)
      return out.error();
    auto j = nlohmann::json::parse(*out, nullptr, false);
    if (j.is_discarded() || !j.is_array())
      return make_error(EPROTO, "could not read `tc -j filter show dev {} {}`: {}", iface, dir,
                        *out);
    if (!j.empty())
      return true;
  }
  return false;
}

}  // namespace bpfgate::agent::qdisc
