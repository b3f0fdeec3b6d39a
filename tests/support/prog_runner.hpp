// ProgRunner: runs a loaded BPF program on a crafted frame through
// bpf_prog_test_run_opts, always with room for the output frame.
#pragma once

#include <cstdint>
#include <vector>

#include "util/result.hpp"

namespace bpfgate::test {

struct RunResult {
  uint32_t retval = 0;            // the program's return value (XDP_PASS, XDP_DROP, ...)
  uint32_t duration_ns = 0;       // average per repeat, as the kernel measured it
  std::vector<uint8_t> data_out;  // the frame after the program ran
};

class ProgRunner {
 public:
  explicit ProgRunner(int prog_fd) : prog_fd_(prog_fd) {}
  Result<RunResult> run(const std::vector<uint8_t> &frame, uint32_t repeat = 1) const;

 private:
  int prog_fd_;
};

}  // namespace bpfgate::test
