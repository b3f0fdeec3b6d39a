#include "bpf/error.hpp"

#include <gtest/gtest.h>

namespace bpfgate::bpf {
namespace {

TEST(VerifierLog, ReasonIsTheLastMeaningfulLine) {
  std::string log =
      "func#0 @0\n0: R1=ctx() R10=fp0\n0: (61) r2 = *(u32 *)(r1 +0)\n"
      "1: (71) r0 = *(u8 *)(r2 +20)\ninvalid access to packet, off=20 size=1, R2(id=0,off=20,r=0)\n"
      "processed 2 insns (limit 1000000) max_states_per_insn 0 total_states 0\n";
  auto r = summarize_verifier_log(log, 3);
  EXPECT_EQ(r.reason, "invalid access to packet, off=20 size=1, R2(id=0,off=20,r=0)");
  auto two =
      summarize_verifier_log("1: (71) r1 = *(u8 *)(r1 +20)\nbad access\nR1 offset is outside\n");
  EXPECT_EQ(two.reason, "bad access; R1 offset is outside");
  EXPECT_EQ(r.tail.find("0: R1"), std::string::npos);  // only the last 3 lines
  EXPECT_NE(r.tail.find("r0 = *(u8 *)"), std::string::npos);
}

TEST(VerifierLog, LibbpfErrorIsPositiveErrnoWithContext) {
  Error e = libbpf_error(-EPERM, "load thing");
  EXPECT_EQ(e.err(), EPERM);
  EXPECT_NE(e.what().find("load thing"), std::string::npos);
}

}  // namespace
}  // namespace bpfgate::bpf
