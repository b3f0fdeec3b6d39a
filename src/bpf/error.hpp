// The one place where libbpf's negative return codes become Errors with a
// positive errno, and where libbpf's log is routed into ours.
#pragma once

#include <string>

#include "util/result.hpp"

namespace bpfgate::bpf {

// ret is a libbpf return value: a negative errno.
Error libbpf_error(int ret, const std::string &context);

// Routes libbpf's and libxdp's messages to our logger: warnings as debug unless verbose.
void install_libbpf_logger();

// Extracts the verifier's reason and the last `tail_lines` lines of its log.
struct VerifierReport {
  std::string reason;
  std::string tail;
};
VerifierReport summarize_verifier_log(const std::string &log, int tail_lines = 20);

}  // namespace bpfgate::bpf
