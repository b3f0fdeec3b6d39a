// The fleet's test bed (issue 16): one etcd namespace, holding one etcd or
// the members of a cluster (one port pair each), and N nodes, each a gateway
// namespace with its agent and XDP filter (and a peer namespace that floods
// it), joined to the etcd namespace by a veth each (198.18.(101+i).0/24, no
// default route). Fixtures derive from FleetTest; what a node's fleet:
// section adds (tls:, auth:) comes from fleet_extra().
#pragma once

#include <gtest/gtest.h>

#include <memory>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "support/agent.hpp"
#include "support/etcd.hpp"
#include "support/topology.hpp"

namespace bpfgate::test {

struct FleetNode {
  explicit FleetNode(int i);
  GatewayPair pair;
  std::string name;
  ScratchDir dir;
  AgentProcess agent{dir.path()};
  std::string etcd_addr;  // the etcd namespace's end of this node's link
};

// SIGSTOPs a process for its lifetime; SIGCONT when it goes, also on failure.
class Stopped {
 public:
  explicit Stopped(Process &p) : p_(p) { p_.kill(SIGSTOP); }
  ~Stopped() { p_.kill(SIGCONT); }
  Stopped(const Stopped &) = delete;
  Stopped &operator=(const Stopped &) = delete;

 private:
  Process &p_;
};

class FleetTest : public ::testing::Test {
 protected:
  // members > 1: a cluster, member m's clients on port 2379 + 2m.
  explicit FleetTest(int nodes = 3, int members = 1);
  ~FleetTest() override;

  // Etcd started (every member), then each node's agent.
  void SetUp() override;
  bool start_etcd();
  // What node i's fleet: section gets besides endpoints and node (indented by 2).
  virtual std::string fleet_extra(int) const { return ""; }

  void write_config(int i, const std::string &extra = "");
  void start_agent(int i, const std::string &extra = "");

  // `bpfgate -j list`'s entry of `prefix` on node i's filter (null: none).
  nlohmann::json listed(int i, const std::string &prefix) const;
  // `bpfgate ARGS` on node i's filter alone (the nodes' filters share one bpffs).
  int on(int i, const std::string &verb, const std::string &args) const;
  nlohmann::json fleet_status(int i) const;
  // The prefixes node i's filter lists.
  std::set<std::string> blocklist(int i) const;
  // Node i's fleet endpoints, as its config lists them.
  std::vector<std::string> endpoints(int i) const;

  Netns etcd_ns_{unique_prefix() + "fetcd"};
  std::unique_ptr<EtcdProcess> etcd_;                 // the etcd, or the cluster's first member
  std::vector<std::unique_ptr<EtcdProcess>> others_;  // the cluster's other members
  std::vector<std::unique_ptr<FleetNode>> nodes_;
};

}  // namespace bpfgate::test
