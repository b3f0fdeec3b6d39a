// A program the kernel refuses is reported with the verifier's reason and the
// tail of its log, through the same Skeleton<> the production objects use.
#include <gtest/gtest.h>

#include "bad_prog.skel.h"
#include "bpf/object.hpp"
#include "support/system.hpp"

namespace bpfgate::test {
namespace {

using BadSkel = bpf::Skeleton<
    bpf::SkeletonTraits<bad_prog, bad_prog__open_opts, bad_prog__load, bad_prog__destroy>>;

TEST(VerifierReport, RefusalCarriesReasonAndLogTail) {
  auto skel = BadSkel::open("bad_prog");
  ASSERT_TRUE(skel.ok()) << skel.error().what();
  auto st = skel->load();
  ASSERT_FALSE(st.ok()) << "the verifier accepted an unchecked packet read";
  const std::string msg = st.error().what();
  EXPECT_EQ(st.error().err(), EACCES) << msg;
  EXPECT_TRUE(contains(msg, "load BPF object bad_prog")) << msg;
  EXPECT_TRUE(contains(msg, "the kernel's verifier refused it: invalid access to packet")) << msg;
  EXPECT_TRUE(contains(msg, "--- last lines of the verifier log ---")) << msg;
  EXPECT_TRUE(contains(msg, "= *(u8 *)(r")) << msg;  // the offending instruction is in the tail
}

}  // namespace
}  // namespace bpfgate::test
