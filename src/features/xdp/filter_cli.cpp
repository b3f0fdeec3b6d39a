// The XDP filter's subcommands: attach, set, detach, upgrade, status, top.
#include "bpf/xdp.hpp"
#include "cli/registry.hpp"
#include "util/log.hpp"

namespace bpfgate::cli {

namespace {
// CLI11 validator for the XDP mode names.
std::string check_mode(const std::string &s) {
  return bpf::parse_xdp_mode(s) ? "" : "mode must be auto, native, generic or offload";
}

struct AttachArgs {
  agent::AttachOptions attach;
  std::string mode = "auto";
  std::string how = "direct";
  unsigned priority = bpf::kDefaultXdpPriority;
  uint64_t rate = core::kDefaultRatePps, burst = 0;
  uint64_t new_sources = core::kDefaultNewSourcesPps;
  uint64_t unproven = core::kDefaultUnprovenPps;
  std::string unparsed = "pass";
};

// Where and how: the interface, the XDP mode, direct or through the dispatcher.
void add_placement_options(CLI::App *a, AttachArgs &o) {
  a->add_option("IFACE", o.attach.iface, "interface")->required()->check(iface_name());
  a->add_option("--mode", o.mode, "auto|native|generic|offload")
      ->check(check_mode)
      ->capture_default_str();
  a->add_option("--attach", o.how,
                "direct (bpfgate alone on IFACE) or dispatcher (libxdp's, beside other XDP "
                "programs)")
      ->check(CLI::IsMember({"direct", "dispatcher"}))
      ->capture_default_str();
  a->add_option("--priority", o.priority,
                "with --attach dispatcher: run priority among the interface's XDP programs, "
                "lower runs first")
      ->check(CLI::Range(0U, 1000000U))
      ->capture_default_str();
}

// What the filter does: its limits, unparsed frames, the SYN answer.
void add_policy_options(CLI::App *a, AttachArgs &o) {
  a->add_option("--rate", o.rate, "packets per second allowed per source")->capture_default_str();
  a->add_option("--burst", o.burst, "packets a source may send at once (default: rate)");
  a->add_option("--max-sources", o.attach.max_sources, "size of the per-source table")
      ->capture_default_str();
  a->add_option("--new-sources", o.new_sources,
                "sources without state let in per second, all CPUs together (0: no bound)")
      ->check(CLI::Range(uint64_t{0}, uint64_t{BG_RATE_MAX_PPS}))
      ->capture_default_str();
  a->add_option("--unproven", o.unproven,
                "frames of sources that have not proved themselves passed per second, all of "
                "them and all CPUs together (0: no bound)")
      ->check(CLI::Range(uint64_t{0}, uint64_t{BG_RATE_MAX_PPS}))
      ->capture_default_str();
  a->add_option("--unparsed", o.unparsed, "verdict for frames that cannot be parsed: pass|drop")
      ->check(CLI::IsMember({"pass", "drop"}))
      ->capture_default_str();
  a->add_flag("--syn-proxy", o.attach.syn_proxy,
              "answer held SYNs in the datapath with the kernel's cookies (limits.syn_proxy: "
              "needs net.ipv4.tcp_syncookies=2)");
  a->add_flag("--force", o.attach.force, "replace an XDP program bpfgate did not attach");
}

int run_attach(const Globals &g, AttachArgs &o, const CLI::App *a) {
  o.attach.attach = *agent::parse_xdp_attach(o.how);
  if (a->count("--priority") && o.attach.attach != agent::XdpAttach::kDispatcher) {
    log::error(
        "attach: --priority orders the programs of libxdp's dispatcher: give it with "
        "--attach dispatcher");
    return 2;
  }
  o.attach.priority = o.priority;
  o.attach.mode = *bpf::parse_xdp_mode(o.mode);
  o.attach.limits = core::Limits{o.rate, o.burst ? o.burst : o.rate};
  o.attach.new_sources = core::Limits{o.new_sources, o.new_sources};
  o.attach.unproven = core::Limits{o.unproven, o.unproven};
  o.attach.unparsed_verdict = o.unparsed == "drop" ? BG_VERDICT_DROP : BG_VERDICT_PASS;
  return cmd_attach(g, o.attach);
}

void add_attach(Registry &r) {
  auto &o = r.keep<AttachArgs>();
  auto *a = r.app().add_subcommand("attach", "load the XDP filter and attach it to an interface");
  add_placement_options(a, o);
  add_policy_options(a, o);
  r.add(a, [&o, a, &g = r.globals()] { return run_attach(g, o, a); });
}

void add_set(Registry &r) {
  struct Opts {
    std::string iface;
    uint64_t rate = 0, burst = 0, new_sources = 0, unproven = 0;
  };
  auto &o = r.keep<Opts>();
  auto *s = r.app().add_subcommand("set", "change the limits of an attached filter");
  s->add_option("IFACE", o.iface, "interface")->required()->check(iface_name());
  s->add_option("--rate", o.rate, "packets per second allowed per source");
  s->add_option("--burst", o.burst, "packets a source may send at once");
  s->add_option("--new-sources", o.new_sources,
                "sources without state let in per second, all CPUs together (0: no bound)")
      ->check(CLI::Range(uint64_t{0}, uint64_t{BG_RATE_MAX_PPS}));
  s->add_option("--unproven", o.unproven,
                "frames of sources that have not proved themselves passed per second, all of "
                "them and all CPUs together (0: no bound)")
      ->check(CLI::Range(uint64_t{0}, uint64_t{BG_RATE_MAX_PPS}));
  r.add(s, [&o, s, &g = r.globals()] {
    if (!s->count("--rate") && !s->count("--burst") && !s->count("--new-sources") &&
        !s->count("--unproven")) {
      // A usage error (exit 2), reported like every error: JSON under -j.
      report(make_error(EINVAL, "set: give --rate, --burst, --new-sources and/or --unproven"));
      return 2;
    }
    std::optional<uint64_t> rate, burst, new_sources, unproven;
    if (s->count("--new-sources"))
      new_sources = o.new_sources;
    if (s->count("--unproven"))
      unproven = o.unproven;
    if (s->count("--rate"))
      rate = o.rate;
    if (s->count("--burst"))
      burst = o.burst;
    return cmd_set(g, o.iface, rate, burst, new_sources, unproven);
  });
}
}  // namespace

void add_filter_commands(Registry &r) {
  add_attach(r);
  add_set(r);

  auto &detach_iface = r.keep<std::string>();
  auto *d = r.app().add_subcommand("detach", "detach the filter and remove its pins");
  d->add_option("IFACE", detach_iface, "interface")->required()->check(iface_name());
  r.add(d, [&detach_iface, &g = r.globals()] { return cmd_detach(g, detach_iface); });

  auto &upgrade_iface = r.keep<std::string>();
  auto *u = r.app().add_subcommand(
      "upgrade", "swap this binary's filter program in for the running one, keeping its maps");
  u->add_option("IFACE", upgrade_iface, "interface")->required()->check(iface_name());
  r.add(u, [&upgrade_iface, &g = r.globals()] { return cmd_upgrade(g, upgrade_iface); });

  struct BypassArgs {
    std::string iface, state;
  };
  auto &bypass = r.keep<BypassArgs>();
  auto *b = r.app().add_subcommand(
      "bypass", "on: the filter passes every frame at once (counted); off: it filters again");
  b->add_option("IFACE", bypass.iface, "interface")->required()->check(iface_name());
  b->add_option("STATE", bypass.state, "on|off")->required()->check(CLI::IsMember({"on", "off"}));
  r.add(b,
        [&bypass, &g = r.globals()] { return cmd_bypass(g, bypass.iface, bypass.state == "on"); });

  auto &status_iface = r.keep<std::string>();
  auto *st = r.app().add_subcommand("status", "what is attached where, mode, program, limits");
  st->add_option("IFACE", status_iface, "only this interface")->check(iface_name());
  r.add(st, [&status_iface, &g = r.globals()] { return cmd_status(g, status_iface); });

  auto &top = r.keep<TopOptions>();
  auto *t =
      r.app().add_subcommand("top", "per-source packets, rates, drops and bytes, busiest first");
  t->add_option("IFACE", top.iface, "interface (default: all attached)")->check(iface_name());
  t->add_option("-i,--interval", top.interval_s, "seconds between refreshes")
      ->check(CLI::Range(0.05, 3600.0))
      ->capture_default_str();
  t->add_option("-c,--count", top.count, "refreshes before exiting (default: until Ctrl-C)");
  t->add_option("-n,--rows", top.rows, "sources shown")->capture_default_str();
  t->add_flag("--plain", top.plain,
              "plain text frames, even on a terminal (default off a terminal)");
  r.add(t, [&top, &g = r.globals()] { return cmd_top(g, top); });
}

}  // namespace bpfgate::cli
