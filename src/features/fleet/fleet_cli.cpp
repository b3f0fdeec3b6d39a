// The fleet's verbs: `bpfgate fleet status [-j]`, asked of the running agent
// through its control socket (the counters live in the agent), and `bpfgate
// fleet unblock CIDR`, an operator's action spoken to etcd directly with an
// operator's credential: every node's key of CIDR deleted in one transaction;
// `bpfgate fleet never-block add|remove CIDR` and `list`, the fleet's
// never-block list (PREFIX@never/), an operator's too, the same way.
#include <nlohmann/json.hpp>

#include <cmath>
#include <cstring>
#include <ctime>
#include <fstream>
#include <set>

#include "bpf/fd.hpp"
#include "cli/commands.hpp"
#include "cli/registry.hpp"
#include "core/config.hpp"
#include "features/fleet/etcd_client.hpp"
#include "features/fleet/fleet.hpp"
#include "features/fleet/fleet_entry.hpp"
#include "util/audit.hpp"

namespace bpfgate::cli {

namespace {

int cmd_fleet_status(const Globals &g, const std::string &socket) {
  auto r = ask_agent(socket, "fleet status");
  if (!r)
    return fail(r.error());
  auto j = nlohmann::json::parse(*r, nullptr, false);
  if (!j.is_object())
    return fail(Error(EPROTO, "agent: an answer that is no JSON object"));
  if (g.json) {
    fmt::print("{}\n", j.dump());
    return 0;
  }
  fmt::print("fleet: node {}, {}{}, revision {}\n", j.value("node", ""),
             j.value("connected", false) ? "connected to " : "not connected",
             j.value("connected", false) ? j.value("endpoint", "")
                                         : " (" + j.value("last_error", std::string()) + ")",
             j.value("revision", 0));
  fmt::print(
      "  published {}  received {}  applied {}  refused {}  held back {}  queued {}\n"
      "  entries of other nodes in force {}  last lag {:.3f} s\n"
      "  never-block prefixes: {} of the fleet, {} of the config\n"
      "  blocklists scanned {} times, the last in {:.1f} ms (at most every {:.0f} ms)\n",
      j.value("published", 0), j.value("received", 0), j.value("applied", 0), j.value("refused", 0),
      j.value("held_back", 0), j.value("queued", 0), j.value("entries", 0), j.value("lag_s", 0.0),
      j.value("never_block", 0), j.value("never_block_config", 0), j.value("scans", 0),
      j.value("scan_ms", 0.0), j.value("scan_every_ms", 0.0));
  return 0;
}

// What the etcd verbs share: the CIDR, and where etcd is and as whom.
struct EtcdTargetOptions {
  std::string cidr, config;
  std::vector<std::string> endpoints;
  std::string prefix, ca, cert, key, user, password_file;
};

constexpr const char *kDefaultConfig = "/etc/bpfgate/bpfgate.yaml";
constexpr size_t kMaxTxnOps = 128;  // etcd's --max-txn-ops default

// etcd's options and the key prefix: the config's fleet: section (when
// --config is given, or no --endpoints), then the flags over it.
Result<std::pair<fleet::EtcdOptions, std::string>> etcd_target(const EtcdTargetOptions &u) {
  fleet::EtcdOptions o;
  std::string prefix = "/bpfgate/blocks/";
  if (!u.config.empty() || u.endpoints.empty()) {
    std::string file = u.config.empty() ? kDefaultConfig : u.config;
    auto c = core::load_config(file);
    if (!c)
      return c.error();
    if (!c->fleet)
      return make_error(EINVAL, "{}: no fleet: section (give it, or --endpoints)", file);
    o = fleet::etcd_options(*c->fleet);
    prefix = c->fleet->prefix;
  }
  if (!u.endpoints.empty())
    o.endpoints = u.endpoints;
  if (!u.prefix.empty())
    prefix = u.prefix;
  for (auto [flag, field] : {std::pair{&u.ca, &o.ca}, {&u.cert, &o.cert}, {&u.key, &o.key}})
    if (!flag->empty())
      *field = *flag;
  if (!u.user.empty()) {
    o.user = u.user;
    o.password.clear();
  }
  if (!u.password_file.empty()) {
    std::ifstream in(u.password_file);
    if (!in)
      return make_error(EACCES, "--password-file {}: cannot be read", u.password_file);
    std::getline(in, o.password);
  }
  if (!o.user.empty() && o.password.empty())
    return make_error(EINVAL, "etcd user {} without a password: give --password-file", o.user);
  return std::pair{o, prefix};
}

// etcd's `permission denied` said as what to do about it.
Error refused_by_etcd(const Error &e, const std::string &did, const fleet::EtcdOptions &o,
                      const std::string &prefix) {
  if (e.what().find("permission denied") == std::string::npos)
    return e.context(did);
  return Error(EACCES, fmt::format("{} ({}): {} may not write there; use an operator credential "
                                   "(--user, --password-file: a user whose role has readwrite "
                                   "on {})",
                                   did, e.what(), o.user.empty() ? "no user" : o.user, prefix));
}

int cmd_fleet_unblock(const Globals &g, const EtcdTargetOptions &u) {
  auto p = core::parse_prefix(u.cidr);
  if (!p)
    return fail(p.error().context("fleet unblock " + u.cidr));
  auto target = etcd_target(u);
  if (!target)
    return fail(target.error().context("fleet unblock"));
  auto &[o, prefix] = *target;
  fleet::EtcdClient c(o);
  auto keys = c.range(prefix, true, 0, true);
  if (!keys)
    return fail(keys.error().context("fleet unblock: read " + prefix));
  std::vector<fleet::TxnOp> ops;
  std::set<std::string> nodes;
  for (const auto &kv : keys->kvs) {
    auto k = fleet::parse_key(prefix, kv.key);
    if (k && k->prefix == *p) {
      ops.push_back({false, kv.key, "", 0});
      nodes.insert(k->node);
    }
  }
  int64_t rev = keys->revision;
  for (size_t i = 0; i < ops.size(); i += kMaxTxnOps) {
    std::vector<fleet::TxnOp> part(
        ops.begin() + static_cast<long>(i),
        ops.begin() + static_cast<long>(std::min(ops.size(), i + kMaxTxnOps)));
    auto r = c.txn(part);
    if (!r)
      return fail(refused_by_etcd(r.error(),
                                  fmt::format("fleet unblock {}: etcd refused to delete the keys "
                                              "of {}",
                                              core::format_prefix(*p), fmt::join(nodes, ", ")),
                                  o, prefix));
    rev = *r;
  }
  if (!ops.empty())
    audit::Entry("fleet-unblock", audit::by_cli())
        .set("prefix", core::format_prefix(*p))
        .set("nodes", fmt::format("{}", fmt::join(nodes, ",")))
        .set("etcd_user", o.user)
        .set("revision", rev)
        .write();
  if (g.json) {
    fmt::print("{}\n", nlohmann::json{{"prefix", core::format_prefix(*p)},
                                      {"nodes", nodes},
                                      {"deleted", ops.size()},
                                      {"revision", rev}}
                           .dump());
  } else if (ops.empty()) {
    fmt::print("fleet: no node publishes {} under {}: nothing to unblock\n",
               core::format_prefix(*p), prefix);
  } else {
    fmt::print("fleet: unblocked {} everywhere: deleted the keys of {} (revision {})\n",
               core::format_prefix(*p), fmt::join(nodes, ", "), rev);
  }
  return 0;
}

// `fleet never-block add|remove CIDR`: the fleet's never-block key of CIDR
// put (as who, when) or deleted.
int cmd_fleet_never_change(const Globals &g, const EtcdTargetOptions &u, bool add) {
  std::string verb = add ? "add" : "remove";
  std::string did = "fleet never-block " + verb + " " + u.cidr;
  auto p = core::parse_prefix(u.cidr);
  if (!p)
    return fail(p.error().context(did));
  auto target = etcd_target(u);
  if (!target)
    return fail(target.error().context(did));
  auto &[o, prefix] = *target;
  fleet::EtcdClient c(o);
  std::string key = fleet::never_key(prefix, *p);
  std::string by = o.user.empty() ? "cli" : o.user;
  if (!core::valid_node_name(by))
    by = "operator";
  double at = fleet::wall_s();
  // A put (its revision), or a delete (how many keys went: 0, it was not there).
  auto r = add ? c.put(key, fleet::encode_never({*p, by, at})) : c.del(key);
  if (!r)
    return fail(refused_by_etcd(r.error(), did + ": etcd refused to write " + key, o, prefix));
  bool changed = add || *r > 0;
  if (changed)
    audit::Entry("fleet-never-block-" + verb, audit::by_cli())
        .set("prefix", core::format_prefix(*p))
        .set("etcd_user", o.user)
        .write();
  if (g.json)
    fmt::print("{}\n", nlohmann::json{{"prefix", core::format_prefix(*p)},
                                      {"key", key},
                                      {"action", verb},
                                      {"changed", changed}}
                           .dump());
  else if (!changed)
    fmt::print("fleet: {} is not in the never-block list under {}: nothing to remove\n",
               core::format_prefix(*p), fleet::never_prefix(prefix));
  else
    fmt::print("fleet: {} {} the fleet's never-block list: every node {}\n",
               core::format_prefix(*p), add ? "in" : "out of",
               add ? "stops sharing and applying blocks that touch it"
                   : "may share and apply blocks of it again");
  return 0;
}

int cmd_fleet_never_list(const Globals &g, const EtcdTargetOptions &u) {
  auto target = etcd_target(u);
  if (!target)
    return fail(target.error().context("fleet never-block list"));
  auto &[o, prefix] = *target;
  fleet::EtcdClient c(o);
  auto r = c.range(fleet::never_prefix(prefix), true);
  if (!r)
    return fail(r.error().context("fleet never-block list: read " + fleet::never_prefix(prefix)));
  double now = std::floor(fleet::wall_s());  // whole seconds, as before
  auto out = nlohmann::json::array();
  for (const auto &kv : r->kvs) {
    auto e = fleet::decode_never(prefix, kv.key, kv.value, now);
    if (!e) {
      out.push_back({{"key", kv.key}, {"error", e.error().what()}});
      continue;
    }
    out.push_back({{"prefix", core::format_prefix(e->prefix)}, {"by", e->by}, {"at", e->at}});
  }
  if (g.json) {
    fmt::print("{}\n", nlohmann::json{{"never_block", out}, {"revision", r->revision}}.dump());
    return 0;
  }
  if (out.empty())
    fmt::print("fleet: the never-block list under {} is empty\n", fleet::never_prefix(prefix));
  for (const auto &e : out) {
    if (e.contains("error")) {
      fmt::print("{}  (malformed, every node refuses it: {})\n", e["key"].get<std::string>(),
                 e["error"].get<std::string>());
      continue;
    }
    std::time_t t = static_cast<std::time_t>(e["at"].get<double>());
    char when[32] = "";
    std::strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&t));
    fmt::print("{}  by {}  at {}\n", e["prefix"].get<std::string>(), e["by"].get<std::string>(),
               when);
  }
  return 0;
}

// The options every etcd verb takes: the CIDR (when `cidr`), where etcd is, as whom.
void add_etcd_target_options(CLI::App *cmd, EtcdTargetOptions &u, bool cidr) {
  if (cidr)
    cmd->add_option("cidr", u.cidr, "the address or prefix")->required();
  cmd->add_option("--config", u.config,
                  fmt::format("take endpoints, prefix, TLS and auth from this config's fleet: "
                              "(default {} when no --endpoints)",
                              kDefaultConfig));
  cmd->add_option("--endpoints", u.endpoints, "etcd's endpoints, http(s)://host:port")
      ->delimiter(',');
  cmd->add_option("--prefix", u.prefix, "the fleet's key prefix (default /bpfgate/blocks/)");
  cmd->add_option("--ca", u.ca, "TLS: the CA's PEM file");
  cmd->add_option("--cert", u.cert, "TLS: the client certificate's PEM file");
  cmd->add_option("--key", u.key, "TLS: the client key's PEM file");
  cmd->add_option("--user", u.user, "etcd user (an operator's: readwrite on the prefix)");
  cmd->add_option("--password-file", u.password_file, "its password: the file's first line");
}

}  // namespace

void add_fleet_commands(Registry &r) {
  auto *fleet = r.app().add_subcommand("fleet", "the fleet's shared blocklist (etcd)");
  fleet->require_subcommand(1);
  auto &socket = r.keep<std::string>();
  socket = "/run/bpfgate/agent.sock";
  auto *st = fleet->add_subcommand(
      "status", "connection, endpoint, revision, published/received/applied/refused counters");
  st->add_option("--socket", socket, "the agent's control socket")->capture_default_str();
  r.add(st, [&socket, &g = r.globals()] { return cmd_fleet_status(g, socket); });

  auto &u = r.keep<EtcdTargetOptions>();
  auto *ub = fleet->add_subcommand(
      "unblock",
      "an operator's fleet-wide unblock: every node's etcd key of CIDR deleted (talks to etcd)");
  add_etcd_target_options(ub, u, true);
  r.add(ub, [&u, &g = r.globals()] { return cmd_fleet_unblock(g, u); });

  auto *nb = fleet->add_subcommand(
      "never-block",
      "the fleet's never-block list, an operator's: no node shares, applies or aggregates "
      "over its prefixes (talks to etcd)");
  nb->require_subcommand(1);
  auto &nu = r.keep<EtcdTargetOptions>();
  auto *add = nb->add_subcommand("add", "put CIDR in the list (every node at once)");
  add_etcd_target_options(add, nu, true);
  r.add(add, [&nu, &g = r.globals()] { return cmd_fleet_never_change(g, nu, true); });
  auto *rm = nb->add_subcommand("remove", "take CIDR out of the list");
  add_etcd_target_options(rm, nu, true);
  r.add(rm, [&nu, &g = r.globals()] { return cmd_fleet_never_change(g, nu, false); });
  auto *ls = nb->add_subcommand("list", "the list's prefixes, who added each and when");
  add_etcd_target_options(ls, nu, false);
  r.add(ls, [&nu, &g = r.globals()] { return cmd_fleet_never_list(g, nu); });
}

}  // namespace bpfgate::cli
