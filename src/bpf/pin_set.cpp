#include "bpf/pin_set.hpp"

#include <bpf/libbpf.h>

#include <cerrno>
#include <cassert>

#include "bpf/map.hpp"
#include "bpf/pin.hpp"

namespace bpfgate::bpf {

namespace {

int object_fd(const bpf_object *obj, const PinSpec &s) {
  if (s.kind == PinSpec::kMap) {
    const bpf_map *m = bpf_object__find_map_by_name(obj, s.object.c_str());
    return m ? bpf_map__fd(m) : -1;
  }
  const bpf_program *p = bpf_object__find_program_by_name(obj, s.object.c_str());
  return p ? bpf_program__fd(p) : -1;
}

Status check_sizes(int fd, const std::string &path, const PinSpec &s) {
  if (s.kind != PinSpec::kMap || !s.key_size)
    return {};
  return check_map_sizes(fd, path, s.key_size, s.value_size);
}

}  // namespace

PinSet::PinSet(std::string dir, std::vector<PinSpec> specs)
    : dir_(std::move(dir)), specs_(std::move(specs)), fds_(specs_.size()) {}

Result<PinSet> PinSet::from_object(std::string dir, std::vector<PinSpec> specs,
                                   const bpf_object *obj) {
  PinSet set(std::move(dir), std::move(specs));
  for (size_t i = 0; i < set.specs_.size(); i++) {
    const PinSpec &s = set.specs_[i];
    if (s.kind == PinSpec::kLink || s.object.empty())
      continue;
    auto fd = dup_fd(object_fd(obj, s), s.object);
    if (!fd)
      return fd.error();
    set.fds_[i] = std::move(*fd);
  }
  return set;
}

Result<PinSet> PinSet::adopt(std::string dir, std::vector<PinSpec> specs) {
  PinSet set(std::move(dir), std::move(specs));
  for (size_t i = 0; i < set.specs_.size(); i++) {
    const PinSpec &s = set.specs_[i];
    std::string p = set.path(s.pin);
    if (s.optional && !exists(p))
      continue;
    auto fd = open_pinned(p);
    if (!fd)
      return fd.error();
    if (auto st = check_sizes(fd->get(), p, s); !st)
      return st.error();
    set.fds_[i] = std::move(*fd);
  }
  return set;
}

Status PinSet::pin() const {
  if (auto st = make_private_dir(dir_); !st)
    return st;
  for (size_t i = 0; i < specs_.size(); i++) {
    if (!fds_[i].valid())
      continue;
    if (auto st = pin_fd(fds_[i].get(), path(specs_[i].pin)); !st) {
      (void)remove();
      return st;
    }
  }
  return {};
}

Status PinSet::pin(std::string_view name, UniqueFd fd) {
  hold(name, std::move(fd));
  return pin_fd(this->fd(name), path(name));
}

Status PinSet::remove() const {
  for (const auto &s : specs_)
    if (auto st = unpin(path(s.pin)); !st)
      return st;
  return remove_dir_if_empty(dir_);
}

size_t PinSet::index(std::string_view name) const {
  for (size_t i = 0; i < specs_.size(); i++)
    if (specs_[i].pin == name)
      return i;
  // A name not in the feature's list is a bug in the feature, not bad input.
  assert(!"no such pin in the feature's list");
  return specs_.size();
}

int PinSet::fd(std::string_view name) const {
  size_t i = index(name);
  return i < fds_.size() ? fds_[i].get() : -1;
}

UniqueFd PinSet::take(std::string_view name) {
  size_t i = index(name);
  return i < fds_.size() ? std::move(fds_[i]) : UniqueFd();
}

void PinSet::hold(std::string_view name, UniqueFd fd) {
  if (size_t i = index(name); i < fds_.size())
    fds_[i] = std::move(fd);
}

std::string PinSet::path(std::string_view name) const {
  return pin_path(dir_, name);
}

const std::string &PinSet::object(std::string_view name) const {
  static const std::string kNone;
  size_t i = index(name);
  return i < specs_.size() ? specs_[i].object : kNone;
}

std::vector<std::string> PinSet::names() const {
  std::vector<std::string> out;
  for (const auto &s : specs_)
    out.push_back(s.pin);
  return out;
}

}  // namespace bpfgate::bpf
