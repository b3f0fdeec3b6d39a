// crash_point() of bpfgate-crashpoints, the fault tests' build of the CLI
// (agent/crash_point.hpp): BPFGATE_CRASH_AT=NAME[#N] ends the process with
// _exit(137), as SIGKILL would (no destructor, no flush, no cleanup), the
// Nth time (default: the first) the control plane passes point NAME.
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <string>

#include "agent/crash_point.hpp"

namespace bpfgate::agent {

void crash_point(const char *where) {
  static int hits = 0;
  const char *want = std::getenv("BPFGATE_CRASH_AT");
  if (!want)
    return;
  std::string spec(want);
  int nth = 1;
  if (auto hash = spec.find('#'); hash != std::string::npos) {
    nth = std::atoi(spec.c_str() + hash + 1);
    spec.resize(hash);
  }
  if (spec != where || ++hits < nth)
    return;
  static const char kSay[] = "crash point reached: exiting with 137\n";
  (void)!write(2, kSay, sizeof(kSay) - 1);
  _exit(137);
}

}  // namespace bpfgate::agent
