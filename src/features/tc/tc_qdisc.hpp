// The qdiscs around the tc datapath, over rtnetlink (Debian's libnl-route-3)
// on a socket of the caller's network namespace: the HTB hierarchy that
// priorities map to, and whether clsact still holds filters. No subprocess.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "features/tc/tc_config.hpp"
#include "util/result.hpp"

namespace bpfgate::agent::qdisc {

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

// What htb_apply does with the root it finds.
enum class HtbAction {
  kCreate,    // no root of ours: make it and its classes
  kUpdate,    // ours with the same default class: change the classes only
  kRecreate,  // ours with another default (HTB cannot change it): remove, then create
  kRefuse,    // someone else's root
};
HtbAction htb_action(const RootQdisc &root, const core::TcHtbConfig &htb);

// One HTB class as bpfgate sets it up; handles are major:minor (TC_H_MAKE).
struct HtbClass {
  uint32_t parent = 0;
  uint32_t classid = 0;
  uint64_t rate_bps = 0;  // bits/s, as in the config
  uint64_t ceil_bps = 0;
  uint32_t prio = 0;
  uint32_t quantum = 0;
};
// The root's default class minor for the config.
uint32_t htb_default_minor(const core::TcHtbConfig &htb);
// The parent class :1 first, then one leaf per priority.
std::vector<HtbClass> htb_classes(const core::TcHtbConfig &htb);

// Sets up the HTB hierarchy (root, parent class, one leaf per priority) or
// updates its rates; an error if another root qdisc is in place. True when
// it created the root.
Result<bool> htb_apply(const std::string &iface, const core::TcHtbConfig &htb);
// Removes the root qdisc if it is ours (the kernel's default comes back).
Status htb_remove(const std::string &iface);

// Whether the interface's clsact qdisc holds any filter (ingress or egress).
Result<bool> clsact_has_filters(const std::string &iface);

}  // namespace bpfgate::agent::qdisc
