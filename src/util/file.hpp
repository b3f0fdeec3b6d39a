// Files the agent keeps: written whole (a temporary file beside, fsync,
// rename: a crash leaves the old file or the new one), read whole.
#pragma once

#include <string>

#include "util/result.hpp"

namespace bpfgate::util {

Status write_file_atomic(const std::string &path, const std::string &text);
// errno ENOENT when absent.
Result<std::string> read_file(const std::string &path);

}  // namespace bpfgate::util
