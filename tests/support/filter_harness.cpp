#include "support/filter_harness.hpp"

#include <gtest/gtest.h>

#include "bpf/map.hpp"
#include "bpf/skeletons.hpp"
#include "core/addr.hpp"
#include "core/cidr.hpp"
#include "core/config.hpp"

#include <cstring>
#include <vector>

namespace bpfgate::test {

core::PolicyImage policy_from_yaml(const std::string &yaml) {
  auto c = core::parse_config("interfaces: [{name: eth0}]\n" + yaml, "test.yaml");
  if (!c) {
    ADD_FAILURE() << c.error().what();
    return {};
  }
  return core::compile(*c);
}

Result<FilterHarness> FilterHarness::load(const core::PolicyImage &policy, uint32_t max_sources) {
  auto skel = bpf::XdpFilterSkel::open("xdp_filter");
  if (!skel)
    return skel.error();
  agent::prepare_filter(*skel, max_sources);
  if (auto st = skel->load(); !st)
    return st.error();
  auto dp = agent::Datapath::from_object((*skel)->obj);
  if (!dp)
    return dp.error();
  if (auto st = dp->apply(policy); !st)
    return st.error();
  int prog_fd = bpf_program__fd((*skel)->progs.bg_xdp_filter);
  return FilterHarness(std::make_shared<bpf::XdpFilterSkel>(std::move(*skel)), prog_fd,
                       std::move(*dp));
}

FilterHarness FilterHarness::load_or_abort(const core::PolicyImage &policy, uint32_t max_sources) {
  auto h = load(policy, max_sources);
  if (!h) {
    ADD_FAILURE() << h.error().what();
    std::abort();
  }
  return std::move(*h);
}

CasLostFilter load_test_filter_or_abort(const std::string &name, const std::string &prog,
                                        uint32_t max_sources) {
  const std::string path = std::string(BPFGATE_BPF_DIR) + "/" + name + ".bpf.o";
  bpf_object *raw = bpf_object__open_file(path.c_str(), nullptr);
  if (!raw) {
    ADD_FAILURE() << "open " << path;
    std::abort();
  }
  std::shared_ptr<void> obj(raw, [](void *o) { bpf_object__close(static_cast<bpf_object *>(o)); });
  if (max_sources)
    bpf_map__set_max_entries(bpf_object__find_map_by_name(raw, "bg_sources"), max_sources);
  if (int err = bpf_object__load(raw); err) {
    ADD_FAILURE() << "load " << path << ": " << err;
    std::abort();
  }
  auto dp = agent::Datapath::from_object(raw);
  if (!dp) {
    ADD_FAILURE() << dp.error().what();
    std::abort();
  }
  int fd = bpf_program__fd(bpf_object__find_program_by_name(raw, prog.c_str()));
  return CasLostFilter{std::move(obj), std::move(*dp), fd};
}

CasLostFilter load_cas_lost_filter_or_abort() {
  return load_test_filter_or_abort("cas_lost_filter", "bg_cas_lost_filter");
}

Result<FilterHarness> FilterHarness::load(const core::Limits &limits, uint32_t max_sources,
                                          bg_verdict unparsed) {
  return load(core::default_policy(limits, unparsed), max_sources);
}

int FilterHarness::prog_fd() const {
  return prog_fd_;
}

uint32_t FilterHarness::run(const std::vector<uint8_t> &frame) {
  auto r = ProgRunner(prog_fd()).run(frame);
  EXPECT_TRUE(r.ok()) << (r.ok() ? "" : r.error().what());
  return r.ok() ? r->retval : ~0U;
}

Status FilterHarness::set_limits(const core::Limits &limits) {
  auto p = dp_.active_policy();
  if (!p)
    return p.error();
  core::apply_limits(limits, p->rules[BG_RULE_DEFAULT].limit);
  return dp_.apply(*p);
}

agent::CounterTotals FilterHarness::counters() const {
  auto c = dp_.counters();
  EXPECT_TRUE(c.ok());
  return c.ok() ? *c : agent::CounterTotals{};
}

uint64_t FilterHarness::packets(bg_verdict v, bg_reason r) const {
  return counters()[bg_counter_key(v, r)].packets;
}

namespace {
// The entry as a reader sees it: with what the CPUs' hot slots counted.
std::optional<bg_src_state> lookup(const agent::Datapath &dp, const bg_src_key &key) {
  auto v = dp.source(key);
  EXPECT_TRUE(v.ok());
  return v.ok() ? *v : std::nullopt;
}

bg_src_key key_of(const std::string &addr, uint16_t rule) {
  auto a = core::parse_addr(addr);
  EXPECT_TRUE(a.has_value()) << addr;
  bg_src_key k{};
  if (a)
    std::memcpy(k.addr, a->addr, 16);
  k.rule = rule;
  k.kind = BG_SRC_ADDR;
  return k;
}
}  // namespace

std::optional<bg_src_state> FilterHarness::source(const std::string &addr, uint16_t rule) const {
  return lookup(dp_, key_of(addr, rule));
}

std::optional<bg_src_state> FilterHarness::prefix(const std::string &cidr) const {
  auto p = core::parse_prefix(cidr);
  EXPECT_TRUE(p.ok()) << cidr;
  if (!p)
    return std::nullopt;
  bg_src_key k{};
  std::memcpy(k.addr, p->key.addr, 16);
  k.kind = BG_SRC_PREFIX;
  k.prefixlen = static_cast<uint8_t>(p->key.prefixlen);
  return lookup(dp_, k);
}

bool FilterHarness::known(const std::string &addr, uint16_t rule) const {
  auto v = const_cast<agent::Datapath &>(dp_).known_map().lookup(key_of(addr, rule));
  EXPECT_TRUE(v.ok());
  return v.ok() && v->has_value();
}

uint64_t FilterHarness::stat(bg_stat s) const {
  auto v = dp_.stats();
  EXPECT_TRUE(v.ok());
  return v.ok() ? (*v)[s] : 0;
}

bg_early FilterHarness::early(unsigned cpu) const {
  const auto *skel = static_cast<const bpf::XdpFilterSkel *>(skel_.get());
  std::vector<bg_early> per_cpu(static_cast<size_t>(libbpf_num_possible_cpus()));
  uint32_t zero = 0;
  int err = bpf_map_lookup_elem(bpf_map__fd((*skel)->maps.bg_early), &zero, per_cpu.data());
  EXPECT_EQ(err, 0) << "read bg_early";
  return err || cpu >= per_cpu.size() ? bg_early{} : per_cpu[cpu];
}

size_t FilterHarness::source_count() const {
  auto all = dp_.sources();
  EXPECT_TRUE(all.ok());
  return all.ok() ? all->size() : 0;
}

void FilterHarness::advance_time(const std::string &addr, uint64_t ns, uint16_t rule) {
  bg_src_key key = key_of(addr, rule);
  auto v = dp_.source_map().lookup(key);
  ASSERT_TRUE(v.ok() && v->has_value()) << "no state for " << addr;
  bg_src_state st = **v;
  st.tat_ns = st.tat_ns > ns ? st.tat_ns - ns : 0;
  ASSERT_TRUE(dp_.source_map().update(key, st, BPF_EXIST).ok());
  // The CPUs' hot slots age as much (their leases and drop decisions).
  ASSERT_TRUE(dp_.age_hot(ns).ok());
}

}  // namespace bpfgate::test
