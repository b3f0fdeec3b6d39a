// The fleet's verbs: `bpfgate fleet status [-j]`, asked of the running agent
// through its control socket (the counters live in the agent), and `bpfgate
// fleet unblock CIDR`, an operator's action spoken to etcd directly with an
// operator's credential: every node's key of CIDR deleted in one transaction.
#include <nlohmann/json.hpp>

#include <cstring>
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
      "  entries of other nodes in force {}  last lag {:.3f} s\n",
      j.value("published", 0), j.value("received", 0), j.value("applied", 0), j.value("refused", 0),
      j.value("held_back", 0), j.value("queued", 0), j.value("entries", 0), j.value("lag_s", 0.0));
  return 0;
}

struct UnblockOptions {
  std::string cidr, config;
  std::vector<std::string> endpoints;
  std::string prefix, ca, cert, key, user, password_file;
};

constexpr const char *kDefaultConfig = "/etc/bpfgate/bpfgate.yaml";
constexpr size_t kMaxTxnOps = 128;  // etcd's --max-txn-ops default

// etcd's options and the key prefix: the config's fleet: section (when
// --config is given, or no --endpoints), then the flags over it.
Result<std::pair<fleet::EtcdOptions, std::string>> unblock_target(const UnblockOptions &u) {
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

int cmd_fleet_unblock(const Globals &g, const UnblockOptions &u) {
  auto p = core::parse_prefix(u.cidr);
  if (!p)
    return fail(p.error().context("fleet unblock " + u.cidr));
  auto target = unblock_target(u);
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
    if (!r && r.error().what().find("permission denied") != std::string::npos)
      return fail(Error(
          EACCES, fmt::format("fleet unblock {}: etcd refused to delete the keys of {} ({}): "
                              "{} may not write other nodes' keys; use an operator "
                              "credential (--user, --password-file: a user whose role "
                              "has readwrite on {})",
                              core::format_prefix(*p), fmt::join(nodes, ", "), r.error().what(),
                              o.user.empty() ? "no user" : o.user, prefix)));
    if (!r)
      return fail(r.error().context("fleet unblock " + core::format_prefix(*p)));
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

  auto &u = r.keep<UnblockOptions>();
  auto *ub = fleet->add_subcommand(
      "unblock",
      "an operator's fleet-wide unblock: every node's etcd key of CIDR deleted (talks to etcd)");
  ub->add_option("cidr", u.cidr, "the address or prefix")->required();
  ub->add_option("--config", u.config,
                 fmt::format("take endpoints, prefix, TLS and auth from this config's fleet: "
                             "(default {} when no --endpoints)",
                             kDefaultConfig));
  ub->add_option("--endpoints", u.endpoints, "etcd's endpoints, http(s)://host:port")
      ->delimiter(',');
  ub->add_option("--prefix", u.prefix, "the fleet's key prefix (default /bpfgate/blocks/)");
  ub->add_option("--ca", u.ca, "TLS: the CA's PEM file");
  ub->add_option("--cert", u.cert, "TLS: the client certificate's PEM file");
  ub->add_option("--key", u.key, "TLS: the client key's PEM file");
  ub->add_option("--user", u.user, "etcd user (an operator's: readwrite on the prefix)");
  ub->add_option("--password-file", u.password_file, "its password: the file's first line");
  r.add(ub, [&u, &g = r.globals()] { return cmd_fleet_unblock(g, u); });
}

}  // namespace bpfgate::cli
