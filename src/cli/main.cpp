// bpfgate: `bpfgate [-j] [-v] COMMAND [args]`. Each group of subcommands
// registers itself (cli/registry.hpp); this file parses and dispatches.
#include <CLI/CLI.hpp>

#include "bpf/error.hpp"
#include "cli/registry.hpp"
#include "util/log.hpp"

using namespace bpfgate;

int main(int argc, char **argv) {
  CLI::App app{"bpfgate: eBPF gateway accelerator (XDP flood filter)", "bpfgate"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "bpfgate " BPFGATE_VERSION);
  // Global flags anywhere on the line: `bpfgate status eth0 -j` as well as
  // `bpfgate -j status eth0` (subcommands inherit this and pass up what they
  // do not know; an unknown option is still a usage error).
  app.fallthrough();
  cli::Globals g;
  app.add_flag("-j,--json", g.json, "print JSON");
  app.add_flag("-v,--verbose", g.verbose, "print debug messages, libbpf's included");
  app.add_option("--bpffs", g.bpffs, "bpffs mount point holding bpfgate's pins")
      ->capture_default_str();

  cli::Registry registry(app, g);
  cli::add_filter_commands(registry);
  cli::add_policy_commands(registry);
  cli::add_observe_commands(registry);
  cli::add_accel_commands(registry);
  cli::add_tc_commands(registry);
  cli::add_lb_commands(registry);
  cli::add_fleet_commands(registry);

  try {
    app.parse(argc, argv);
  } catch (const cli::BadInterfaceName &e) {
    // Refused like any other bad request, before anything ran.
    cli::set_json_errors(g.json);
    return cli::fail(Error(EINVAL, e.what()));
  } catch (const CLI::ParseError &e) {
    int rc = app.exit(e);
    return rc == 0 ? 0 : 2;
  }
  cli::set_json_errors(g.json);
  log::set_level(g.verbose ? log::Level::kDebug : log::Level::kInfo);
  bpf::install_libbpf_logger();

  for (const auto &c : registry.commands())
    if (*c.sub)
      return c.run();
  return 2;
}
