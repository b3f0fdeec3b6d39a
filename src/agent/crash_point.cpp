// The product's crash points do nothing (see agent/crash_point.hpp). Alone
// in its file: a test binary that defines crash_point() itself links its
// own, and this object is not pulled from the library.
#include "agent/crash_point.hpp"

namespace bpfgate::agent {

void crash_point(const char *) {}

}  // namespace bpfgate::agent
