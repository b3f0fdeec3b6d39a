#include "bpf/error.hpp"

#include <bpf/libbpf.h>
#include <xdp/libxdp.h>

#include <cctype>
#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <sstream>
#include <vector>

#include "util/log.hpp"

namespace bpfgate::bpf {

Error libbpf_error(int ret, const std::string &context) {
  // libbpf 1.x returns -errno from every API (and sets errno to match).
  int err = ret < 0 ? -ret : errno;
  if (err <= 0)
    err = EINVAL;
  return Error(err, context);
}

namespace {
void print_debug(const char *who, const char *format, va_list args) {
  char buf[1024];
  int n = std::vsnprintf(buf, sizeof(buf), format, args);
  std::string_view msg(buf, n < 0 ? 0 : std::min<size_t>(n, sizeof(buf) - 1));
  while (!msg.empty() && msg.back() == '\n')
    msg.remove_suffix(1);
  const log::Level l = log::Level::kDebug;
  if (log::level() <= l)
    log::write(l, fmt::format("{}: {}", who, msg));
}

// libbpf's and libxdp's warnings are echoed by our own error messages; keep them for -v.
int print_fn(enum libbpf_print_level, const char *format, va_list args) {
  print_debug("libbpf", format, args);
  return 0;
}
int print_xdp_fn(enum libxdp_print_level, const char *format, va_list args) {
  print_debug("libxdp", format, args);
  return 0;
}

bool is_noise(const std::string &line) {
  return line.empty() || line.rfind("processed ", 0) == 0 ||
         line.rfind("verification time", 0) == 0 || line.rfind("stack depth", 0) == 0 ||
         line.rfind("max_states_per_insn", 0) == 0;
}
}  // namespace

void install_libbpf_logger() {
  libbpf_set_print(print_fn);
  libxdp_set_print(print_xdp_fn);
}

VerifierReport summarize_verifier_log(const std::string &log, int tail_lines) {
  std::vector<std::string> lines;
  std::istringstream in(log);
  for (std::string line; std::getline(in, line);)
    lines.push_back(line);
  // The reason is what the verifier said after the last instruction it
  // walked ("12: (71) r1 = ..."); some kernels say it in two lines.
  auto is_insn = [](const std::string &l) {
    size_t i = 0;
    while (i < l.size() && std::isdigit(static_cast<unsigned char>(l[i])))
      i++;
    return i > 0 && i + 1 < l.size() && l[i] == ':' && l[i + 1] == ' ';
  };
  size_t from = 0;
  for (size_t i = lines.size(); i-- > 0;)
    if (is_insn(lines[i])) {
      from = i + 1;
      break;
    }
  VerifierReport r;
  for (size_t i = from; i < lines.size(); i++) {
    if (is_noise(lines[i]))
      continue;
    r.reason += (r.reason.empty() ? "" : "; ") + lines[i];
  }
  if (r.reason.empty())
    for (auto it = lines.rbegin(); it != lines.rend(); ++it)
      if (!is_noise(*it)) {
        r.reason = *it;
        break;
      }
  size_t start = lines.size() > static_cast<size_t>(tail_lines) ? lines.size() - tail_lines : 0;
  for (size_t i = start; i < lines.size(); i++)
    r.tail += lines[i] + "\n";
  return r;
}

}  // namespace bpfgate::bpf
