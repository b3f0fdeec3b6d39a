// The datapath's parser run in the kernel: tests/bpf/parse_probe.bpf.c loaded
// once, each frame run through bpf_prog_test_run_opts, bg_parse's status and
// bg_packet read back from its map. Needs root (CAP_BPF, CAP_NET_ADMIN).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>

#include "support/reference_parse.hpp"

struct parse_probe;

namespace bpfgate::test {

class ParseProbe {
 public:
  // Loads the probe; on failure (not root, no BPF) `error()` says why.
  ParseProbe();
  ~ParseProbe();
  ParseProbe(const ParseProbe &) = delete;
  ParseProbe &operator=(const ParseProbe &) = delete;

  bool loaded() const { return skel_ != nullptr; }
  const std::string &error() const { return error_; }

  // What bg_parse makes of `frame`; nullopt for a frame the kernel does not
  // run a program on (shorter than an Ethernet header, or longer than a page
  // less XDP's headroom), with `error()` saying why.
  std::optional<ParseOutcome> run(std::span<const uint8_t> frame);

 private:
  ::parse_probe *skel_ = nullptr;
  std::string error_;
};

}  // namespace bpfgate::test
