// The fleet with etcd's auth on (issue 16): the README's role setup run as
// written against a real etcd (a role per node, readwrite on its own
// PREFIX/NODE/, read on PREFIX; an operator's role, readwrite on PREFIX);
// a node's credential writes its own keys and is refused another's; agents
// joined with `auth:` share blocks; an operator's `bpfgate fleet unblock`
// takes a block out everywhere; the same over TLS with client certificates.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>
#include <thread>

#include <fmt/format.h>

#include "features/fleet/etcd_client.hpp"
#include "fleet_support.hpp"

namespace bpfgate::test {
namespace {

using fleet::EtcdClient;
using fleet::EtcdOptions;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

const std::string kPrefix = "/bpfgate/blocks/";

std::string readme_text() {
  std::ifstream in(std::string(BPFGATE_SOURCE_DIR) + "/README.md");
  return std::string((std::istreambuf_iterator<char>(in)), {});
}

// The lines of the README's ```sh block that sets up etcd's roles.
std::vector<std::string> readme_role_setup() {
  std::string text = readme_text();
  auto at = text.find("```sh\netcdctl ");
  std::vector<std::string> lines;
  if (at == std::string::npos)
    return lines;
  std::istringstream in(text.substr(at + 6, text.find("```", at + 6) - at - 6));
  for (std::string l; std::getline(in, l);)
    if (!l.empty())
      lines.push_back(l);
  return lines;
}

class FleetRoles : public FleetTest {
 protected:
  explicit FleetRoles(int nodes = 3) : FleetTest(nodes) {
    for (const auto &who : {std::string("root"), std::string("operator")})
      std::ofstream(secrets_.file(who + ".password")) << who << "-pw-" << unique_prefix() << "\n";
    for (const auto &n : nodes_)
      std::ofstream(secrets_.file(n->name + ".password")) << n->name << "-pw\n";
  }

  void SetUp() override {
    ASSERT_TRUE(start_etcd()) << etcd_->log();
    auto lines = readme_role_setup();
    ASSERT_GE(lines.size(), 5u) << "README.md has no etcdctl role setup";
    // As written, where the password files are; the lines naming gw-1 once per node.
    for (const auto &line : lines) {
      bool per_node = contains(line, "gw-1");
      for (size_t i = 0; i < (per_node ? nodes_.size() : 1); i++) {
        std::string cmd =
            per_node ? std::regex_replace(line, std::regex("gw-1"), nodes_[i]->name) : line;
        auto r = run(etcd_ns_.exec() + "env" + etcdctl_env() + " sh -c 'cd " + secrets_.string() +
                     " && " + cmd + "'");
        ASSERT_EQ(r.exit_code, 0) << cmd << ": " << r.out << r.err;
      }
    }
    for (size_t i = 0; i < nodes_.size(); i++)
      start_agent(static_cast<int>(i));
  }

  std::string fleet_extra(int i) const override {
    return fmt::format("  auth: {{user: {0}, password_file: {1}/{0}.password}}\n", nodes_[i]->name,
                       secrets_.string());
  }

  // etcdctl's flags as its environment (ETCDCTL_ENDPOINTS, TLS files).
  std::string etcdctl_env() const {
    std::string env = " ETCDCTL_API=3 ETCDCTL_ENDPOINTS=" + etcd_->endpoint();
    if (tls_)
      env += fmt::format(" ETCDCTL_CACERT={} ETCDCTL_CERT={} ETCDCTL_KEY={}", tls_->ca,
                         tls_->client_cert, tls_->client_key);
    return env;
  }
  std::string password(const std::string &who) const {
    auto p = read_file(secrets_.file(who + ".password"));
    return p.substr(0, p.find('\n'));
  }
  EtcdOptions as(const std::string &who) const {
    EtcdOptions o{.endpoints = {etcd_->endpoint()}, .user = who, .password = password(who)};
    if (tls_) {
      o.ca = tls_->ca;
      o.cert = tls_->client_cert;
      o.key = tls_->client_key;
    }
    return o;
  }
  std::string keys() const {
    return run(etcd_ns_.exec() + "env" + etcdctl_env() + " etcdctl --user root:" +
               password("root") + " get --prefix " + kPrefix + " --keys-only")
        .out;
  }
  std::string key(int node, const std::string &cidr) const {
    return kPrefix + nodes_[node]->name + "/" + cidr;
  }

  // A block on node 1 enforced on node 2: its frames dropped there.
  void expect_shared(const std::string &attacker) {
    ASSERT_EQ(nodes_[1]->pair.flood(attacker, 100, 20000), 100u);
    ASSERT_EQ(nodes_[1]->pair.counter("drop", "blocklist"), 0u);
    auto t0 = Clock::now();
    ASSERT_EQ(on(0, "block", attacker + " --ttl 120s"), 0);  // a lease, under auth too
    ASSERT_TRUE(within(5000ms, [&] { return !listed(1, attacker).is_null(); }))
        << nodes_[0]->agent.log() << nodes_[1]->agent.log();
    std::printf(
        "fleet (auth%s): node 1's block in node 2's blocklist after %lld ms\n", tls_ ? ", TLS" : "",
        static_cast<long long>(
            std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t0).count()));
    EXPECT_EQ(listed(1, attacker)["origin"], nodes_[0]->name);
    ASSERT_EQ(nodes_[1]->pair.flood(attacker, 100, 20000), 100u);
    EXPECT_EQ(nodes_[1]->pair.counter("drop", "blocklist"), 100u);
    auto st = fleet_status(0);
    EXPECT_EQ(st["connected"], true) << st.dump();
    EXPECT_TRUE(contains(keys(), key(0, "198.18.0.80_32"))) << keys();
  }

  // A README command run as written on node 1, with /etc/bpfgate holding
  // node 1's config and the operator's password (an overlay on /etc in a
  // mount namespace of its own).
  CmdResult as_written(const std::string &cmd) const {
    ScratchDir etc(unique_prefix() + "-fleet-etc");
    std::string bindir = std::filesystem::path(bpfgate_bin()).parent_path().string();
    std::string script = fmt::format(
        "mkdir -p {0}/upper {0}/work && mount -t overlay overlay -o "
        "lowerdir=/etc,upperdir={0}/upper,workdir={0}/work /etc && mkdir -p /etc/bpfgate && "
        "cp {1} /etc/bpfgate/bpfgate.yaml && cp {2} /etc/bpfgate/operator.password && "
        "PATH={3}:$PATH {4}",
        etc.string(), nodes_[0]->agent.config(), secrets_.file("operator.password"), bindir, cmd);
    return run(nodes_[0]->pair.gw().exec() + "unshare -m sh -c '" + script + "'");
  }

  ScratchDir secrets_{unique_prefix() + "-fleet-secrets"};
  std::optional<EtcdProcess::Tls> tls_;
};

TEST_F(FleetRoles, TheReadmeRoleSetupConfinesEachNode) {
  etcd_ns_.within([&] {
    const std::string own = key(0, "198.18.0.70_32"), other = key(1, "198.18.0.71_32");
    EtcdClient root(as("root"));
    ASSERT_TRUE(root.put(other, "x"));
    EtcdClient node(as(nodes_[0]->name));
    // Its own keys: put, read, delete, also with a lease.
    auto rev = node.put(own, "x");
    ASSERT_TRUE(rev) << rev.error().what();
    auto lease = node.lease_grant(30);
    ASSERT_TRUE(lease) << lease.error().what();
    EXPECT_TRUE(node.put(own, "y", *lease));
    auto all = node.range(kPrefix, true);  // reads (and so watches) the whole prefix
    ASSERT_TRUE(all) << all.error().what();
    EXPECT_EQ(all->kvs.size(), 2u);
    EXPECT_TRUE(node.del(own));
    // Another node's: refused, put or delete, one at a time or in a transaction.
    auto put = node.put(other, "z");
    ASSERT_FALSE(put);
    EXPECT_TRUE(contains(put.error().what(), "permission denied")) << put.error().what();
    auto del = node.del(other);
    ASSERT_FALSE(del);
    EXPECT_TRUE(contains(del.error().what(), "permission denied")) << del.error().what();
    auto txn = node.txn({{true, key(0, "198.18.0.72_32"), "a", 0}, {false, other, "", 0}});
    ASSERT_FALSE(txn);
    EXPECT_TRUE(contains(txn.error().what(), "permission denied")) << txn.error().what();
    // Nor above its own subprefix (a key of no node, or the prefix itself).
    EXPECT_FALSE(node.put(kPrefix + "198.18.0.73_32", "x"));
    EXPECT_FALSE(node.del(kPrefix, true));
    EXPECT_EQ(root.range(other, false)->kvs.size(), 1u) << "another node's key went";
    // The operator may delete any node's key; no user may do nothing.
    EtcdClient op(as("operator"));
    auto gone = op.del(other);
    ASSERT_TRUE(gone) << gone.error().what();
    EXPECT_EQ(*gone, 1);
    EtcdOptions anonymous = as("");
    anonymous.user.clear();
    EXPECT_FALSE(EtcdClient(anonymous).range(kPrefix, true));
  });
  // The agents, each with its own credential, end to end.
  expect_shared("198.18.0.80");
}

TEST_F(FleetRoles, AnOperatorUnblocksEverywhere) {
  const std::string x = "198.18.0.80";
  ASSERT_EQ(on(0, "block", x), 0);
  ASSERT_EQ(on(1, "block", x), 0);
  ASSERT_TRUE(within(5000ms, [&] { return listed(2, x)["reason"] == "fleet"; }));
  ASSERT_TRUE(within(5000ms, [&] {
    auto k = keys();
    return contains(k, key(0, "198.18.0.80_32")) && contains(k, key(1, "198.18.0.80_32"));
  })) << keys();
  ASSERT_EQ(nodes_[2]->pair.flood(x, 100, 20000), 100u);
  ASSERT_EQ(nodes_[2]->pair.counter("drop", "blocklist"), 100u);

  // With a node's credential (its config's auth:): refused, said, nothing deleted.
  auto refused =
      nodes_[0]->pair.bpfgate("fleet unblock " + x + " --config " + nodes_[0]->agent.config());
  EXPECT_EQ(refused.exit_code, 1) << refused.out << refused.err;
  EXPECT_TRUE(contains(refused.err, "permission denied")) << refused.err;
  EXPECT_TRUE(contains(refused.err, "operator credential")) << refused.err;
  EXPECT_TRUE(contains(keys(), key(1, "198.18.0.80_32"))) << keys();

  // The README's command, as written (the address put in), with /etc/bpfgate
  // holding node 1's config and the operator's password (an overlay on /etc
  // in a mount namespace of its own).
  std::string shown =
      "bpfgate fleet unblock 198.51.100.7 --user operator --password-file "
      "/etc/bpfgate/operator.password";
  ASSERT_TRUE(contains(readme_text(), shown)) << "README.md no longer shows `" << shown << "`";
  std::string cmd = std::regex_replace(shown, std::regex("198\\.51\\.100\\.7"), x);
  auto t0 = Clock::now();
  auto r = as_written(cmd);
  ASSERT_EQ(r.exit_code, 0) << cmd << ": " << r.out << r.err;
  EXPECT_TRUE(contains(r.out, nodes_[0]->name) && contains(r.out, nodes_[1]->name)) << r.out;
  EXPECT_TRUE(contains(r.err, "action=fleet-unblock")) << r.err;
  EXPECT_TRUE(contains(r.err, "etcd_user=operator")) << r.err;
  EXPECT_FALSE(contains(keys(), "198.18.0.80_32")) << keys();

  // Gone from node 3, its traffic passing again.
  ASSERT_TRUE(within(5000ms, [&] { return listed(2, x).is_null(); })) << nodes_[2]->agent.log();
  std::printf(
      "fleet: the operator's unblock out of node 3's blocklist after %lld ms\n",
      static_cast<long long>(
          std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t0).count()));
  uint64_t dropped = nodes_[2]->pair.counter("drop", "blocklist");
  ASSERT_EQ(nodes_[2]->pair.flood(x, 100, 20000), 100u);
  EXPECT_EQ(nodes_[2]->pair.counter("drop", "blocklist"), dropped);
  // Nodes 1 and 2 keep their own blocks, local: not published again.
  std::this_thread::sleep_for(1500ms);  // several scans
  for (int i = 0; i < 2; i++) {
    EXPECT_EQ(listed(i, x)["reason"], "manual") << listed(i, x).dump();
    EXPECT_TRUE(contains(nodes_[i]->agent.log(), "was deleted by another"))
        << nodes_[i]->agent.log();
  }
  EXPECT_FALSE(contains(keys(), "198.18.0.80_32")) << keys();
  EXPECT_TRUE(listed(2, x).is_null());
  // Unblocked on node 1 and blocked again there: shared again.
  ASSERT_EQ(on(0, "unblock", x), 0);
  std::this_thread::sleep_for(500ms);
  ASSERT_EQ(on(0, "block", x), 0);
  EXPECT_TRUE(within(5000ms, [&] { return listed(2, x)["origin"] == nodes_[0]->name; }))
      << listed(2, x).dump() << nodes_[0]->agent.log();
}

// The fleet's never-block list is the operator's: a node's credential may
// read it (its agent watches it) but not write it; the README's commands, as
// written, keep it.
class FleetRolesPair : public FleetRoles {
 protected:
  FleetRolesPair() : FleetRoles(2) {}
};

TEST_F(FleetRolesPair, OnlyAnOperatorWritesTheNeverBlockList) {
  const std::string shown_add =
      "bpfgate fleet never-block add 198.51.100.0/24 --user operator --password-file "
      "/etc/bpfgate/operator.password";
  const std::string shown_remove =
      "bpfgate fleet never-block remove 198.51.100.0/24 --user operator --password-file "
      "/etc/bpfgate/operator.password";
  for (const auto &shown : {shown_add, shown_remove, std::string("bpfgate fleet never-block list")})
    ASSERT_TRUE(contains(readme_text(), shown)) << "README.md no longer shows `" << shown << "`";
  const std::string never = kPrefix + "@never/198.51.100.0_24";
  // A node's credential (its config's auth:): refused, said, nothing written.
  auto refused = nodes_[0]->pair.bpfgate("fleet never-block add 198.51.100.0/24 --config " +
                                         nodes_[0]->agent.config());
  EXPECT_EQ(refused.exit_code, 1) << refused.out << refused.err;
  EXPECT_TRUE(contains(refused.err, "permission denied")) << refused.err;
  EXPECT_TRUE(contains(refused.err, "operator credential")) << refused.err;
  EXPECT_FALSE(contains(keys(), never)) << keys();
  // The operator's, as the README shows it.
  auto r = as_written(shown_add);
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_TRUE(contains(r.err, "action=fleet-never-block-add")) << r.err;
  EXPECT_TRUE(contains(r.err, "etcd_user=operator")) << r.err;
  EXPECT_TRUE(contains(keys(), never)) << keys();
  // Every node's agent, reading with its own credential, has it.
  for (int i = 0; i < 2; i++)
    EXPECT_TRUE(within(3000ms, [&] { return fleet_status(i)["never_block"] == 1; }))
        << fleet_status(i).dump();
  // Listed with the config's (a node's) credential: reading is the nodes' right.
  r = as_written("bpfgate fleet never-block list");
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_TRUE(contains(r.out, "198.51.100.0/24  by operator")) << r.out;
  r = as_written(shown_remove);
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_FALSE(contains(keys(), never)) << keys();
  for (int i = 0; i < 2; i++)
    EXPECT_TRUE(within(3000ms, [&] { return fleet_status(i)["never_block"] == 0; }))
        << fleet_status(i).dump();
}

// TLS with client certificates (etcd's --client-cert-auth) and auth together.
class FleetTlsRoles : public FleetRoles {
 protected:
  FleetTlsRoles() : FleetRoles(2) {
    std::vector<std::string> ips;
    for (const auto &n : nodes_)
      ips.push_back(n->etcd_addr);
    // A client certificate with no Common Name: etcd's gateway refuses one
    // that has one once auth is on (HTTP 400, "CommonName of client sending a
    // request against gateway will be ignored").
    tls_ = make_test_certs(certs_.string(), ips, "/O=bpfgate-test-client");
    etcd_->use_tls(*tls_);
  }
  std::string fleet_extra(int i) const override {
    return FleetRoles::fleet_extra(i) + fmt::format("  tls: {{ca: {}, cert: {}, key: {}}}\n",
                                                    tls_->ca, tls_->client_cert, tls_->client_key);
  }
  ScratchDir certs_{unique_prefix() + "-fleet-certs"};
};

TEST_F(FleetTlsRoles, AgentsShareBlocksOverTlsWithTheirOwnCredentials) {
  ASSERT_EQ(etcd_->endpoint().rfind("https://", 0), 0u);
  expect_shared("198.18.0.80");
  auto st = fleet_status(1);
  EXPECT_EQ(st["endpoint"].get<std::string>().rfind("https://", 0), 0u) << st.dump();
  // A node's credential over TLS is still held to its own keys.
  etcd_ns_.within([&] {
    EtcdClient node(as(nodes_[1]->name));
    auto put = node.put(key(0, "198.18.0.74_32"), "x");
    ASSERT_FALSE(put);
    EXPECT_TRUE(contains(put.error().what(), "permission denied")) << put.error().what();
  });
}

}  // namespace
}  // namespace bpfgate::test
