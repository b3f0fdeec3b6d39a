// PinSet: the objects a feature pins, listed once per feature, and the four
// things done with them: made from a loaded object, pinned, adopted from the
// pins (by any process, after a restart or an upgrade) and removed. Paths
// follow the pin rules of bpf/pin.hpp; the pin directory's lock is DirLock.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "bpf/fd.hpp"
#include "bpf/pin.hpp"
#include "util/result.hpp"

struct bpf_object;

namespace bpfgate::bpf {

// One pinned object: its file in the pin directory and, for maps and
// programs, its name in the BPF object. A map's key and value sizes, when
// given, are checked on adoption (a pin of another bpfgate version).
struct PinSpec {
  enum Kind { kMap, kProg, kLink };
  Kind kind;
  std::string pin;
  // Empty for a link (made by attaching) and for an object the feature pins
  // by other means (e.g. a datapath class of its own): from_object skips it.
  std::string object;
  uint32_t key_size = 0, value_size = 0;
  bool optional = false;  // adopting: absent is fine (e.g. a link not made yet)
};

template <class K, class V>
PinSpec map_pin(std::string pin, std::string object) {
  return {PinSpec::kMap, std::move(pin), std::move(object), sizeof(K), sizeof(V)};
}
inline PinSpec map_pin(std::string pin, std::string object) {
  return {PinSpec::kMap, std::move(pin), std::move(object)};
}
inline PinSpec prog_pin(std::string pin, std::string object) {
  return {PinSpec::kProg, std::move(pin), std::move(object)};
}
inline PinSpec link_pin(std::string pin) {
  return {PinSpec::kLink, std::move(pin), {}, 0, 0, true};
}

class PinSet {
 public:
  // Nothing held yet: for remove(), path() and names().
  PinSet(std::string dir, std::vector<PinSpec> specs);
  // Holds a duplicate of the fd of every map and program of `specs` from a
  // loaded object (links, and objects without a name, are held once made:
  // hold()).
  static Result<PinSet> from_object(std::string dir, std::vector<PinSpec> specs,
                                    const bpf_object *obj);
  // Opens every pin under `dir` (refusing one bpfgate did not make, see
  // check_pin_owner); an absent optional pin is left out.
  static Result<PinSet> adopt(std::string dir, std::vector<PinSpec> specs);

  // Makes the directory (0700) and pins what is held (0600), in the order of
  // the list; on failure removes every pin of the list.
  Status pin() const;
  // Holds one more object (a link made after pin()) and pins it.
  Status pin(std::string_view name, UniqueFd fd);
  // Unpins every name of the list (absent ones are fine) and removes the
  // directory when that leaves it empty.
  Status remove() const;

  // The held fd of a pin (-1: none), and taking it over.
  int fd(std::string_view name) const;
  UniqueFd take(std::string_view name);
  void hold(std::string_view name, UniqueFd fd);
  bool holds(std::string_view name) const { return fd(name) >= 0; }

  const std::string &dir() const { return dir_; }
  void set_dir(std::string dir) { dir_ = std::move(dir); }
  // The pin directory's lock (see DirLock), making the directory when `create`.
  Result<DirLock> lock(bool create = false) const { return DirLock::acquire(dir_, create); }
  std::string path(std::string_view name) const;
  std::vector<std::string> names() const;
  const std::vector<PinSpec> &specs() const { return specs_; }
  // A pin's map or program name in the BPF object.
  const std::string &object(std::string_view name) const;

 private:
  size_t index(std::string_view name) const;
  std::string dir_;
  std::vector<PinSpec> specs_;
  std::vector<UniqueFd> fds_;  // by the index in specs_
};

}  // namespace bpfgate::bpf
