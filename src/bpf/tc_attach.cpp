#include "bpf/tc_attach.hpp"

#include <bpf/libbpf.h>

#include <cerrno>
#include <utility>

#include "bpf/error.hpp"

namespace bpfgate::bpf {

namespace {
bpf_tc_attach_point point_of(TcDirection d) {
  return d == TcDirection::kIngress ? BPF_TC_INGRESS : BPF_TC_EGRESS;
}
}  // namespace

std::string to_string(TcDirection d) {
  return d == TcDirection::kIngress ? "ingress" : "egress";
}

Result<bool> clsact_create(int ifindex, const std::string &iface) {
  LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = ifindex, .attach_point = BPF_TC_INGRESS);
  int err = bpf_tc_hook_create(&hook);
  if (err == -EEXIST)
    return false;
  if (err)
    return libbpf_error(err, fmt::format("create the clsact qdisc on {} (`tc qdisc add dev {} "
                                         "clsact` shows what the kernel says)",
                                         iface, iface));
  return true;
}

Status clsact_destroy(int ifindex) {
  LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = ifindex,
              .attach_point = static_cast<bpf_tc_attach_point>(BPF_TC_INGRESS | BPF_TC_EGRESS));
  int err = bpf_tc_hook_destroy(&hook);
  if (err && err != -ENOENT && err != -EINVAL && err != -ENODEV)
    return libbpf_error(err, "remove the clsact qdisc");
  return {};
}

Result<TcFilter> TcFilter::attach(int prog_fd, int ifindex, const std::string &iface,
                                  TcDirection dir, uint32_t priority) {
  if (auto made = clsact_create(ifindex, iface); !made)
    return made.error();
  LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = ifindex, .attach_point = point_of(dir));
  LIBBPF_OPTS(bpf_tc_opts, opts, .prog_fd = prog_fd, .flags = BPF_TC_F_REPLACE, .handle = priority,
              .priority = priority);
  if (int err = bpf_tc_attach(&hook, &opts))
    return libbpf_error(err, fmt::format("attach the tc {} program to {} (direct-action on "
                                         "clsact, priority {:#x})",
                                         to_string(dir), iface, priority));
  TcFilter f;
  f.ifindex_ = ifindex;
  f.iface_ = iface;
  f.dir_ = dir;
  f.priority_ = priority;
  f.prog_id_ = opts.prog_id;
  return f;
}

TcFilter::TcFilter(TcFilter &&o) noexcept
    : ifindex_(std::exchange(o.ifindex_, 0)),
      iface_(std::move(o.iface_)),
      dir_(o.dir_),
      priority_(o.priority_),
      prog_id_(o.prog_id_) {}

TcFilter &TcFilter::operator=(TcFilter &&o) noexcept {
  if (this != &o) {
    (void)detach();
    ifindex_ = std::exchange(o.ifindex_, 0);
    iface_ = std::move(o.iface_);
    dir_ = o.dir_;
    priority_ = o.priority_;
    prog_id_ = o.prog_id_;
  }
  return *this;
}

TcFilter::~TcFilter() {
  (void)detach();
}

Status TcFilter::detach() {
  if (!ifindex_)
    return {};
  int idx = std::exchange(ifindex_, 0);
  return tc_detach(idx, dir_, priority_);
}

Status tc_detach(int ifindex, TcDirection dir, uint32_t priority) {
  LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = ifindex, .attach_point = point_of(dir));
  LIBBPF_OPTS(bpf_tc_opts, opts, .handle = priority, .priority = priority);
  int err = bpf_tc_detach(&hook, &opts);
  // Gone already: the interface went away, or someone removed the qdisc.
  if (err && err != -ENOENT && err != -ENODEV && err != -EINVAL)
    return libbpf_error(err, fmt::format("detach the tc {} program", to_string(dir)));
  return {};
}

Result<uint32_t> tc_query(int ifindex, TcDirection dir, uint32_t priority) {
  LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = ifindex, .attach_point = point_of(dir));
  LIBBPF_OPTS(bpf_tc_opts, opts, .handle = priority, .priority = priority);
  int err = bpf_tc_query(&hook, &opts);
  if (err == -ENOENT || err == -EINVAL)
    return 0u;
  if (err)
    return libbpf_error(err, "query tc filters");
  return opts.prog_id;
}

}  // namespace bpfgate::bpf
