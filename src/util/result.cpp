#include "util/result.hpp"

#include <cstring>

namespace bpfgate {

std::string Error::what() const {
  if (errno_ == 0)
    return message_;
  return fmt::format("{} ({})", message_, std::strerror(errno_));
}

}  // namespace bpfgate
