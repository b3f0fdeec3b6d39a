// bpfgate: `bpfgate [-j] [-v] COMMAND [args]`.
#include <CLI/CLI.hpp>

#include <string>

#include "bpf/error.hpp"
#include "bpf/xdp.hpp"
#include "cli/commands.hpp"
#include "util/log.hpp"

using namespace bpfgate;

namespace {
// CLI11 validator for the XDP mode names.
std::string check_mode(const std::string &s) {
  return bpf::parse_xdp_mode(s) ? "" : "mode must be auto, native, generic or offload";
}
}  // namespace

int main(int argc, char **argv) {
  CLI::App app{"bpfgate: eBPF gateway accelerator (XDP flood filter)", "bpfgate"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "bpfgate 0.1.0");
  cli::Globals g;
  app.add_flag("-j,--json", g.json, "print JSON");
  app.add_flag("-v,--verbose", g.verbose, "print debug messages, libbpf's included");
  app.add_option("--bpffs", g.bpffs, "bpffs mount point holding bpfgate's pins")
      ->capture_default_str();

  agent::AttachOptions attach;
  std::string mode = "auto";
  uint64_t rate = core::kDefaultRatePps, burst = 0;
  std::string unparsed = "pass";
  auto *a = app.add_subcommand("attach", "load the XDP filter and attach it to an interface");
  a->add_option("IFACE", attach.iface, "interface")->required();
  a->add_option("--mode", mode, "auto|native|generic|offload")
      ->check(check_mode)
      ->capture_default_str();
  a->add_option("--rate", rate, "packets per second allowed per source")->capture_default_str();
  a->add_option("--burst", burst, "packets a source may send at once (default: rate)");
  a->add_option("--max-sources", attach.max_sources, "size of the per-source table")
      ->capture_default_str();
  a->add_option("--unparsed", unparsed, "verdict for frames that cannot be parsed: pass|drop")
      ->check(CLI::IsMember({"pass", "drop"}))
      ->capture_default_str();
  a->add_flag("--force", attach.force, "replace an XDP program bpfgate did not attach");

  std::string set_iface;
  uint64_t set_rate = 0, set_burst = 0;
  auto *s = app.add_subcommand("set", "change the limits of an attached filter");
  s->add_option("IFACE", set_iface, "interface")->required();
  s->add_option("--rate", set_rate, "packets per second allowed per source");
  s->add_option("--burst", set_burst, "packets a source may send at once");

  std::string detach_iface;
  auto *d = app.add_subcommand("detach", "detach the filter and remove its pins");
  d->add_option("IFACE", detach_iface, "interface")->required();

  auto *st = app.add_subcommand("status", "what is attached where, mode, program, limits");

  cli::TopOptions top;
  auto *t = app.add_subcommand("top", "per-source packets, rates, drops and bytes, busiest first");
  t->add_option("IFACE", top.iface, "interface (default: all attached)");
  t->add_option("-i,--interval", top.interval_s, "seconds between refreshes")
      ->check(CLI::Range(0.05, 3600.0))
      ->capture_default_str();
  t->add_option("-c,--count", top.count, "refreshes before exiting (default: until Ctrl-C)");
  t->add_option("-n,--rows", top.rows, "sources shown")->capture_default_str();

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError &e) {
    int rc = app.exit(e);
    return rc == 0 ? 0 : 2;
  }
  log::set_level(g.verbose ? log::Level::kDebug : log::Level::kInfo);
  bpf::install_libbpf_logger();

  if (*a) {
    attach.mode = *bpf::parse_xdp_mode(mode);
    attach.limits = core::Limits{rate, burst ? burst : rate};
    attach.unparsed_verdict = unparsed == "drop" ? BG_VERDICT_DROP : BG_VERDICT_PASS;
    return cli::cmd_attach(g, attach);
  }
  if (*s) {
    if (!s->count("--rate") && !s->count("--burst")) {
      log::error("set: give --rate and/or --burst");
      return 2;
    }
    std::optional<uint64_t> r, b;
    if (s->count("--rate"))
      r = set_rate;
    if (s->count("--burst"))
      b = set_burst;
    return cli::cmd_set(g, set_iface, r, b);
  }
  if (*d)
    return cli::cmd_detach(g, detach_iface);
  if (*st)
    return cli::cmd_status(g);
  if (*t)
    return cli::cmd_top(g, top);
  return 2;
}
