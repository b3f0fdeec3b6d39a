// Runs the calling thread on CPU 0 while in scope: the datapath's admission
// budgets and shares are per CPU, so a test that counts them sends every
// frame from one.
#pragma once

#include <sched.h>

namespace bpfgate::test {

class OneCpu {
 public:
  OneCpu() {
    sched_getaffinity(0, sizeof(old_), &old_);
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(0, &one);
    sched_setaffinity(0, sizeof(one), &one);
  }
  ~OneCpu() { sched_setaffinity(0, sizeof(old_), &old_); }
  OneCpu(const OneCpu &) = delete;
  OneCpu &operator=(const OneCpu &) = delete;

 private:
  cpu_set_t old_{};
};

}  // namespace bpfgate::test
