// IterLink: a move-only owner of a BPF iterator's link (SEC("iter/...")),
// attached to a map or to what the program's target walks, and run once per
// read_all(): a new iterator fd read to its end.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "util/result.hpp"

struct bpf_link;
struct bpf_program;

namespace bpfgate::bpf {

class IterLink {
 public:
  // map_fd < 0: no map (iter/tcp and the like); `what` names it in errors.
  static Result<IterLink> attach(const bpf_program *prog, int map_fd, const std::string &what);
  // Runs the iterator once; returns every byte the program wrote.
  Result<std::vector<uint8_t>> read_all() const;

 private:
  struct Deleter {
    void operator()(bpf_link *l) const;
  };
  IterLink(bpf_link *l, std::string what) : link_(l), what_(std::move(what)) {}
  std::unique_ptr<bpf_link, Deleter> link_;
  std::string what_;
};

}  // namespace bpfgate::bpf
