// Skeleton<T>: a move-only owner of a bpftool-generated skeleton, with the
// open -> configure -> load lifecycle and the verifier log kept for errors.
#pragma once

#include <bpf/libbpf.h>

#include <memory>
#include <string>
#include <utility>

#include "bpf/error.hpp"
#include "util/result.hpp"

namespace bpfgate::bpf {

// Describes one generated skeleton: its struct and its three entry points.
template <class Obj, auto OpenFn, auto LoadFn, auto DestroyFn>
struct SkeletonTraits {
  using Type = Obj;
  static Obj *open(const bpf_object_open_opts *o) { return OpenFn(o); }
  static int load(Obj *s) { return LoadFn(s); }
  static void destroy(Obj *s) { DestroyFn(s); }
};

// Turns a failed load into an Error naming the verifier's reason and its tail.
Error load_error(int ret, const std::string &name, const std::string &log);

inline constexpr size_t kVerifierLogSize = 4 << 20;

template <class Traits>
class Skeleton {
 public:
  using Obj = typename Traits::Type;

  static Result<Skeleton> open(const std::string &name) {
    Skeleton s;
    s.name_ = name;
    s.log_ = std::make_unique<char[]>(kVerifierLogSize);
    s.log_[0] = '\0';
    LIBBPF_OPTS(bpf_object_open_opts, opts, .object_name = nullptr, .kernel_log_buf = s.log_.get(),
                .kernel_log_size = kVerifierLogSize, .kernel_log_level = 0);
    s.obj_ = Traits::open(&opts);
    if (!s.obj_)
      return libbpf_error(-errno, "open BPF object " + name);
    return s;
  }

  // Loads every program; a refusal by the verifier carries its reason.
  Status load() {
    int err = Traits::load(obj_);
    if (err)
      return load_error(err, name_, log_.get());
    log_.reset();  // the log is only needed for errors
    return {};
  }

  Skeleton(Skeleton &&o) noexcept
      : obj_(std::exchange(o.obj_, nullptr)), log_(std::move(o.log_)), name_(std::move(o.name_)) {}
  Skeleton &operator=(Skeleton &&o) noexcept {
    if (this != &o) {
      reset();
      obj_ = std::exchange(o.obj_, nullptr);
      log_ = std::move(o.log_);
      name_ = std::move(o.name_);
    }
    return *this;
  }
  Skeleton(const Skeleton &) = delete;
  Skeleton &operator=(const Skeleton &) = delete;
  ~Skeleton() { reset(); }

  Obj *get() const { return obj_; }
  Obj *operator->() const { return obj_; }

 private:
  Skeleton() = default;
  void reset() {
    if (obj_)
      Traits::destroy(obj_);
    obj_ = nullptr;
  }

  Obj *obj_ = nullptr;
  std::unique_ptr<char[]> log_;
  std::string name_;
};

}  // namespace bpfgate::bpf
