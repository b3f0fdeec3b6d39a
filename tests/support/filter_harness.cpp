#include "support/filter_harness.hpp"

#include <gtest/gtest.h>

#include "bpf/map.hpp"
#include "core/addr.hpp"

namespace bpfgate::test {

Result<FilterHarness> FilterHarness::load(const core::Limits &limits, uint32_t max_sources,
                                          bg_verdict unparsed) {
  auto skel = bpf::XdpFilterSkel::open("xdp_filter");
  if (!skel)
    return skel.error();
  bpf_map__set_max_entries((*skel)->maps.bg_sources, max_sources);
  if (auto st = skel->load(); !st)
    return st.error();
  FilterHarness h(std::move(*skel));
  bg_config cfg{};
  core::apply_limits(limits, cfg);
  cfg.unparsed_verdict = unparsed;
  bpf::Map<__u32, bg_config> config(bpf_map__fd(h.skel_->maps.bg_config));
  if (auto st = config.update(0, cfg); !st)
    return st.error();
  return h;
}

int FilterHarness::prog_fd() const {
  return bpf_program__fd(skel_->progs.bg_xdp_filter);
}

uint32_t FilterHarness::run(const std::vector<uint8_t> &frame) {
  auto r = ProgRunner(prog_fd()).run(frame);
  EXPECT_TRUE(r.ok()) << (r.ok() ? "" : r.error().what());
  return r.ok() ? r->retval : ~0U;
}

Status FilterHarness::set_limits(const core::Limits &limits) {
  bpf::Map<__u32, bg_config> config(bpf_map__fd(skel_->maps.bg_config));
  auto cur = config.lookup(0);
  if (!cur)
    return cur.error();
  bg_config cfg = cur->value_or(bg_config{});
  core::apply_limits(limits, cfg);
  return config.update(0, cfg);
}

agent::CounterTotals FilterHarness::counters() const {
  agent::CounterTotals totals{};
  bpf::PerCpuMap<__u32, bg_counter> m(bpf_map__fd(skel_->maps.bg_counters));
  for (__u32 k = 0; k < BG_COUNTER_NR; k++) {
    auto per_cpu = m.lookup(k);
    EXPECT_TRUE(per_cpu.ok());
    if (!per_cpu)
      continue;
    for (const auto &c : *per_cpu) {
      totals[k].packets += c.packets;
      totals[k].bytes += c.bytes;
    }
  }
  return totals;
}

uint64_t FilterHarness::packets(bg_verdict v, bg_reason r) const {
  return counters()[bg_counter_key(v, r)].packets;
}

std::optional<bg_src_state> FilterHarness::source(const std::string &addr) const {
  auto key = core::parse_addr(addr);
  EXPECT_TRUE(key.has_value()) << addr;
  if (!key)
    return std::nullopt;
  bpf::Map<bg_src_key, bg_src_state> m(bpf_map__fd(skel_->maps.bg_sources));
  auto v = m.lookup(*key);
  EXPECT_TRUE(v.ok());
  return v.ok() ? *v : std::nullopt;
}

size_t FilterHarness::source_count() const {
  bpf::Map<bg_src_key, bg_src_state> m(bpf_map__fd(skel_->maps.bg_sources));
  auto all = m.dump();
  EXPECT_TRUE(all.ok());
  return all.ok() ? all->size() : 0;
}

void FilterHarness::advance_time(const std::string &addr, uint64_t ns) {
  auto key = core::parse_addr(addr);
  ASSERT_TRUE(key.has_value()) << addr;
  bpf::Map<bg_src_key, bg_src_state> m(bpf_map__fd(skel_->maps.bg_sources));
  auto v = m.lookup(*key);
  ASSERT_TRUE(v.ok() && v->has_value()) << "no state for " << addr;
  bg_src_state st = **v;
  st.tat_ns = st.tat_ns > ns ? st.tat_ns - ns : 0;
  ASSERT_TRUE(m.update(*key, st, BPF_EXIST).ok());
}

}  // namespace bpfgate::test
