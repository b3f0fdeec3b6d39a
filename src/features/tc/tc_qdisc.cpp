#include "features/tc/tc_qdisc.hpp"

#include <linux/netlink.h>
#include <linux/pkt_sched.h>
#include <net/if.h>
#include <sys/socket.h>

#include <netlink/attr.h>
#include <netlink/errno.h>
#include <netlink/netlink.h>
#include <netlink/socket.h>
#include <netlink/route/class.h>
#include <netlink/route/classifier.h>
#include <netlink/route/qdisc.h>
#include <netlink/route/qdisc/htb.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <memory>
#include <utility>

#include <fmt/format.h>

#include "util/log.hpp"

namespace bpfgate::agent::qdisc {

namespace {

// Every leaf has a distinct priority, so the quantum (DRR among leaves of one
// priority) only needs to exceed a frame.
constexpr uint32_t kQuantum = 60000;
// iproute2's defaults for an HTB class, kept so that the classes are the ones
// `tc class add` made: the MTU of the rate table, and a burst of one such frame.
constexpr uint32_t kMtu = 1600;

constexpr uint32_t handle(uint32_t minor) {
  return TC_H_MAKE(uint32_t{BG_TC_HTB_MAJOR} << 16, minor);
}

std::string handle_str(uint32_t h) {
  return TC_H_MIN(h) ? fmt::format("{:x}:{:x}", TC_H_MAJ(h) >> 16, TC_H_MIN(h))
                     : fmt::format("{:x}:", TC_H_MAJ(h) >> 16);
}

// Bytes of burst for a class at `rate` bytes/s: iproute2's default, one kMtu
// frame (plus a nanosecond at the rate). libnl turns a burst into whole
// microseconds at the rate: this is the next whole microsecond's worth, and
// half of one more against rounding down.
uint32_t burst_bytes(uint64_t rate) {
  double us = std::ceil((kMtu + static_cast<double>(rate) / 1e9) * 1e6 / static_cast<double>(rate));
  return static_cast<uint32_t>(std::ceil((us + 0.5) * static_cast<double>(rate) / 1e6));
}

// ---- libnl objects, each with an owner ----

template <auto Free>
struct Freer {
  template <class T>
  void operator()(T *p) const {
    Free(p);
  }
};
using SockPtr = std::unique_ptr<nl_sock, Freer<nl_socket_free>>;
using CachePtr = std::unique_ptr<nl_cache, Freer<nl_cache_free>>;
using QdiscPtr = std::unique_ptr<rtnl_qdisc, Freer<rtnl_qdisc_put>>;
using ClassPtr = std::unique_ptr<rtnl_class, Freer<rtnl_class_put>>;

// libnl's error codes (negative NLE_*) as errno, in this one place.
int errno_of(int nlerr) {
  switch (nlerr < 0 ? -nlerr : nlerr) {
    case NLE_EXIST:
      return EEXIST;
    case NLE_INVAL:
      return EINVAL;
    case NLE_RANGE:
      return ERANGE;
    case NLE_NOMEM:
      return ENOMEM;
    case NLE_OPNOTSUPP:
      return EOPNOTSUPP;
    case NLE_OBJ_NOTFOUND:
      return ENOENT;
    case NLE_BUSY:
      return EBUSY;
    case NLE_NOACCESS:
      return EACCES;
    case NLE_PERM:
      return EPERM;
    case NLE_NODEV:
      return ENODEV;
    case NLE_AGAIN:
      return EAGAIN;
    case NLE_INTR:
      return EINTR;
    case NLE_MSGSIZE:
      return EMSGSIZE;
    default:
      return EIO;
  }
}

// libnl's error callback: keeps the kernel's extended-ack text of an error
// (what `tc` prints as "Error: ..."), then lets libnl return the error.
int keep_extack(sockaddr_nl *, nlmsgerr *err, void *arg) {
  auto *text = static_cast<std::string *>(arg);
  text->clear();
  const auto *hdr =
      reinterpret_cast<const nlmsghdr *>(reinterpret_cast<const char *>(err) - NLMSG_HDRLEN);
  if (!(hdr->nlmsg_flags & NLM_F_ACK_TLVS))
    return NL_STOP;
  size_t payload = sizeof(*err);
  if (!(hdr->nlmsg_flags & NLM_F_CAPPED))
    payload += err->msg.nlmsg_len - NLMSG_HDRLEN;
  size_t off = NLMSG_ALIGN(NLMSG_HDRLEN + payload);
  if (off >= hdr->nlmsg_len)
    return NL_STOP;
  const auto *tlvs = reinterpret_cast<const nlattr *>(reinterpret_cast<const char *>(hdr) + off);
  if (const nlattr *msg = nla_find(tlvs, static_cast<int>(hdr->nlmsg_len - off), NLMSGERR_ATTR_MSG))
    text->assign(static_cast<const char *>(nla_data(msg)),
                 strnlen(static_cast<const char *>(nla_data(msg)), nla_len(msg)));
  return NL_STOP;
}

// A route netlink socket of this process's network namespace, and the
// interface (by index) it works on.
class Rtnl {
 public:
  static Result<Rtnl> open(const std::string &iface) {
    unsigned ifindex = if_nametoindex(iface.c_str());
    if (ifindex == 0)
      return make_error(ENODEV, "no interface {} in this network namespace", iface);
    Rtnl nl(SockPtr(nl_socket_alloc()), static_cast<int>(ifindex));
    if (!nl.sock_)
      return make_error(ENOMEM, "allocate a netlink socket");
    if (int err = nl_connect(nl.sock(), NETLINK_ROUTE); err < 0)
      return nl.error(err, "open a route netlink socket");
    // Best effort: without them, errors come without the kernel's text.
    int one = 1, fd = nl_socket_get_fd(nl.sock());
    (void)setsockopt(fd, SOL_NETLINK, NETLINK_EXT_ACK, &one, sizeof(one));
    (void)setsockopt(fd, SOL_NETLINK, NETLINK_CAP_ACK, &one, sizeof(one));
    (void)nl_socket_modify_err_cb(nl.sock(), NL_CB_CUSTOM, keep_extack, nl.extack_.get());
    return nl;
  }
  nl_sock *sock() const { return sock_.get(); }
  int ifindex() const { return ifindex_; }
  // "WHAT: libnl's text (kernel: its message)", errno from the libnl code.
  Error error(int nlerr, const std::string &what) const {
    std::string text = nl_geterror(nlerr);
    if (!extack_->empty())
      text += " (kernel: " + *extack_ + ")";
    extack_->clear();
    return Error(errno_of(nlerr), what + ": " + text);
  }

 private:
  Rtnl(SockPtr sock, int ifindex)
      : sock_(std::move(sock)), ifindex_(ifindex), extack_(std::make_unique<std::string>()) {}
  SockPtr sock_;
  int ifindex_;
  std::unique_ptr<std::string> extack_;  // the callback's, at a fixed address
};

Result<RootQdisc> read_root(const Rtnl &nl) {
  nl_cache *raw = nullptr;
  if (int err = rtnl_qdisc_alloc_cache(nl.sock(), &raw); err < 0)
    return nl.error(err, "dump the qdiscs");
  CachePtr cache(raw);
  QdiscPtr q(rtnl_qdisc_get_by_parent(cache.get(), nl.ifindex(), TC_H_ROOT));
  RootQdisc r;
  if (!q)
    return r;
  const char *k = rtnl_tc_get_kind(TC_CAST(q.get()));
  std::string kind = k ? k : "";
  uint32_t h = rtnl_tc_get_handle(TC_CAST(q.get()));
  r.description = kind + " " + handle_str(h);
  if (kind == "htb")
    r.htb_default = rtnl_htb_get_defcls(q.get());
  if (h == 0)
    r.kind = RootKind::kDefault;
  else if (kind == "htb" && h == handle(0))
    r.kind = RootKind::kOurs;
  else
    r.kind = RootKind::kForeign;
  return r;
}

// A qdisc or class object on the interface: handle, parent, kind htb.
template <class Ptr>
int init_htb(const Rtnl &nl, Ptr &obj, uint32_t parent, uint32_t h) {
  if (!obj)
    return -NLE_NOMEM;
  rtnl_tc *tc = TC_CAST(obj.get());
  rtnl_tc_set_ifindex(tc, nl.ifindex());
  rtnl_tc_set_parent(tc, parent);
  rtnl_tc_set_handle(tc, h);
  return rtnl_tc_set_kind(tc, "htb");
}

Status add_root(const Rtnl &nl, uint32_t default_minor) {
  QdiscPtr q(rtnl_qdisc_alloc());
  int err = init_htb(nl, q, TC_H_ROOT, handle(0));
  if (err >= 0)
    err = rtnl_htb_set_defcls(q.get(), default_minor);
  if (err >= 0)
    err = rtnl_qdisc_add(nl.sock(), q.get(), NLM_F_CREATE | NLM_F_EXCL);
  if (err < 0)
    return nl.error(err, fmt::format("add the root qdisc (htb {} default {:x})",
                                     handle_str(handle(0)), default_minor));
  return {};
}

Status delete_root(const Rtnl &nl) {
  QdiscPtr q(rtnl_qdisc_alloc());
  int err = init_htb(nl, q, TC_H_ROOT, handle(0));
  if (err >= 0)
    err = rtnl_qdisc_delete(nl.sock(), q.get());
  if (err < 0)
    return nl.error(err, fmt::format("remove the root qdisc (htb {})", handle_str(handle(0))));
  return {};
}

// Creates the class or changes it (NLM_F_CREATE without NLM_F_EXCL).
Status put_class(const Rtnl &nl, const HtbClass &c) {
  ClassPtr cls(rtnl_class_alloc());
  int err = init_htb(nl, cls, c.parent, c.classid);
  if (err >= 0) {
    uint64_t rate = c.rate_bps / 8, ceil = c.ceil_bps / 8;  // libnl counts bytes
    rtnl_tc_set_mtu(TC_CAST(cls.get()), kMtu);
    int errs[] = {rtnl_htb_set_rate64(cls.get(), rate),
                  rtnl_htb_set_ceil64(cls.get(), ceil),
                  rtnl_htb_set_rbuffer(cls.get(), burst_bytes(rate)),
                  rtnl_htb_set_cbuffer(cls.get(), burst_bytes(ceil)),
                  rtnl_htb_set_prio(cls.get(), c.prio),
                  rtnl_htb_set_quantum(cls.get(), c.quantum)};
    err = *std::min_element(std::begin(errs), std::end(errs));
  }
  if (err >= 0)
    err = rtnl_class_add(nl.sock(), cls.get(), NLM_F_CREATE);
  if (err < 0)
    return nl.error(err, fmt::format("set HTB class {} (rate {}bit ceil {}bit prio {})",
                                     handle_str(c.classid), c.rate_bps, c.ceil_bps, c.prio));
  return {};
}

// The root (when `create`) and every class.
Status build(const Rtnl &nl, const core::TcHtbConfig &htb, bool create) {
  if (create)
    if (auto st = add_root(nl, htb_default_minor(htb)); !st)
      return st;
  for (const auto &c : htb_classes(htb))
    if (auto st = put_class(nl, c); !st)
      return st;
  return {};
}

}  // namespace

Result<RootQdisc> root_qdisc(const std::string &iface) {
  auto nl = Rtnl::open(iface);
  if (!nl)
    return nl.error().context("read the root qdisc of " + iface);
  auto root = read_root(*nl);
  if (!root)
    return root.error().context("read the root qdisc of " + iface);
  return root;
}

HtbAction htb_action(const RootQdisc &root, const core::TcHtbConfig &htb) {
  switch (root.kind) {
    case RootKind::kDefault:
      return HtbAction::kCreate;
    case RootKind::kOurs:
      return root.htb_default == htb_default_minor(htb) ? HtbAction::kUpdate : HtbAction::kRecreate;
    case RootKind::kForeign:
      break;
  }
  return HtbAction::kRefuse;
}

uint32_t htb_default_minor(const core::TcHtbConfig &htb) {
  return BG_TC_HTB_MINOR_BASE + htb.default_priority;
}

// Each leaf is guaranteed an eighth of the link and may borrow up to all of
// it; a leaf under its guarantee is served first, lower priority first.
std::vector<HtbClass> htb_classes(const core::TcHtbConfig &htb) {
  uint64_t leaf = std::max<uint64_t>(htb.rate_bps / BG_TC_PRIORITIES, core::kTcRateMinBps);
  std::vector<HtbClass> v;
  v.push_back({.parent = handle(0),
               .classid = handle(1),
               .rate_bps = htb.rate_bps,
               .ceil_bps = htb.rate_bps,
               .prio = 0,
               .quantum = kQuantum});
  for (uint32_t p = 0; p < BG_TC_PRIORITIES; p++)
    v.push_back({.parent = handle(1),
                 .classid = handle(BG_TC_HTB_MINOR_BASE + p),
                 .rate_bps = leaf,
                 .ceil_bps = htb.rate_bps,
                 .prio = p,
                 .quantum = kQuantum});
  return v;
}

Result<bool> htb_apply(const std::string &iface, const core::TcHtbConfig &htb) {
  auto nl = Rtnl::open(iface);
  if (!nl)
    return nl.error().context("set up HTB on " + iface);
  auto root = read_root(*nl);
  if (!root)
    return root.error().context("set up HTB on " + iface);
  HtbAction action = htb_action(*root, htb);
  if (action == HtbAction::kRefuse)
    return make_error(EBUSY,
                      "{} already has a root qdisc ({}) that bpfgate did not set up; remove it "
                      "(`tc qdisc del dev {} root`) or leave tc.htb out of the config",
                      iface, root->description, iface);
  if (action == HtbAction::kRecreate) {
    // The default class is fixed when an HTB root is made: a new one is made,
    // and what was queued under the old one is dropped.
    log::info("{}: HTB default priority changes to {}: the root qdisc is re-created", iface,
              htb.default_priority);
    if (auto st = delete_root(*nl); !st)
      return st.error().context("re-create HTB on " + iface);
  }
  bool create = action != HtbAction::kUpdate;
  if (auto st = build(*nl, htb, create); !st) {
    if (create)
      (void)delete_root(*nl);  // no half-made root stays
    return st.error().context("set up HTB on " + iface);
  }
  return create;
}

Status htb_remove(const std::string &iface) {
  auto nl = Rtnl::open(iface);
  if (!nl)
    return nl.error().context("remove the HTB root of " + iface);
  auto root = read_root(*nl);
  if (!root)
    return root.error().context("remove the HTB root of " + iface);
  if (root->kind != RootKind::kOurs)
    return {};
  if (auto st = delete_root(*nl); !st)
    return st.error().context(iface);
  return {};
}

Result<bool> clsact_has_filters(const std::string &iface) {
  auto nl = Rtnl::open(iface);
  if (!nl)
    return nl.error().context("read the clsact filters of " + iface);
  const std::pair<const char *, uint32_t> hooks[] = {
      {"ingress", TC_H_MAKE(TC_H_CLSACT, TC_H_MIN_INGRESS)},
      {"egress", TC_H_MAKE(TC_H_CLSACT, TC_H_MIN_EGRESS)}};
  for (const auto &[dir, parent] : hooks) {
    nl_cache *raw = nullptr;
    if (int err = rtnl_cls_alloc_cache(nl->sock(), nl->ifindex(), parent, &raw); err < 0)
      return nl->error(err, fmt::format("dump the {} filters of {}", dir, iface));
    CachePtr cache(raw);
    if (nl_cache_nitems(cache.get()) > 0)
      return true;
  }
  return false;
}

}  // namespace bpfgate::agent::qdisc
