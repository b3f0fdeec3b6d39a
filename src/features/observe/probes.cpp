#include "features/observe/probes.hpp"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "bpf/features.hpp"
#include "bpf/map.hpp"
#include "bpf/observe_skeletons.hpp"
#include "bpf/pin.hpp"
#include "bpf/pin_set.hpp"
#include "bpf/xdp.hpp"
#include "util/log.hpp"

namespace bpfgate::agent {

std::string observe_pin_dir(const std::string &bpffs) {
  return bpf::feature_dir(bpffs, BG_OBS_PIN_DIR);
}

namespace {

constexpr const char *kTracefs = "/sys/kernel/tracing";

// The maps pinned under <bpffs>/bpfgate-observe/ (libbpf pins them at load).
bpf::PinSet observe_pins(const std::string &bpffs) {
  return bpf::PinSet(observe_pin_dir(bpffs), {bpf::map_pin(BG_OBS_PIN_SERVICES, "bg_obs_services"),
                                              bpf::map_pin(BG_OBS_PIN_INFO, "bg_obs_info"),
                                              bpf::map_pin(BG_OBS_PIN_STATS, "bg_obs_stats"),
                                              bpf::map_pin(BG_OBS_PIN_FLOWS, "bg_obs_flows")});
}

// Gives the tracing object the tc object's service maps.
template <class Skel>
Status share_maps(Skel &s, const bpf::ObserveTcSkel &tc) {
  if (bpf_map__reuse_fd(s->maps.bg_obs_services, bpf_map__fd(tc->maps.bg_obs_services)) ||
      bpf_map__reuse_fd(s->maps.bg_obs_info, bpf_map__fd(tc->maps.bg_obs_info)) ||
      bpf_map__reuse_fd(s->maps.bg_obs_stats, bpf_map__fd(tc->maps.bg_obs_stats)))
    return Error(errno, "share the service maps with the TCP probes");
  return {};
}

// tracefs, mounted for as long as the owner lives if it was not.
class Tracefs {
 public:
  static Result<Tracefs> ensure() {
    Tracefs t;
    if (bpf::exists(std::string(kTracefs) + "/events"))
      return t;
    if (::mount("tracefs", kTracefs, "tracefs", 0, nullptr) != 0)
      return Error(errno,
                   fmt::format("tracefs is not mounted and mounting it at {} failed", kTracefs));
    t.mounted_ = true;
    return t;
  }
  Tracefs(Tracefs &&o) noexcept : mounted_(std::exchange(o.mounted_, false)) {}
  ~Tracefs() {
    if (mounted_)
      ::umount2(kTracefs, MNT_DETACH);
  }

 private:
  Tracefs() = default;
  bool mounted_ = false;
};

// The offset of `field` in a tracepoint's record, from its format file.
Result<uint32_t> field_offset(const std::string &event, const std::string &field) {
  std::string path = std::string(kTracefs) + "/events/" + event + "/format";
  std::ifstream in(path);
  if (!in)
    return make_error(ENOENT, "cannot read {}", path);
  for (std::string line; std::getline(in, line);) {
    auto f = line.find("field:");
    auto semi = line.find(';', f);
    if (f == std::string::npos || semi == std::string::npos)
      continue;
    std::string decl = line.substr(f + 6, semi - f - 6);
    auto sp = decl.find_last_of(" *");
    if (sp == std::string::npos || decl.substr(sp + 1) != field)
      continue;
    auto o = line.find("offset:");
    if (o == std::string::npos)
      break;
    return static_cast<uint32_t>(std::stoul(line.substr(o + 7)));
  }
  return make_error(ENOENT, "{} has no field {} in {}", event, field, path);
}

}  // namespace

struct ServiceProbes::Impl {
  std::string bpffs;
  bpf::ObserveTcSkel tc;
  std::optional<bpf::ObserveTraceSkel> trace;
  std::optional<bpf::ObserveTpSkel> tp;
};

ServiceProbes::ServiceProbes(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
ServiceProbes::~ServiceProbes() = default;

Result<std::unique_ptr<ServiceProbes>> ServiceProbes::load(const std::string &bpffs,
                                                           const std::string &tcp_mode) {
  if (auto st = bpf::ensure_bpffs(bpffs); !st)
    return st.error();
  bpf::PinSet pins = observe_pins(bpffs);
  if (auto st = bpf::make_private_dir(pins.dir()); !st)
    return st.error();
  auto tc = bpf::ObserveTcSkel::open("observe_tc");
  if (!tc)
    return tc.error();
  // Counters and flows carry over from an earlier run when the pins are there.
  for (const auto &name : pins.names()) {
    // libbpf reuses what is pinned there: only a pin we trust.
    std::string path = pins.path(name);
    if (bpf::exists(path))
      if (auto st = bpf::check_pin_owner(path); !st)
        return st.error();
    bpf_map *m = bpf_object__find_map_by_name((*tc)->obj, pins.object(name).c_str());
    if (!m || bpf_map__set_pin_path(m, path.c_str()))
      return make_error(EINVAL, "set the pin path of {}", pins.object(name));
  }
  if (auto st = tc->load(); !st)
    return st.error().context("load the tc latency probes");
  for (const auto &name : pins.names())
    ::chmod(pins.path(name).c_str(), 0600);
  auto impl = std::make_unique<Impl>(Impl{bpffs, std::move(*tc), std::nullopt, std::nullopt});
  std::unique_ptr<ServiceProbes> p(new ServiceProbes(std::move(impl)));
  if (auto st = p->load_tcp(tcp_mode); !st)
    return st.error();
  return p;
}

namespace {

// The TCP probes with BTF: fexit or tp_btf for retransmits.
Result<bpf::ObserveTraceSkel> load_btf_probes(bool fexit, const bpf::ObserveTcSkel &tc) {
  auto s = bpf::ObserveTraceSkel::open("observe_trace");
  if (!s)
    return s.error();
  struct stat ns {};
  if (::stat("/proc/self/ns/net", &ns) == 0)
    (*s)->rodata->bg_netns_ino = static_cast<__u32>(ns.st_ino);
  bpf_program__set_autoload((*s)->progs.bg_obs_retransmit, fexit);
  bpf_program__set_autoload((*s)->progs.bg_obs_retransmit_btf, !fexit);
  if (auto st = share_maps(*s, tc); !st)
    return st.error();
  if (auto st = s->load(); !st)
    return st.error();
  if (int err = observe_trace__attach(s->get()))
    return bpf::libbpf_error(err, "attach the TCP probes");
  return s;
}

// The TCP probes on classic tracepoints, field offsets read from tracefs.
Result<bpf::ObserveTpSkel> load_tp_probes(const bpf::ObserveTcSkel &tc) {
  auto fs = Tracefs::ensure();
  if (!fs)
    return fs.error();
  auto s = bpf::ObserveTpSkel::open("observe_tp");
  if (!s)
    return s.error();
  struct Field {
    const char *event, *field;
    volatile __u32 *into;
  } fields[] = {{"tcp/tcp_retransmit_skb", "sport", &(*s)->rodata->bg_rt_sport_off},
                {"sock/inet_sock_set_state", "oldstate", &(*s)->rodata->bg_ss_oldstate_off},
                {"sock/inet_sock_set_state", "newstate", &(*s)->rodata->bg_ss_newstate_off},
                {"sock/inet_sock_set_state", "sport", &(*s)->rodata->bg_ss_sport_off},
                {"sock/inet_sock_set_state", "protocol", &(*s)->rodata->bg_ss_protocol_off}};
  for (auto &f : fields) {
    auto off = field_offset(f.event, f.field);
    if (!off)
      return off.error();
    *f.into = *off;
  }
  if (auto st = share_maps(*s, tc); !st)
    return st.error();
  if (auto st = s->load(); !st)
    return st.error();
  if (int err = observe_tp__attach(s->get()))
    return bpf::libbpf_error(err, "attach the TCP tracepoints");
  return s;
}

}  // namespace

Status ServiceProbes::try_tcp(const std::string &m) {
  if ((m == "fexit" || m == "tp_btf") && !bpf::exists("/sys/kernel/btf/vmlinux"))
    return make_error(ENOENT, "the kernel has no BTF (/sys/kernel/btf/vmlinux)");
  if (m == "fexit" || m == "tp_btf") {
    auto s = load_btf_probes(m == "fexit", impl_->tc);
    if (!s)
      return s.error();
    impl_->trace.emplace(std::move(*s));
    return {};
  }
  auto s = load_tp_probes(impl_->tc);
  if (!s)
    return s.error();
  impl_->tp.emplace(std::move(*s));
  return {};
}

Status ServiceProbes::load_tcp(const std::string &mode) {
  if (mode == "off") {
    tcp_mode_ = "off";
    tcp_note_ = "tcp_probes is off: no retransmit or accept counts";
    return {};
  }
  std::string why;
  const std::vector<std::string> order =
      mode == "auto" ? std::vector<std::string>{"fexit", "tp_btf", "tracepoint"}
                     : std::vector<std::string>{mode};
  for (const auto &m : order) {
    Status st = try_tcp(m);
    if (st) {
      tcp_mode_ = m;
      tcp_note_ = why;
      return {};
    }
    if (mode != "auto")
      return st.error().context(fmt::format("load the TCP probes as {} (tcp_probes: {})", m, mode));
    why += fmt::format("{}{}: {}", why.empty() ? "" : "; ", m, st.error().what());
  }
  tcp_mode_ = "off";
  tcp_note_ = "no TCP probe could load (" + why + "): no retransmit or accept counts";
  return {};
}

Status ServiceProbes::set_services(const std::vector<core::ServiceConfig> &services) {
  if (services.size() >= BG_OBS_SERVICES_MAX)
    return make_error(EINVAL, "{} services: at most {}", services.size(), BG_OBS_SERVICES_MAX - 1);
  bpf::Map<__u32, bg_obs_service> ports(bpf_map__fd(impl_->tc->maps.bg_obs_services));
  bpf::Map<__u32, bg_obs_service_info> info(bpf_map__fd(impl_->tc->maps.bg_obs_info));
  // Ports of services no longer configured stop counting first.
  std::vector<bool> wanted(65536, false);
  for (const auto &s : services)
    wanted[s.port] = true;
  auto all = ports.dump();
  if (!all)
    return all.error();
  for (const auto &[port, svc] : *all)
    if (svc.id && !wanted[port])
      if (auto st = ports.update(port, bg_obs_service{}); !st)
        return st;
  auto stats = bpf::PerCpuMap<__u32, bg_obs_stats>(bpf_map__fd(impl_->tc->maps.bg_obs_stats));
  for (uint32_t id = 1; id < BG_OBS_SERVICES_MAX; id++) {
    bg_obs_service_info in{};
    if (id <= services.size()) {
      const auto &s = services[id - 1];
      std::strncpy(in.name, s.name.c_str(), sizeof(in.name) - 1);
      in.port = s.port;
      in.flags = s.http ? BG_OBS_HTTP : 0;
    }
    auto old = info.lookup(id);
    if (!old)
      return old.error();
    // A slot that now names another service starts from zero.
    if (*old && ((*old)->port != in.port || std::strcmp((*old)->name, in.name) != 0))
      if (auto st = stats.update_all(id, bg_obs_stats{}); !st)
        return st;
    if (auto st = info.update(id, in); !st)
      return st;
  }
  for (uint32_t id = 1; id <= services.size(); id++) {
    const auto &s = services[id - 1];
    bg_obs_service v{static_cast<__u16>(id), static_cast<__u16>(s.http ? BG_OBS_HTTP : 0)};
    if (auto st = ports.update(s.port, v); !st)
      return st;
  }
  return {};
}

Status ServiceProbes::attach(const std::string &iface) {
  if (tc_.count(iface))
    return {};
  auto idx = bpf::ifindex_of(iface);
  if (!idx)
    return idx.error();
  auto in = bpf::TcFilter::attach(ingress_prog_fd(), *idx, iface, bpf::TcDirection::kIngress,
                                  BG_OBS_TC_PRIORITY);
  if (!in)
    return in.error();
  auto out = bpf::TcFilter::attach(egress_prog_fd(), *idx, iface, bpf::TcDirection::kEgress,
                                   BG_OBS_TC_PRIORITY);
  if (!out)
    return out.error();
  tc_.emplace(iface, std::make_pair(std::move(*in), std::move(*out)));
  return {};
}

void ServiceProbes::detach(const std::string &iface) {
  tc_.erase(iface);
}

std::vector<std::string> ServiceProbes::attached() const {
  std::vector<std::string> out;
  for (const auto &[name, _] : tc_)
    out.push_back(name);
  return out;
}

void ServiceProbes::release_all() {
  for (auto &[_, f] : tc_) {
    f.first.release();
    f.second.release();
  }
  tc_.clear();
}

int ServiceProbes::ingress_prog_fd() const {
  return bpf_program__fd(impl_->tc->progs.bg_obs_tc_ingress);
}
int ServiceProbes::egress_prog_fd() const {
  return bpf_program__fd(impl_->tc->progs.bg_obs_tc_egress);
}

Result<std::vector<ServiceStats>> read_services(const std::string &bpffs) {
  std::vector<ServiceStats> out;
  std::string dir = observe_pin_dir(bpffs);
  if (!bpf::exists(bpf::pin_path(dir, BG_OBS_PIN_INFO)))
    return out;
  auto info =
      bpf::Map<__u32, bg_obs_service_info>::open_pinned(bpf::pin_path(dir, BG_OBS_PIN_INFO));
  if (!info)
    return info.error();
  auto stats =
      bpf::PerCpuMap<__u32, bg_obs_stats>::open_pinned(bpf::pin_path(dir, BG_OBS_PIN_STATS));
  if (!stats)
    return stats.error();
  for (uint32_t id = 1; id < BG_OBS_SERVICES_MAX; id++) {
    auto in = info->lookup(id);
    if (!in)
      return in.error();
    if (!*in || !(*in)->port)
      continue;
    ServiceStats s;
    s.id = id;
    s.name = std::string((*in)->name, strnlen((*in)->name, sizeof((*in)->name)));
    s.port = (*in)->port;
    s.http = (*in)->flags & BG_OBS_HTTP;
    auto per_cpu = stats->lookup(id);
    if (!per_cpu)
      return per_cpu.error();
    // Every field is a __u64 counter: sum them as such.
    constexpr size_t kWords = sizeof(bg_obs_stats) / sizeof(uint64_t);
    auto *sum = reinterpret_cast<uint64_t *>(&s.total);
    for (const auto &c : *per_cpu) {
      const auto *w = reinterpret_cast<const uint64_t *>(&c);
      for (size_t i = 0; i < kWords; i++)
        sum[i] += w[i];
    }
    out.push_back(std::move(s));
  }
  return out;
}

Result<int64_t> count_flows(const std::string &bpffs) {
  std::string path = bpf::pin_path(observe_pin_dir(bpffs), BG_OBS_PIN_FLOWS);
  if (!bpf::exists(path))
    return int64_t{-1};
  auto m = bpf::Map<bg_obs_flow_key, bg_obs_flow>::open_pinned(path);
  if (!m)
    return m.error();
  auto all = m->dump();
  if (!all)
    return all.error();
  return static_cast<int64_t>(all->size());
}

void remove_observe_pins(const std::string &bpffs) {
  (void)observe_pins(bpffs).remove();
}

double bucket_upper_seconds(uint32_t bucket) {
  return std::ldexp(1.0, static_cast<int>(bucket)) * 1e-6;
}

double quantile_seconds(const __u64 (&hist)[BG_OBS_HIST_BUCKETS], double q) {
  uint64_t total = 0;
  for (uint64_t c : hist)
    total += c;
  if (!total)
    return 0;
  double want = q * static_cast<double>(total);
  uint64_t cum = 0;
  for (uint32_t i = 0; i < BG_OBS_HIST_BUCKETS; i++) {
    cum += hist[i];
    if (static_cast<double>(cum) >= want)
      return bucket_upper_seconds(i);
  }
  return bucket_upper_seconds(BG_OBS_HIST_BUCKETS - 1);
}

}  // namespace bpfgate::agent
