#include "support/parse_probe.hpp"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include <fmt/format.h>

#include "parse_probe.skel.h"

namespace bpfgate::test {

ParseProbe::ParseProbe() {
  skel_ = parse_probe__open_and_load();
  if (!skel_)
    error_ = fmt::format("loading tests/bpf/parse_probe.bpf.c: {}", strerror(errno));
}

ParseProbe::~ParseProbe() {
  parse_probe__destroy(skel_);
}

std::optional<ParseOutcome> ParseProbe::run(std::span<const uint8_t> frame) {
  if (!skel_)
    return std::nullopt;
  int map = bpf_map__fd(skel_->maps.bg_parse_out);
  uint32_t zero = 0;
  bg_parse_probe_out out{};
  out.status = -1;  // a run that did not reach bg_parse is seen
  if (bpf_map_update_elem(map, &zero, &out, BPF_ANY) != 0) {
    error_ = fmt::format("resetting the probe's output: {}", strerror(errno));
    return std::nullopt;
  }
  std::vector<uint8_t> data_out(frame.size() + 256);
  bpf_test_run_opts opts{};  // field by field: clang's C++ warns at LIBBPF_OPTS' designators
  opts.sz = sizeof(opts);
  opts.data_in = frame.data();
  opts.data_size_in = static_cast<uint32_t>(frame.size());
  opts.data_out = data_out.data();  // always room for the output frame, as ProgRunner does
  opts.data_size_out = static_cast<uint32_t>(data_out.size());
  opts.repeat = 1;
  if (bpf_prog_test_run_opts(bpf_program__fd(skel_->progs.bg_parse_probe), &opts) != 0) {
    error_ = fmt::format("bpf_prog_test_run_opts on {} bytes: {}", frame.size(), strerror(errno));
    return std::nullopt;
  }
  if (bpf_map_lookup_elem(map, &zero, &out) != 0 || out.runs != 1) {
    error_ = fmt::format("reading the probe's output: {}", strerror(errno));
    return std::nullopt;
  }
  ParseOutcome r;
  r.status = out.status;
  r.pkt = out.pkt;
  return r;
}

}  // namespace bpfgate::test
