// libFuzzer target, differential: each input is an Ethernet frame, run
// through the datapath's parser in the kernel (tests/bpf/parse_probe.bpf.c
// through bpf_prog_test_run_opts; needs root) and through the reference
// parser (tests/support/reference_parse.hpp); any difference in the status
// or the bg_packet aborts with both side by side. Frames are cut at 1600
// bytes (a page, less XDP's headroom, bounds what the kernel runs).
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <span>
#include <string>

#include "support/parse_probe.hpp"
#include "support/reference_parse.hpp"

namespace {

bpfgate::test::ParseProbe *probe;

}  // namespace

extern "C" int LLVMFuzzerInitialize(int *, char ***) {
  probe = new bpfgate::test::ParseProbe();
  if (!probe->loaded()) {
    std::fprintf(stderr, "fuzz_packet: %s (run as root)\n", probe->error().c_str());
    std::exit(1);
  }
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  std::span<const uint8_t> frame(data, size < 1600 ? size : 1600);
  auto ref = bpfgate::test::reference_parse(frame);
  if (frame.size() < 14) {  // the kernel runs no program on it
    if (ref.status != BG_PARSE_BAD_L2) {
      std::fprintf(stderr, "reference: a %zu-byte frame is not BAD_L2\n", frame.size());
      std::abort();
    }
    return 0;
  }
  auto bpf = probe->run(frame);
  if (!bpf) {
    std::fprintf(stderr, "fuzz_packet: %s\n", probe->error().c_str());
    std::abort();
  }
  if (!(*bpf == ref)) {
    std::fprintf(stderr, "the kernel's parser and the reference differ on this %zu-byte frame:\n%s",
                 frame.size(), bpfgate::test::describe_difference(*bpf, ref).c_str());
    std::abort();
  }
  return 0;
}
