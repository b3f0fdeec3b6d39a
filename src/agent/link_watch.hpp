// Link events of this network namespace (rtnetlink's RTNLGRP_LINK): the
// agent's loop learns that an interface appeared, went or changed, and then
// looks again at the interfaces its config names (agent/daemon.cpp). Nothing
// is taken from the messages but that something changed: the state is read
// back from the kernel, so a lost message (a full socket buffer) costs
// nothing but a look.
#pragma once

#include "bpf/fd.hpp"
#include "util/result.hpp"

namespace bpfgate::agent {

class LinkWatch {
 public:
  // A non-blocking NETLINK_ROUTE socket subscribed to link events.
  static Result<LinkWatch> open();
  int fd() const { return fd_.get(); }
  // Reads every waiting message; true when one of them was a link added,
  // changed or removed, or when some were lost (ENOBUFS).
  bool drain();

 private:
  explicit LinkWatch(bpf::UniqueFd fd) : fd_(std::move(fd)) {}
  bpf::UniqueFd fd_;
};

}  // namespace bpfgate::agent
