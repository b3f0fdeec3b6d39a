// The agent and the policy: run, check, reload, block, unblock, list.
#include <unistd.h>

#include <nlohmann/json.hpp>

#include "features/fleet/origins.hpp"
#include "features/xdp/blocklist.hpp"
#include "agent/daemon.hpp"
#include "cli/commands.hpp"
#include "cli/registry.hpp"
#include "core/duration.hpp"
#include "util/audit.hpp"
#include "util/log.hpp"

namespace bpfgate::cli {

using nlohmann::json;

namespace {

int cmd_run(const Globals &g, const std::string &config, bool keep) {
  agent::DaemonOptions o{config, g.bpffs, keep};
  auto d = agent::Daemon::start(o);
  if (!d)
    return fail(d.error());
  if (auto st = (*d)->run(); !st)
    return fail(st.error());
  return 0;
}

int cmd_check(const Globals &g, const std::string &file) {
  auto c = core::load_config(file);
  if (!c)
    return fail(c.error());
  if (auto st = agent::check_environment(*c); !st)
    return fail(st.error());
  if (g.json)
    fmt::print("{}\n", json{{"config", file},
                            {"ok", true},
                            {"interfaces", c->interfaces.size()},
                            {"allow", c->allow.size()},
                            {"deny", c->deny.size()},
                            {"rules", c->rules.size()}}
                           .dump());
  else
    fmt::print("{}: ok ({} interface(s), {} allow and {} deny prefixes, {} rules)\n", file,
               c->interfaces.size(), c->allow.size(), c->deny.size(), c->rules.size());
  return 0;
}

// Sends one command to the agent's control socket; prints its answer.
int cmd_control(const std::string &path, const std::string &cmd) {
  auto reply = ask_agent(path, cmd);
  if (!reply)
    return fail(reply.error());
  fmt::print("{}\n", reply->empty() ? "ok" : *reply);
  return 0;
}

// The filters a block/unblock/list works on: one interface, or all attached.
Result<std::vector<agent::PinnedFilter>> filters_of(const Globals &g, const std::string &iface) {
  std::vector<std::string> names;
  if (!iface.empty()) {
    names.push_back(iface);
  } else {
    auto all = agent::pinned_interfaces(g.bpffs);
    if (!all)
      return all.error();
    names = *all;
  }
  if (names.empty())
    return make_error(ENOENT, "bpfgate is not attached to any interface; see `bpfgate attach`");
  std::vector<agent::PinnedFilter> out;
  for (const auto &n : names) {
    auto f = agent::PinnedFilter::open(g.bpffs, n);
    if (!f)
      return f.error();
    out.push_back(std::move(*f));
  }
  return out;
}

struct BlockOpts {
  std::string target, ttl, iface;
};

int cmd_block(const Globals &g, const BlockOpts &o, bool add) {
  auto p = core::parse_prefix(o.target);
  if (!p)
    return fail(p.error());
  uint64_t ttl = 0;
  if (!o.ttl.empty()) {
    auto t = core::parse_duration_ns(o.ttl);
    if (!t)
      return fail(t.error().context("--ttl"));
    if (*t == 0)
      return fail(Error(EINVAL,
                        "--ttl 0 would expire at once; leave --ttl out to block until "
                        "`bpfgate unblock`"));
    ttl = *t;
  }
  auto filters = filters_of(g, o.iface);
  if (!filters)
    return fail(filters.error());
  int rc = 0;
  for (auto &f : *filters) {
    if (add) {
      if (auto st = agent::block(f.datapath(), *p, ttl); !st)
        return fail(st.error().context("block on " + f.iface()));
      audit::Entry("block", audit::by_cli())
          .set("iface", f.iface())
          .set("prefix", core::format_prefix(*p))
          .set("reason", "manual")
          .set("ttl", ttl ? core::format_duration_ns(ttl) : "none")
          .write();
      if (!g.json)
        fmt::print("{}: blocked {}{}\n", f.iface(), core::format_prefix(*p),
                   ttl ? " for " + core::format_duration_ns(ttl) : "");
    } else {
      auto gone = agent::unblock(f.datapath(), *p);
      if (!gone)
        return fail(gone.error().context("unblock on " + f.iface()));
      if (!*gone) {
        report(Error(0, fmt::format("{}: {} is not on the blocklist (see `bpfgate list`)",
                                    f.iface(), core::format_prefix(*p))));
        rc = 1;
      } else {
        audit::Entry("unblock", audit::by_cli())
            .set("iface", f.iface())
            .set("prefix", core::format_prefix(*p))
            .write();
        if (!g.json)
          fmt::print("{}: unblocked {}\n", f.iface(), core::format_prefix(*p));
      }
    }
  }
  if (g.json)
    fmt::print(
        "{}\n",
        json{{"prefix", core::format_prefix(*p)}, {add ? "blocked" : "unblocked", rc == 0}}.dump());
  return rc;
}

int cmd_list(const Globals &g, const std::string &iface) {
  auto filters = filters_of(g, iface);
  if (!filters)
    return fail(filters.error());
  json arr = json::array();
  auto origins = fleet::open_origins(g.bpffs);  // the fleet entries' nodes, if the fleet ran
  for (auto &f : *filters) {
    auto blocks = agent::list_blocks(f.datapath());
    if (!blocks)
      return fail(blocks.error());
    std::sort(blocks->begin(), blocks->end(),
              [](const auto &a, const auto &b) { return a.prefix < b.prefix; });
    if (!g.json)
      fmt::print("{}: {} blocked\n", f.iface(), blocks->size());
    for (const auto &b : *blocks) {
      std::string reason = agent::to_string(static_cast<bg_block_reason>(b.value.reason));
      std::string origin =
          b.value.reason == BG_BLOCK_FLEET ? fleet::origin_of(origins, b.prefix) : "";
      if (g.json) {
        json e = {{"iface", f.iface()},
                  {"prefix", core::format_prefix(b.prefix)},
                  {"reason", reason},
                  {"drops", b.value.drops},
                  {"expired", b.expired}};
        e["ttl_s"] = b.value.expires_ns ? json(b.remaining_ns / 1e9) : json(nullptr);
        if (b.value.reason == BG_BLOCK_FLEET)
          e["origin"] = origin;
        arr.push_back(e);
      } else {
        fmt::print(
            "  {:<43} {:<7} {:>12} drops  {}{}\n", core::format_prefix(b.prefix), reason,
            b.value.drops,
            !b.value.expires_ns ? "no expiry"
            : b.expired         ? "expired"
                                : core::format_duration_ns(b.remaining_ns) + " left",
            b.value.reason == BG_BLOCK_FLEET ? "  from " + (origin.empty() ? "?" : origin) : "");
      }
    }
  }
  if (g.json)
    fmt::print("{}\n", json{{"blocked", arr}}.dump());
  return 0;
}

}  // namespace

void add_policy_commands(Registry &r) {
  struct RunOpts {
    std::string config;
    bool keep = false;
  };
  auto &ro = r.keep<RunOpts>();
  auto *run =
      r.app().add_subcommand("run", "run the agent: attach, apply the config, keep it in step");
  run->add_option("-c,--config", ro.config, "config file (YAML)")->required();
  run->add_flag("--keep-datapath", ro.keep, "leave the datapath running when the agent stops");
  r.add(run, [&ro, &g = r.globals()] { return cmd_run(g, ro.config, ro.keep); });

  auto &check_file = r.keep<std::string>();
  auto *check = r.app().add_subcommand("check", "validate a config file without applying it");
  check->add_option("FILE", check_file, "config file (YAML)")->required();
  r.add(check, [&check_file, &g = r.globals()] { return cmd_check(g, check_file); });

  auto &socket = r.keep<std::string>();
  socket = "/run/bpfgate/agent.sock";
  auto *reload = r.app().add_subcommand("reload", "make the running agent re-read its config");
  reload->add_option("--socket", socket, "the agent's control socket")->capture_default_str();
  r.add(reload, [&socket] { return cmd_control(socket, "reload"); });

  for (bool add : {true, false}) {
    auto &bo = r.keep<BlockOpts>();
    auto *b = r.app().add_subcommand(add ? "block" : "unblock",
                                     add ? "put an address or prefix on the blocklist"
                                         : "take an address or prefix off the blocklist");
    b->add_option("ADDR", bo.target, "address or CIDR prefix")->required();
    if (add)
      b->add_option("--ttl", bo.ttl, "release after this long (e.g. 30s, 10m, 1h)");
    b->add_option("--iface", bo.iface, "only this interface (default: every attached one)")
        ->check(iface_name());
    r.add(b, [&bo, add, &g = r.globals()] { return cmd_block(g, bo, add); });
  }

  auto &list_iface = r.keep<std::string>();
  auto *list = r.app().add_subcommand("list", "the blocklist, with reason and remaining TTL");
  list->add_option("--iface", list_iface, "only this interface")->check(iface_name());
  r.add(list, [&list_iface, &g = r.globals()] { return cmd_list(g, list_iface); });
}

}  // namespace bpfgate::cli
