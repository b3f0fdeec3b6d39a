// Text from outside (a config line, a file name) quoted back to an operator.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace bpfgate::util {

// `text` for a message: at most `max` characters of it, every control or
// non-ASCII byte escaped (\n, \t, \xNN), "..." where it was cut. Nothing from
// outside reaches a terminal raw.
std::string excerpt(std::string_view text, size_t max = 64);

// Appends `c` as excerpt() shows it: printable ASCII as itself, \n, \t, or \xNN.
void append_escaped(std::string &out, unsigned char c);

}  // namespace bpfgate::util
