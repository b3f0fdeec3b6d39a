#include "util/text.hpp"

#include <fmt/format.h>

namespace bpfgate::util {

void append_escaped(std::string &out, unsigned char c) {
  if (c == '\n')
    out += "\\n";
  else if (c == '\t')
    out += "\\t";
  else if (c < 0x20 || c >= 0x7f)
    out += fmt::format("\\x{:02x}", c);
  else
    out += static_cast<char>(c);
}

std::string excerpt(std::string_view text, size_t max) {
  std::string out;
  size_t shown = 0;
  for (unsigned char c : text) {
    if (shown == max) {
      out += "...";
      break;
    }
    shown++;
    append_escaped(out, c);
  }
  return out;
}

}  // namespace bpfgate::util
