// The qdiscs around the tc datapath, driven through iproute2's `tc` command:
// the HTB hierarchy that priorities map to, and whether clsact still holds
// filters. (Why `tc` and not netlink: README, "tc datapath".)
#pragma once

#include <string>
#include <vector>

#include "core/tc_config.hpp"
#include "util/result.hpp"

namespace bpfgate::agent::qdisc {

// Runs `tc ARGS` (no shell) with `input` on its stdin; its stdout, or an
// error carrying what tc printed on stderr.
Result<std::string> run_tc(const std::vector<std::string> &args, const std::string &input = "");

enum class RootKind {
  kDefault,  // the kernel's default (handle 0:, e.g. noqueue, pfifo_fast, mq)
  kOurs,     // HTB with handle BG_TC_HTB_MAJOR:
  kForeign,  // someone else's
};
struct RootQdisc {
  RootKind kind = RootKind::kDefault;
  std::string description;   // "htb 1:" etc., for messages
  int64_t htb_default = -1;  // an HTB root's default class minor (-1: not HTB)
};
Result<RootQdisc> root_qdisc(const std::string &iface);

// Sets up the HTB hierarchy (root, parent class, one leaf per priority) or
// updates its rates; an error if another root qdisc is in place. True when
// it created the root.
Result<bool> htb_apply(const std::string &iface, const core::TcHtbConfig &htb);
// Removes the root qdisc if it is ours (the kernel's default comes back).
Status htb_remove(const std::string &iface);

// Whether the interface's clsact qdisc holds any filter (ingress or egress).
Result<bool> clsact_has_filters(const std::string &iface);

// The commands htb_apply runs (a tc batch), for tests and messages.
std::string htb_batch(const std::string &iface, const core::TcHtbConfig &htb, bool create);

}  // namespace bpfgate::agent::qdisc
