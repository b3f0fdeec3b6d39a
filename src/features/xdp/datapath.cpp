#include "features/xdp/datapath.hpp"

#include "agent/crash_point.hpp"
#include "features/xdp/source_sweep.hpp"
#include "util/log.hpp"

#include <bpf/bpf.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "bpf/pin.hpp"
#include "bpfgate/abi/lb.h"
#include <bpf/libbpf.h>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <optional>
#include <string>

namespace bpfgate::agent {

namespace {

enum OuterIndex { kAcl = 0, kPorts = 1, kProtos = 2, kRules = 3 };
constexpr const char *kOuterPins[] = {BG_PIN_ACL, BG_PIN_PORTS, BG_PIN_PROTOS, BG_PIN_RULES};

Result<bpf::UniqueFd> inner_of(const bpf::Map<__u32, __u32> &outer, uint32_t gen) {
  auto id = outer.lookup(gen);
  if (!id)
    return id.error();
  if (!*id)
    return make_error(ENOENT, "policy generation {} has no map", gen);
  int fd = bpf_map_get_fd_by_id(**id);
  if (fd < 0)
    return bpf::libbpf_error(fd, "open policy map by id");
  return bpf::UniqueFd(fd);
}

// An inner map of the same shape as the object's templates (bpf/xdp/maps.h),
// with the BTF of `like` (the generation in use) where it has some: Linux 6.1
// compares the BTF-derived layout (timer and spin lock offsets) of an inner
// map with the template's, so a struct-valued map made without BTF is refused
// (EINVAL) beside a template that has it.
Result<bpf::UniqueFd> create_inner(OuterIndex which, int like) {
  LIBBPF_OPTS(bpf_map_create_opts, opts);
  bpf::UniqueFd btf;
  bpf_map_info info{};
  uint32_t len = sizeof(info);
  if (like >= 0 && bpf_obj_get_info_by_fd(like, &info, &len) == 0 && info.btf_id) {
    int b = bpf_btf_get_fd_by_id(info.btf_id);
    if (b >= 0) {
      btf = bpf::UniqueFd(b);
      opts.btf_fd = static_cast<__u32>(b);
      opts.btf_key_type_id = info.btf_key_type_id;
      opts.btf_value_type_id = info.btf_value_type_id;
    }
  }
  int fd = -1;
  switch (which) {
    case kAcl:
      opts.map_flags = BPF_F_NO_PREALLOC;
      fd = bpf_map_create(BPF_MAP_TYPE_LPM_TRIE, "bg_acl_g", sizeof(bg_lpm_key), sizeof(__u32),
                          BG_ACL_MAX, &opts);
      break;
    case kPorts:
      fd = bpf_map_create(BPF_MAP_TYPE_ARRAY, "bg_ports_g", sizeof(__u32), sizeof(__u32),
                          BG_PORT_TABLE_SIZE, &opts);
      break;
    case kProtos:
      fd = bpf_map_create(BPF_MAP_TYPE_ARRAY, "bg_protos_g", sizeof(__u32), sizeof(__u32), 256,
                          &opts);
      break;
    case kRules:
      fd = bpf_map_create(BPF_MAP_TYPE_ARRAY, "bg_rules_g", sizeof(__u32), sizeof(bg_rule),
                          BG_RULES_MAX, &opts);
      break;
  }
  if (fd < 0)
    return bpf::libbpf_error(fd, "create a policy map");
  return bpf::UniqueFd(fd);
}

// Writes n entries, in batches where the kernel can, one by one where not.
Status fill(int fd, const void *keys, size_t key_size, const void *values, size_t value_size,
            size_t n) {
  if (n == 0)
    return {};
  uint32_t count = static_cast<uint32_t>(n);
  LIBBPF_OPTS(bpf_map_batch_opts, opts);
  if (bpf_map_update_batch(fd, keys, values, &count, &opts) == 0)
    return {};
  auto *k = static_cast<const uint8_t *>(keys);
  auto *v = static_cast<const uint8_t *>(values);
  for (size_t i = 0; i < n; i++)
    if (auto st = bpf::raw::update(fd, k + i * key_size, v + i * value_size, BPF_ANY); !st)
      return st;
  return {};
}

}  // namespace

namespace {

// The program array the filter tail-calls for the frames it passes (the load
// balancer's slot). Optional: a filter pinned by a bpfgate older than the
// balancer has none, and is adopted without it; replacing its program
// (replace.cpp) pins the new program's.
bpf::PinSpec next_pin() {
  bpf::PinSpec p = bpf::map_pin<__u32, __u32>(BG_PIN_NEXT, "bg_xdp_next");
  p.optional = true;
  return p;
}

}  // namespace

bpf::PinSpec op_stats_pin() {
  // Optional: pins of older versions have none (replace.cpp makes it).
  bpf::PinSpec p = bpf::map_pin<__u32, bg_counter>(BG_PIN_OPSTATS, "bg_op_stats");
  p.optional = true;
  return p;
}

bpf::PinSpec known_bits_pin() {
  // Optional: pins of older versions have none (replace.cpp makes it and
  // sets the bits of the known table's sources).
  bpf::PinSpec p = bpf::map_pin<__u32, __u64>(BG_PIN_KNOWN_BITS, "bg_known_bits");
  p.optional = true;
  return p;
}

bpf::PinSpec known_sum_pin() {
  // Optional: pins of older versions have none (replace.cpp makes it and
  // sets the bits of the known table's sources).
  bpf::PinSpec p = bpf::map_pin<__u32, __u64>(BG_PIN_KNOWN_SUM, "bg_known_sum");
  p.optional = true;
  return p;
}

bpf::PinSpec hot_pin() {
  // Optional: pins of older versions have none (replace.cpp makes it).
  bpf::PinSpec p = bpf::map_pin<__u32, bg_hot_slot>(BG_PIN_HOT, "bg_hot");
  p.optional = true;
  return p;
}

std::vector<bpf::PinSpec> Datapath::pin_specs() {
  using bpf::map_pin;
  return {
      map_pin<__u32, bg_config>(BG_PIN_CONFIG, "bg_config"),
      map_pin<bg_src_key, bg_src_state>(BG_PIN_SOURCES, "bg_sources"),
      map_pin<__u32, bg_counter>(BG_PIN_COUNTERS, "bg_counters"),
      map_pin<bg_lpm_key, bg_block>(BG_PIN_BLOCKLIST, "bg_blocklist"),
      map_pin<__u32, bg_runtime>(BG_PIN_RUNTIME, "bg_runtime"),
      map_pin<bg_src_key, bg_src_state>(BG_PIN_KNOWN, "bg_known"),
      map_pin<bg_lpm_key, __u32>(BG_PIN_NOBLOCK, "bg_noblock"),
      map_pin<__u32, __u32>(BG_PIN_ACL, "bg_acl"),
      map_pin<__u32, __u32>(BG_PIN_PORTS, "bg_ports"),
      map_pin<__u32, __u32>(BG_PIN_PROTOS, "bg_protos"),
      map_pin<__u32, __u32>(BG_PIN_RULES, "bg_rules"),
      next_pin(),
      op_stats_pin(),
      hot_pin(),
      known_bits_pin(),
      known_sum_pin(),
  };
}

Datapath Datapath::from_set(bpf::PinSet &s) {
  Datapath dp(bpf::Map<__u32, bg_config>(s.take(BG_PIN_CONFIG)),
              {Outer(s.take(BG_PIN_ACL)), Outer(s.take(BG_PIN_PORTS)), Outer(s.take(BG_PIN_PROTOS)),
               Outer(s.take(BG_PIN_RULES))},
              bpf::Map<bg_lpm_key, bg_block>(s.take(BG_PIN_BLOCKLIST)),
              bpf::Map<bg_src_key, bg_src_state>(s.take(BG_PIN_SOURCES)),
              bpf::PerCpuMap<__u32, bg_counter>(s.take(BG_PIN_COUNTERS)),
              bpf::Map<__u32, bg_runtime>(s.take(BG_PIN_RUNTIME)),
              bpf::Map<bg_src_key, bg_src_state>(s.take(BG_PIN_KNOWN)),
              bpf::Map<bg_lpm_key, __u32>(s.take(BG_PIN_NOBLOCK)));
  if (bpf::UniqueFd ops = s.take(BG_PIN_OPSTATS); ops.valid())
    dp.op_stats_.emplace(std::move(ops));
  if (bpf::UniqueFd hot = s.take(BG_PIN_HOT); hot.valid())
    dp.hot_.emplace(std::move(hot));
  if (bpf::UniqueFd bits = s.take(BG_PIN_KNOWN_BITS); bits.valid())
    dp.known_bits_ = std::move(bits);
  if (bpf::UniqueFd sum = s.take(BG_PIN_KNOWN_SUM); sum.valid())
    dp.known_sum_ = std::move(sum);
  return dp;
}

Result<Datapath> Datapath::from_object(const bpf_object *obj) {
  auto set = bpf::PinSet::from_object("", pin_specs(), obj);
  if (!set)
    return set.error();
  return from_set(*set);
}

Result<Datapath> Datapath::from_pins(const std::string &dir) {
  auto set = bpf::PinSet::adopt(dir, pin_specs());
  if (!set) {
    if (bpf::exists(dir + "/" BG_PIN_CONFIG) && !bpf::exists(dir + "/" BG_PIN_RUNTIME))
      return set.error().context(
          "a filter pinned by an older bpfgate (no runtime map): detach and attach it again");
    return set.error();
  }
  return from_set(*set);
}

namespace {

// The resolution of CLOCK_MONOTONIC_COARSE: the kernel's tick (1/HZ), at
// which bpf_ktime_get_coarse_ns() advances. 0 if unknown (no coarse clock).
uint64_t coarse_tick_ns() {
  timespec res{};
  if (clock_getres(CLOCK_MONOTONIC_COARSE, &res) != 0)
    return 0;
  return static_cast<uint64_t>(res.tv_sec) * 1'000'000'000ULL + static_cast<uint64_t>(res.tv_nsec);
}

// The runtime map is mmapable: the datapath bumps block_epoch with an atomic
// add after an auto-block, so the control plane bumps it the same way (a map
// update writes the whole value and could undo one). `live` < 0 leaves
// blocklist_live as it is.
Status with_runtime(int fd, int live, bool bump) {
  const long page = sysconf(_SC_PAGESIZE);
  void *p = mmap(nullptr, static_cast<size_t>(page), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (p == MAP_FAILED)
    return make_error(errno,
                      "map the filter's runtime map (a filter pinned by an older bpfgate: "
                      "detach and attach it again)");
  auto *rt = static_cast<bg_runtime *>(p);
  if (live >= 0)
    __atomic_store_n(&rt->blocklist_live, static_cast<__u32>(live), __ATOMIC_SEQ_CST);
  if (bump)
    __atomic_fetch_add(&rt->block_epoch, 1, __ATOMIC_SEQ_CST);
  munmap(p, static_cast<size_t>(page));
  return {};
}

// Why new TCP clients may not prove themselves during a flood, if they may
// not. They prove themselves with their handshake's ACK: one that carries the
// kernel's SYN cookie (tcp_syncookies=2, or 1 while the SYN queue overflows),
// or that completes a handshake the kernel keeps a request socket for. With
// 0 the kernel never sends cookies: spoofed SYNs passed on the SYN budget
// fill its SYN queue, and a new client's SYN is then dropped.
std::optional<std::string> syncookies_note(int mode) {
  if (mode < 0)
    return "unproven sources share limits.unproven, and net.ipv4.tcp_syncookies cannot be read: "
           "new TCP clients get through a SYN flood to prove themselves only where it is 1 or 2";
  if (mode != 0)
    return std::nullopt;
  return std::string(
      "unproven sources share limits.unproven, but net.ipv4.tcp_syncookies is 0 in this network "
      "namespace: under a SYN flood the kernel's SYN queue fills and new TCP clients cannot "
      "connect to prove themselves (sysctl net.ipv4.tcp_syncookies=1, the kernel's default, or 2)");
}

// One integer sysctl of this network namespace (net.ipv4.*, net.core.*), or
// the first of several ("4096 131072 6291456"); -1 if it cannot be read.
long sysctl_value(const char *path, int field = 0) {
  std::ifstream f(path);
  long v = -1;
  for (int i = 0; i <= field; i++)
    if (!(f >> v))
      return -1;
  return v;
}

}  // namespace

SynAnswerHost syn_answer_host() {
  SynAnswerHost h;
  h.syncookies = static_cast<int>(sysctl_value("/proc/sys/net/ipv4/tcp_syncookies"));
  h.timestamps = static_cast<int>(sysctl_value("/proc/sys/net/ipv4/tcp_timestamps"));
  if (h.timestamps == 2)
    h.opts |= BG_SYN_OPT_TS;
  if (sysctl_value("/proc/sys/net/ipv4/tcp_sack") > 0)
    h.opts |= BG_SYN_OPT_SACK;
  if (sysctl_value("/proc/sys/net/ipv4/tcp_window_scaling") > 0)
    h.opts |= BG_SYN_OPT_WSCALE;
  // The window scale the kernel gives a connection its cookie makes
  // (tcp_select_initial_window): the largest receive space it may use.
  const long space = std::max(sysctl_value("/proc/sys/net/ipv4/tcp_rmem", 2),
                              sysctl_value("/proc/sys/net/core/rmem_max"));
  h.wscale = core::syn_wscale(space);
  return h;
}

namespace {

// The ACL, the port rules and the protocol rules of a generation, into its
// fresh inner maps.
Status fill_lists(const std::array<bpf::UniqueFd, 4> &inner, const core::PolicyImage &p) {
  std::vector<bg_lpm_key> acl_keys;
  std::vector<__u32> acl_vals;
  acl_keys.reserve(p.acl.size());
  acl_vals.reserve(p.acl.size());
  for (const auto &[k, v] : p.acl)
    acl_keys.push_back(k), acl_vals.push_back(v);
  if (auto st = fill(inner[kAcl].get(), acl_keys.data(), sizeof(bg_lpm_key), acl_vals.data(),
                     sizeof(__u32), acl_keys.size());
      !st)
    return st.error().context("fill the ACL");
  std::vector<__u32> port_keys, port_vals;
  for (const auto &[k, v] : p.ports)
    port_keys.push_back(k), port_vals.push_back(v);
  if (auto st =
          fill(inner[kPorts].get(), port_keys.data(), 4, port_vals.data(), 4, port_keys.size());
      !st)
    return st.error().context("fill the port rules");
  std::vector<__u32> proto_keys;
  for (__u32 i = 0; i < 256; i++)
    proto_keys.push_back(i);
  if (auto st = fill(inner[kProtos].get(), proto_keys.data(), 4, p.protos.data(), 4, 256); !st)
    return st.error().context("fill the protocol rules");
  return {};
}

// The rules of a generation into its inner map, each marked for the coarse
// clock where every bucket its frames may be charged to (`set`'s shared
// limits, its own) keeps its rate at the kernel's tick.
Status fill_rules(int fd, const std::vector<bg_rule> &policy_rules, const bg_settings &set) {
  const uint64_t tick = coarse_tick_ns();
  const bool shared_ok = core::coarse_clock_ok(set.prefix_limit, tick) &&
                         core::coarse_clock_ok(set.new_source_limit, tick) &&
                         core::coarse_clock_ok(set.unproven_limit, tick);
  std::vector<bg_rule> rules = policy_rules;
  std::vector<__u32> rule_keys;
  for (__u32 i = 0; i < rules.size(); i++) {
    rule_keys.push_back(i);
    rules[i].flags &= BG_RULE_DRY_RUN;  // the policy's; the rest is the datapath's
    if (shared_ok && core::coarse_clock_ok(rules[i].limit, tick))
      rules[i].flags |= BG_RULE_COARSE_CLOCK;
  }
  if (auto st = fill(fd, rule_keys.data(), 4, rules.data(), sizeof(bg_rule), rules.size()); !st)
    return st.error().context("fill the rules");
  return {};
}

// What the datapath may skip (an empty ACL, rules beyond the default), the
// unproven sources' share and the SYN answer, into `set`; warns where the
// host's TCP settings defeat what the policy asks.
void set_features(const core::PolicyImage &p, bg_settings &set) {
  set.flags = 0;
  if (!p.acl.empty())
    set.flags |= BG_SET_ACL;
  if (p.rules.size() > 1)
    set.flags |= BG_SET_RULES;
  if (p.prove)
    set.flags |= BG_SET_PROVE;
  if (p.dry_run)
    set.flags |= BG_SET_DRY_RUN;
  // Unproven sources share a rate only where sources can prove themselves:
  // with proofs off, every client would stay in that class.
  // Both read this namespace's TCP settings, once per apply.
  const bool share = p.prove && set.unproven_limit.rate_pps;
  std::optional<SynAnswerHost> host;
  if (share || p.syn_proxy)
    host = syn_answer_host();
  if (share) {
    set.flags |= BG_SET_UNPROVEN;
    if (auto why = syncookies_note(host->syncookies))
      log::warn("{}", *why);
  }
  // The SYN answer: the kernel accepts the cookies only where it sends them
  // for every SYN (tcp_syncookies=2); its options as the host's TCP sets them.
  set.syn_opts = 0;
  set.syn_mss4 = set.syn_mss6 = 0;  // the interface's MTU less the headers
  if (p.syn_proxy) {
    set.syn_opts |= BG_SYN_OPT_ASKED;
    const SynAnswerHost &h = *host;
    if (auto why = core::syn_answer_note(p.prove, h.syncookies, h.timestamps))
      log::warn("{}", *why);
    if (p.prove && h.syncookies == 2) {
      set.flags |= BG_SET_SYN_PROXY;
      set.syn_opts |= h.opts;
      set.syn_wscale = h.wscale;
    }
  }
}

}  // namespace

Result<std::array<bpf::UniqueFd, 4>> Datapath::build_generation(const core::PolicyImage &p,
                                                                uint32_t active,
                                                                bg_settings &set) const {
  std::array<bpf::UniqueFd, 4> inner;
  for (int i = 0; i < 4; i++) {
    auto current = inner_of(outer_[i], active % BG_GENERATIONS);
    auto fd = create_inner(static_cast<OuterIndex>(i), current ? current->get() : -1);
    if (!fd)
      return fd.error();
    inner[i] = std::move(*fd);
  }
  if (auto st = fill_lists(inner, p); !st)
    return st.error();
  if (p.rules.empty() || p.rules.size() > BG_RULES_MAX)
    return make_error(EINVAL, "a policy has 1 to {} rules, not {}", BG_RULES_MAX, p.rules.size());
  set = p.settings;
  const auto cpus = static_cast<unsigned>(std::max(bpf::possible_cpus(), 1));
  core::share_per_cpu(set.new_source_limit, cpus);
  core::share_per_cpu(set.block_limit, cpus);
  core::share_per_cpu(set.unproven_limit, cpus);
  if (auto st = fill_rules(inner[kRules].get(), p.rules, set); !st)
    return st.error();
  return inner;
}

Status Datapath::install_generation(uint32_t next, const std::array<bpf::UniqueFd, 4> &inner) {
  for (int i = 0; i < 4; i++) {
    __u32 fd = static_cast<__u32>(inner[i].get());
    if (auto st = outer_[i].update(next, fd); !st)
      return st.error().context("install policy generation");
    if (i == 0)
      crash_point("apply-installed");
  }
  return {};
}

Status Datapath::switch_generation(bg_config &cfg, uint32_t next,
                                   const std::vector<bg_lpm_key> &noblock) {
  // The never-block list is read only when a source is about to be
  // auto-blocked; it is not generational: added before the switch, removed
  // after it, so a prefix in both policies is never missing.
  auto old_noblock = noblock_.dump();
  if (!old_noblock)
    return old_noblock.error().context("read the never-block list");
  for (const auto &k : noblock)
    if (auto st = noblock_.update(k, 1); !st)
      return st.error().context("fill the never-block list");
  // Two writes: the settings of the generation not in use, then the switch.
  // An array update is a copy, not atomic: written together, a packet could
  // see the new `active` beside settings not copied yet. The second write
  // changes only active and generation; every other byte it copies is
  // unchanged.
  if (auto st = config_.update(0, cfg); !st)
    return st.error().context("write the next generation's settings");
  crash_point("apply-settings");
  cfg.active = next;
  cfg.generation++;
  if (auto st = config_.update(0, cfg); !st)
    return st.error().context("switch policy generation");
  crash_point("apply-switched");
  for (const auto &[k, v] : *old_noblock) {
    bool kept = std::any_of(noblock.begin(), noblock.end(), [&](const bg_lpm_key &n) {
      return std::memcmp(&n, &k, sizeof(k)) == 0;
    });
    if (!kept)
      if (auto gone = noblock_.erase(k); !gone)
        return gone.error().context("trim the never-block list");
  }
  return {};
}

Status Datapath::apply(const core::PolicyImage &p) {
  auto cfg = config();
  if (!cfg)
    return cfg.error();
  const uint32_t next = (cfg->active + 1) % BG_GENERATIONS;
  bg_settings set{};
  auto inner = build_generation(p, cfg->active, set);
  if (!inner)
    return inner.error();
  // Install the next generation beside the running one, then switch.
  if (auto st = install_generation(next, *inner); !st)
    return st;
  set_features(p, set);
  cfg->gen[next] = set;
  return switch_generation(*cfg, next, p.noblock);
}

Result<core::PolicyImage> Datapath::active_policy() const {
  auto cfg = config();
  if (!cfg)
    return cfg.error();
  core::PolicyImage p;
  p.settings = cfg->gen[cfg->active % BG_GENERATIONS];
  p.prove = (p.settings.flags & BG_SET_PROVE) != 0;
  p.syn_proxy = (p.settings.syn_opts & BG_SYN_OPT_ASKED) != 0;
  p.dry_run = (p.settings.flags & BG_SET_DRY_RUN) != 0;
  auto noblock = noblock_.dump();
  if (!noblock)
    return noblock.error();
  for (const auto &[k, v] : *noblock)
    p.noblock.push_back(k);
  std::array<bpf::UniqueFd, 4> inner;
  for (int i = 0; i < 4; i++) {
    auto fd = inner_of(outer_[i], cfg->active % BG_GENERATIONS);
    if (!fd)
      return fd.error();
    inner[i] = std::move(*fd);
  }
  auto acl = bpf::Map<bg_lpm_key, __u32>(inner[kAcl].get()).dump();
  if (!acl)
    return acl.error();
  p.acl = std::move(*acl);
  auto ports = bpf::Map<__u32, __u32>(inner[kPorts].get()).dump();
  if (!ports)
    return ports.error();
  for (const auto &[k, v] : *ports)
    if (v)
      p.ports.emplace_back(k, v);
  auto protos = bpf::Map<__u32, __u32>(inner[kProtos].get()).dump();
  if (!protos)
    return protos.error();
  for (const auto &[k, v] : *protos)
    if (k < 256)
      p.protos[k] = v;
  auto rules = bpf::Map<__u32, bg_rule>(inner[kRules].get()).dump();
  if (!rules)
    return rules.error();
  uint32_t used = 1;
  for (const auto &[k, v] : *ports)
    used = std::max(used, v + 1);
  for (uint32_t v : p.protos)
    used = std::max(used, v + 1);
  p.rules.resize(used);
  for (const auto &[k, v] : *rules)
    if (k < used) {
      p.rules[k] = v;
      p.rules[k].flags &= BG_RULE_DRY_RUN;  // the rest is the datapath's, not the policy's
    }
  return p;
}

Result<bg_rule> Datapath::default_rule() const {
  auto cfg = config();
  if (!cfg)
    return cfg.error();
  auto fd = inner_of(outer_[kRules], cfg->active % BG_GENERATIONS);
  if (!fd)
    return fd.error();
  auto rule = bpf::Map<__u32, bg_rule>(fd->get()).lookup(BG_RULE_DEFAULT);
  if (!rule)
    return rule.error();
  return rule->value_or(bg_rule{});
}

Result<bg_config> Datapath::config() const {
  auto v = config_.lookup(0);
  if (!v)
    return v.error();
  if (!*v)
    return make_error(ENOENT, "the filter's config entry is missing");
  return **v;
}

Status Datapath::set_attach_mode(uint32_t mode) {
  auto cfg = config();
  if (!cfg)
    return cfg.error();
  cfg->attach_mode = mode;
  return config_.update(0, *cfg);
}

Result<bool> Datapath::frags() const {
  auto cfg = config();
  if (!cfg)
    return cfg.error();
  return cfg->frags != 0;
}

Status Datapath::set_frags(bool frags) {
  auto cfg = config();
  if (!cfg)
    return cfg.error();
  cfg->frags = frags ? 1 : 0;
  return config_.update(0, *cfg);
}

Status Datapath::set_bypass(bool on) {
  if (!has_op_stats())
    return make_error(EOPNOTSUPP,
                      "the running program predates the bypass switch: `bpfgate upgrade IFACE` "
                      "first (in place, nothing reset)");
  auto cfg = config();
  if (!cfg)
    return cfg.error();
  cfg->bypass = on ? 1 : 0;
  return config_.update(0, *cfg);
}

Result<OpTotals> Datapath::op_stats() const {
  OpTotals totals{};
  if (!op_stats_)
    return totals;
  for (__u32 k = 0; k < BG_OP_SLOTS; k++) {
    auto per_cpu = op_stats_->lookup(k);
    if (!per_cpu)
      return per_cpu.error();
    for (const auto &c : *per_cpu) {
      totals[k].packets += c.packets;
      totals[k].bytes += c.bytes;
    }
  }
  return totals;
}

Result<CounterTotals> Datapath::counters() const {
  CounterTotals totals{};
  for (__u32 k = 0; k < BG_COUNTER_NR; k++) {
    auto per_cpu = counters_.lookup(k);
    if (!per_cpu)
      return per_cpu.error();
    for (const auto &c : *per_cpu) {
      totals[k].packets += c.packets;
      totals[k].bytes += c.bytes;
    }
  }
  return totals;
}

Result<StatTotals> Datapath::stats() const {
  StatTotals totals{};
  for (__u32 s = 0; s < BG_STAT_NR; s++) {
    auto per_cpu = counters_.lookup(bg_stat_key(s));
    if (!per_cpu)
      return per_cpu.error();
    for (const auto &c : *per_cpu)
      totals[s] += c.packets;
  }
  return totals;
}

Status Datapath::blocklist_added() {
  // After the insert: the flag, then the epoch that makes every source entry
  // which cached "not listed" look again.
  return with_runtime(runtime_.fd(), 1, true);
}

Status Datapath::blocklist_removed() {
  // A removal makes no cached "not listed" wrong, but the epoch is also what
  // tells a reader of the blocklist (the fleet's publishing scan) that it
  // changed: bumped too (a source entry looks up the blocklist once more).
  if (auto st = with_runtime(runtime_.fd(), 0, true); !st)
    return st;
  // An auto-block stores the flag after its insert: one that raced the clear
  // above is in the map now, and found here.
  bg_lpm_key first{};
  if (bpf_map_get_next_key(blocklist_.fd(), nullptr, &first) == 0)
    return with_runtime(runtime_.fd(), 1, false);
  return {};
}

namespace {

// Sets the bits of `keys` in a word array map `fd` of `words` words (the
// known_bits map, or with `shift` its summary), through its mmap.
Status set_bits(int fd, size_t words, unsigned shift, const std::vector<bg_src_key> &keys,
                const char *what) {
  const size_t len = words * sizeof(__u64);
  void *p = mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (p == MAP_FAILED)
    return make_error(errno, "map the filter's {} map", what);
  auto *w = static_cast<__u64 *>(p);
  for (const auto &k : keys) {
    __u32 bit = bg_known_bit(&k) >> shift;
    // Atomically: the datapath sets bits of its own meanwhile.
    __atomic_fetch_or(&w[bit >> 6], 1ULL << (bit & 63), __ATOMIC_SEQ_CST);
  }
  munmap(p, len);
  return {};
}

// The summary first, as the datapath: a reader that finds a bitmap bit set
// finds its summary bit set. `sum_fd` -1: a filter without the summary.
Status set_known_bits(int bits_fd, int sum_fd, const std::vector<bg_src_key> &keys) {
  if (sum_fd >= 0) {
    if (auto st = set_bits(sum_fd, BG_KNOWN_SUM_WORDS, BG_KNOWN_SUM_SHIFT, keys, "known_sum"); !st)
      return st;
  }
  return set_bits(bits_fd, BG_KNOWN_WORDS, 0, keys, "known_bits");
}

}  // namespace

Status Datapath::mark_known(const std::vector<bg_src_key> &keys) {
  if (!known_bits_.valid())
    return {};  // a filter of an older bpfgate: its program looks every source up
  return set_known_bits(known_bits_.get(), known_sum_.valid() ? known_sum_.get() : -1, keys);
}

Status mark_known_table(int known_fd, int bits_fd, int sum_fd) {
  bpf::Map<bg_src_key, bg_src_state> known(known_fd);
  auto all = known.dump();
  if (!all)
    return all.error();
  std::vector<bg_src_key> keys;
  keys.reserve(all->size());
  for (const auto &[k, v] : *all)
    keys.push_back(k);
  return set_known_bits(bits_fd, sum_fd, keys);
}

uint64_t Datapath::block_version() const {
  if (!blocklist_id_) {  // the map's id, read once: it stays while the fd does
    auto info = bpf::map_info(blocklist_.fd());
    if (!info)
      return 0;
    blocklist_id_ = info->id;
  }
  auto rt = runtime_.lookup(0);
  if (!rt || !*rt)
    return 0;
  return static_cast<uint64_t>(blocklist_id_) << 32 | (*rt)->block_epoch;
}

Result<std::vector<SourceEntry>> Datapath::sources() const {
  auto entries = sources_.dump();
  if (!entries)
    return entries.error();
  auto known = known_.dump();
  if (!known)
    return known.error();
  auto hot = hot_slots();
  if (!hot)
    return hot.error();
  std::vector<SourceEntry> out;
  out.reserve(entries->size() + known->size());
  for (const auto &[k, v] : *known)
    out.push_back(SourceEntry{k, v, true});
  for (const auto &[k, v] : *entries)
    out.push_back(SourceEntry{k, v, false});
  for (SourceEntry &e : out)
    add_hot_counts(*hot, e.key, e.state);
  return out;
}

Result<std::optional<bg_src_state>> Datapath::source(const bg_src_key &key) const {
  auto v = known_.lookup(key);
  if (v && !*v)
    v = sources_.lookup(key);
  if (!v || !*v)
    return v;
  auto hot = hot_slots();
  if (!hot)
    return hot.error();
  add_hot_counts(*hot, key, **v);
  return v;
}

Result<uint32_t> Datapath::max_sources() const {
  auto info = bpf::map_info(sources_.fd());
  if (!info)
    return info.error();
  return info->max_entries;
}

Result<uint32_t> Datapath::max_known() const {
  auto info = bpf::map_info(known_.fd());
  if (!info)
    return info.error();
  return info->max_entries;
}

SourceSweeper *Datapath::source_sweeper() {
  if (!sweeper_tried_) {
    sweeper_tried_ = true;
    auto s = SourceSweeper::open(sources_.fd(), known_.fd());
    if (s)
      sweeper_ = std::move(*s);
    else
      log::info(
          "sweeping idle sources from user space: the kernel refused the in-kernel "
          "sweeper ({})",
          s.error().what());
  }
  return sweeper_.get();
}

}  // namespace bpfgate::agent
