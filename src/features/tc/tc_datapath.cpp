// TcDatapath: the tc object's programs and maps, listed once (tc_pins) for
// loading, pinning and adopting; classes switched by generation; counters.
#include <bpf/libbpf.h>
#include <time.h>

#include <cstring>

#include "bpf/object.hpp"
#include "bpf/pin.hpp"
#include "features/tc/tc.hpp"
#include "tc_datapath.skel.h"

namespace bpfgate::agent {

namespace {

using TcSkel = bpf::Skeleton<bpf::SkeletonTraits<tc_datapath, tc_datapath__open_opts,
                                                 tc_datapath__load, tc_datapath__destroy>>;

constexpr const char *kStageProgs[BG_TC_STAGE_NR] = {"bg_tc_parse", "bg_tc_classify",
                                                     "bg_tc_police", "bg_tc_mirror", "bg_tc_count"};

std::string stage_pin(uint32_t stage) {
  return std::string(BG_TC_PIN_STAGE_PREFIX) + core::stage_name(stage);
}

// The tc datapath's pinned objects, in the order they are pinned.
std::vector<bpf::PinSpec> tc_pins() {
  std::vector<bpf::PinSpec> p = {
      bpf::prog_pin(BG_TC_PIN_PROG_INGRESS, "bg_tc_ingress"),
      bpf::prog_pin(BG_TC_PIN_PROG_EGRESS, "bg_tc_egress"),
      bpf::map_pin<__u32, __u32>(BG_TC_PIN_STAGES, "bg_tc_stages"),
      bpf::map_pin<__u32, bg_tc_config>(BG_TC_PIN_CONFIG, "bg_tc_config"),
      bpf::map_pin<__u32, bg_tc_class>(BG_TC_PIN_CLASSES, "bg_tc_classes"),
      bpf::map_pin<__u32, bg_tc_bucket>(BG_TC_PIN_BUCKETS, "bg_tc_buckets"),
      bpf::map_pin<__u32, bg_tc_stats>(BG_TC_PIN_STATS, "bg_tc_stats")};
  for (uint32_t s = 0; s < BG_TC_STAGE_NR; s++)
    p.push_back(bpf::prog_pin(stage_pin(s), kStageProgs[s]));
  return p;
}

uint64_t monotonic_now_ns() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1'000'000'000ULL + static_cast<uint64_t>(ts.tv_nsec);
}

}  // namespace

TcDatapath::TcDatapath(bpf::PinSet pins)
    : pins_(std::move(pins)),
      slots_(pins_.fd(BG_TC_PIN_STAGES)),
      config_(pins_.fd(BG_TC_PIN_CONFIG)),
      classes_(pins_.fd(BG_TC_PIN_CLASSES)),
      buckets_(pins_.fd(BG_TC_PIN_BUCKETS)),
      stats_(pins_.fd(BG_TC_PIN_STATS)) {}

int TcDatapath::prog_fd(bool egress) const {
  return pins_.fd(egress ? BG_TC_PIN_PROG_EGRESS : BG_TC_PIN_PROG_INGRESS);
}

int TcDatapath::stage_fd(uint32_t stage) const {
  return pins_.fd(stage_pin(stage));
}

std::vector<std::string> TcDatapath::pin_names() {
  return bpf::PinSet("", tc_pins()).names();
}

Status TcDatapath::unpin(const std::string &dir) {
  return bpf::PinSet(dir, tc_pins()).remove();
}

Result<TcDatapath> TcDatapath::load() {
  auto skel = TcSkel::open("tc_datapath");
  if (!skel)
    return skel.error();
  if (auto st = skel->load(); !st)
    return st.error();
  auto dp = from_object((*skel)->obj);
  if (!dp)
    return dp.error();
  // Every stage in its slot; the fds we hold keep everything alive once the
  // skeleton goes.
  for (uint32_t s = 0; s < BG_TC_STAGE_NR; s++)
    if (auto st = dp->set_stage(s, true); !st)
      return st.error();
  return dp;
}

Result<TcDatapath> TcDatapath::from_object(const bpf_object *obj) {
  auto pins = bpf::PinSet::from_object("", tc_pins(), obj);
  if (!pins)
    return pins.error();
  return TcDatapath(std::move(*pins));
}

Result<TcDatapath> TcDatapath::from_pins(const std::string &dir) {
  auto pins = bpf::PinSet::adopt(dir, tc_pins());
  if (!pins)
    return pins.error();
  return TcDatapath(std::move(*pins));
}

Status TcDatapath::pin(const std::string &dir) {
  pins_.set_dir(dir);
  return pins_.pin();
}

Status TcDatapath::set_stage(uint32_t stage, bool on) {
  if (stage >= BG_TC_STAGE_NR)
    return make_error(EINVAL, "no stage {}", stage);
  if (on) {
    __u32 fd = static_cast<__u32>(stage_fd(stage));
    if (auto st = slots_.update(stage, fd); !st)
      return st.error().context(fmt::format("enable the {} stage", core::stage_name(stage)));
    return {};
  }
  auto gone = slots_.erase(stage);
  if (!gone)
    return gone.error().context(fmt::format("disable the {} stage", core::stage_name(stage)));
  return {};
}

Result<core::TcStages> TcDatapath::stages() const {
  core::TcStages out{};
  for (uint32_t s = 0; s < BG_TC_STAGE_NR; s++) {
    auto id = slots_.lookup(s);  // a program array reads back program ids
    if (!id)
      return id.error();
    out[s] = id->has_value();
  }
  return out;
}

Result<bg_tc_config> TcDatapath::config() const {
  auto c = config_.lookup(0);
  if (!c)
    return c.error();
  return c->value_or(bg_tc_config{});
}

Status TcDatapath::write_config(const bg_tc_config &c) {
  return config_.update(0, c);
}

Result<std::vector<bg_tc_class>> TcDatapath::active_classes() const {
  auto cfg = config();
  if (!cfg)
    return cfg.error();
  std::vector<bg_tc_class> out;
  uint32_t gen = cfg->active & 1;
  for (uint32_t i = 0; i < BG_TC_CLASSES_MAX; i++) {
    auto c = classes_.lookup(gen * BG_TC_CLASSES_MAX + i);
    if (!c)
      return c.error();
    if (!*c || !((*c)->flags & BG_TC_CLASS_VALID))
      break;
    out.push_back(**c);
  }
  return out;
}

Status TcDatapath::apply(const core::TcImage &image) {
  if (image.classes.size() > BG_TC_CLASSES_MAX)
    return make_error(E2BIG, "{} classes: at most {}", image.classes.size(), BG_TC_CLASSES_MAX);
  auto cfg = config();
  if (!cfg)
    return cfg.error();
  auto old = active_classes();
  if (!old)
    return old.error();
  uint32_t next = (cfg->active & 1) ^ 1;
  for (uint32_t i = 0; i < BG_TC_CLASSES_MAX; i++) {
    bg_tc_class c = i < image.classes.size() ? image.classes[i] : bg_tc_class{};
    if (auto st = classes_.update(next * BG_TC_CLASSES_MAX + i, c); !st)
      return st.error().context("write the classes");
    if (i >= image.classes.size())
      break;  // the first invalid entry ends the generation
  }
  // The switch: one write of the config, whose other fields stay as they are.
  bg_tc_config c = *cfg;
  c.active = next;
  c.generation++;
  if (auto st = write_config(c); !st)
    return st.error().context("switch to the new classes");
  for (uint32_t s = 0; s < BG_TC_STAGE_NR; s++)
    if (auto st = set_stage(s, image.stages[s]); !st)
      return st;
  // A position whose class changed starts over: a new name, new counters; a
  // new rate or burst, a full bucket.
  for (uint32_t i = 0; i < image.classes.size(); i++) {
    const bg_tc_class &now = image.classes[i];
    const bg_tc_class *was = i < old->size() ? &(*old)[i] : nullptr;
    bool renamed = !was || std::strncmp(was->name, now.name, BG_TC_NAME_MAX) != 0;
    if (renamed || was->rate_bps != now.rate_bps || was->burst_ns != now.burst_ns)
      if (auto st = buckets_.update(i, bg_tc_bucket{}); !st)
        return st;
    if (renamed)
      if (auto st = stats_.update_all(i, bg_tc_stats{}); !st)
        return st;
  }
  return {};
}

Result<std::vector<TcClassStats>> TcDatapath::class_stats() const {
  auto classes = active_classes();
  if (!classes)
    return classes.error();
  std::vector<TcClassStats> out;
  uint64_t now = monotonic_now_ns();
  auto read = [&](uint32_t pos, TcClassStats &s) -> Status {
    auto per_cpu = stats_.lookup(pos);
    if (!per_cpu)
      return per_cpu.error();
    for (const auto &v : *per_cpu) {
      s.packets += v.packets;
      s.bytes += v.bytes;
      s.drops += v.drops;
      s.marked += v.marked;
      s.mirrored += v.mirrored;
      if (!v.win_start_ns || now < v.win_start_ns)
        continue;
      uint64_t age = now - v.win_start_ns;
      if (age >= BG_TC_RATE_WINDOW_NS)  // the window is over but not yet rolled: no packet since
        s.rate_bps += static_cast<double>(v.win_bytes) * 8e9 / static_cast<double>(age);
      else if (v.prev_ns)
        s.rate_bps += static_cast<double>(v.prev_bytes) * 8e9 / static_cast<double>(v.prev_ns);
    }
    return {};
  };
  for (uint32_t i = 0; i < classes->size(); i++) {
    TcClassStats s;
    s.name = (*classes)[i].name;
    s.position = i;
    s.def = (*classes)[i];
    if (auto st = read(i, s); !st)
      return st.error();
    out.push_back(s);
  }
  TcClassStats none;
  none.unclassified = true;
  none.position = BG_TC_STATS_UNCLASSIFIED;
  if (auto st = read(BG_TC_STATS_UNCLASSIFIED, none); !st)
    return st.error();
  out.push_back(none);
  return out;
}

}  // namespace bpfgate::agent
