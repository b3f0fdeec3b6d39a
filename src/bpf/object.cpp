#include "bpf/object.hpp"

namespace bpfgate::bpf {

Error load_error(int ret, const std::string &name, const std::string &log) {
  Error base = libbpf_error(ret, "load BPF object " + name);
  if (log.empty())
    return base;
  VerifierReport r = summarize_verifier_log(log);
  return Error(base.err(), fmt::format("{}: the kernel's verifier refused it: {}\n"
                                       "--- last lines of the verifier log ---\n{}"
                                       "--- (run with -v for libbpf's messages)",
                                       base.message(), r.reason, r.tail));
}

}  // namespace bpfgate::bpf
