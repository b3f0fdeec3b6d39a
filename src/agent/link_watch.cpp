#include "agent/link_watch.hpp"

#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <sys/socket.h>

#include <cerrno>

namespace bpfgate::agent {

Result<LinkWatch> LinkWatch::open() {
  bpf::UniqueFd fd(socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC | SOCK_NONBLOCK, NETLINK_ROUTE));
  if (!fd.valid())
    return Error(errno, "open a netlink socket for link events");
  sockaddr_nl sa{};
  sa.nl_family = AF_NETLINK;
  sa.nl_groups = RTMGRP_LINK;
  if (bind(fd.get(), reinterpret_cast<sockaddr *>(&sa), sizeof(sa)) != 0)
    return Error(errno, "subscribe to link events (RTNLGRP_LINK)");
  return LinkWatch(std::move(fd));
}

bool LinkWatch::drain() {
  bool changed = false;
  alignas(nlmsghdr) char buf[16384];
  for (int i = 0; i < 1024; i++) {  // bounded: a storm of events cannot hold up the loop
    ssize_t n = recv(fd_.get(), buf, sizeof(buf), MSG_DONTWAIT);
    if (n < 0) {
      if (errno == ENOBUFS) {  // messages lost: look at everything again
        changed = true;
        continue;
      }
      if (errno == EINTR)
        continue;
      break;  // EAGAIN: all read
    }
    if (n == 0)
      break;
    int left = static_cast<int>(n);
    for (auto *h = reinterpret_cast<nlmsghdr *>(buf); NLMSG_OK(h, left); h = NLMSG_NEXT(h, left))
      if (h->nlmsg_type == RTM_NEWLINK || h->nlmsg_type == RTM_DELLINK)
        changed = true;
  }
  return changed;
}

}  // namespace bpfgate::agent
