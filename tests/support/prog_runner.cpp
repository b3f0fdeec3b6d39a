#include "support/prog_runner.hpp"

#include <bpf/bpf.h>

#include "bpf/error.hpp"

namespace bpfgate::test {

Result<RunResult> ProgRunner::run(const std::vector<uint8_t> &frame, uint32_t repeat) const {
  RunResult r;
  r.data_out.resize(frame.size() + 256);
  LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = frame.data(), .data_out = r.data_out.data(),
              .data_size_in = static_cast<uint32_t>(frame.size()),
              .data_size_out = static_cast<uint32_t>(r.data_out.size()),
              .repeat = static_cast<int>(repeat));
  int err = bpf_prog_test_run_opts(prog_fd_, &opts);
  if (err)
    return bpf::libbpf_error(err, "bpf_prog_test_run_opts");
  r.retval = opts.retval;
  r.duration_ns = opts.duration;
  r.data_out.resize(opts.data_size_out);
  return r;
}

}  // namespace bpfgate::test
