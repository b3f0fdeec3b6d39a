// The CLI's subcommands. Each returns the process exit code: 0 success,
// 1 failure (message printed); usage errors (2) are CLI11's.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "features/xdp/filter.hpp"

namespace bpfgate::cli {

struct Globals {
  bool json = false;
  bool verbose = false;
  std::string bpffs = "/sys/fs/bpf";
};

int cmd_attach(const Globals &g, const agent::AttachOptions &opts);
int cmd_set(const Globals &g, const std::string &iface, std::optional<uint64_t> rate,
            std::optional<uint64_t> burst, std::optional<uint64_t> new_sources = {},
            std::optional<uint64_t> unproven = {});
int cmd_detach(const Globals &g, const std::string &iface);
// This binary's filter program swapped in for the running one (features/xdp/replace.hpp).
int cmd_upgrade(const Globals &g, const std::string &iface);
// The interface's bypass switch: on passes every frame at once (audited).
int cmd_bypass(const Globals &g, const std::string &iface, bool on);
// Every attached interface, or only `iface` when it is not empty.
int cmd_status(const Globals &g, const std::string &iface);

struct TopOptions {
  std::string iface;  // empty: every attached interface
  double interval_s = 1.0;
  uint64_t count = 0;  // 0: until interrupted
  uint32_t rows = 20;
  bool plain = false;  // plain frames even on a terminal (features/observe/top_view.hpp)
};
int cmd_top(const Globals &g, const TopOptions &opts);

// Prints "bpfgate: error: ..." and returns 1.
// Reports e (on stderr; a JSON object with set_json_errors(true), i.e. -j) and
// returns the exit status 1.
int fail(const Error &e);

// One request line to the agent on its control socket `path`: what follows
// its "ok " (empty for a bare "ok"), or the error it gave (or that no agent
// answers there).
Result<std::string> ask_agent(const std::string &path, const std::string &request);
void set_json_errors(bool on);
// The same without returning: one of several errors of a command.
void report(const Error &e);

// Commands that run until interrupted (top, events, accel watch): after
// stop_on_signals(), SIGINT and SIGTERM make stop_requested() true, as
// request_stop() does (top's q key).
void stop_on_signals();
bool stop_requested();
void request_stop();

}  // namespace bpfgate::cli
