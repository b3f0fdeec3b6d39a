#include "fleet_support.hpp"

#include <fmt/format.h>

#include <fstream>

namespace bpfgate::test {

FleetNode::FleetNode(int i)
    : name(unique_prefix() + "-n" + std::to_string(i)), dir(unique_prefix() + "-fleet-" + name) {}

FleetTest::FleetTest(int nodes, int members) {
  std::vector<std::string> addrs;
  for (int i = 0; i < nodes; i++) {
    auto &n = *nodes_.emplace_back(std::make_unique<FleetNode>(i + 1));
    n.etcd_addr = fmt::format("198.18.{}.1", 101 + i);
    make_veth(n.pair.gw(), unique_prefix() + "fl" + std::to_string(i),
              fmt::format("198.18.{}.2/24", 101 + i), etcd_ns_,
              unique_prefix() + "fe" + std::to_string(i), n.etcd_addr + "/24");
    addrs.push_back(n.etcd_addr);
  }
  etcd_ = std::make_unique<EtcdProcess>(etcd_ns_, addrs);
  for (int m = 1; m < members; m++)
    others_.push_back(
        std::make_unique<EtcdProcess>(etcd_ns_, addrs, static_cast<uint16_t>(2379 + 2 * m)));
  if (members > 1) {
    std::string cluster;
    auto all = [&](auto fn) {
      fn(*etcd_, 1);
      for (size_t m = 0; m < others_.size(); m++)
        fn(*others_[m], static_cast<int>(m) + 2);
    };
    all([&](EtcdProcess &e, int m) {
      cluster += fmt::format("{}m{}={}", cluster.empty() ? "" : ",", m, e.peer_url());
    });
    all([&](EtcdProcess &e, int m) { e.as_member("m" + std::to_string(m), cluster); });
  }
}

FleetTest::~FleetTest() {
  for (auto &n : nodes_)
    if (n->agent)
      n->agent.stop();
  for (auto &n : nodes_)
    run("rm -rf /sys/fs/bpf/bpfgate-fleet/" + n->name);
  run("rmdir /sys/fs/bpf/bpfgate-fleet 2>/dev/null");
}

bool FleetTest::start_etcd() {
  if (others_.empty())
    return etcd_->start();
  etcd_->spawn();
  for (auto &m : others_)
    m->spawn();
  bool ok = etcd_->healthy_within(std::chrono::milliseconds(20000));
  for (auto &m : others_)
    ok = ok && m->healthy_within(std::chrono::milliseconds(20000));
  return ok;
}

void FleetTest::SetUp() {
  ASSERT_TRUE(start_etcd()) << etcd_->log();
  for (size_t i = 0; i < nodes_.size(); i++)
    start_agent(static_cast<int>(i));
}

std::vector<std::string> FleetTest::endpoints(int i) const {
  std::vector<std::string> out{etcd_->endpoint(i)};
  for (const auto &m : others_)
    out.push_back(m->endpoint(i));
  return out;
}

void FleetTest::write_config(int i, const std::string &extra) {
  auto &n = *nodes_[i];
  std::ofstream(n.agent.config()) << fmt::format(
      "interfaces: [{{name: {}, mode: native}}]\n"
      "agent: {{control_socket: {}, state_dir: {}}}\n"
      "fleet:\n  endpoints: [{}]\n  node: {}\n{}{}",
      n.pair.gw_if(), n.agent.socket(), n.dir.file("state"), fmt::join(endpoints(i), ", "), n.name,
      fleet_extra(i), extra);
}

void FleetTest::start_agent(int i, const std::string &extra) {
  write_config(i, extra);
  auto &n = *nodes_[i];
  ASSERT_TRUE(n.agent.start(n.pair.gw().exec() + bpfgate_bin())) << n.agent.log();
}

nlohmann::json FleetTest::listed(int i, const std::string &prefix) const {
  const auto &p = nodes_[i]->pair;
  auto j = nlohmann::json::parse(p.bpfgate("-j list --iface " + p.gw_if()).out, nullptr, false);
  if (!j.is_discarded())
    for (const auto &e : j["blocked"])
      if (e["prefix"] == prefix || e["prefix"] == prefix + "/32")
        return e;
  return nullptr;
}

int FleetTest::on(int i, const std::string &verb, const std::string &args) const {
  const auto &p = nodes_[i]->pair;
  return p.bpfgate(verb + " --iface " + p.gw_if() + " " + args).exit_code;
}

nlohmann::json FleetTest::fleet_status(int i) const {
  auto r = nodes_[i]->pair.bpfgate("-j fleet status --socket " + nodes_[i]->agent.socket());
  return nlohmann::json::parse(r.out, nullptr, false);
}

std::set<std::string> FleetTest::blocklist(int i) const {
  const auto &p = nodes_[i]->pair;
  auto j = nlohmann::json::parse(p.bpfgate("-j list --iface " + p.gw_if()).out, nullptr, false);
  std::set<std::string> out;
  if (!j.is_discarded())
    for (const auto &e : j["blocked"])
      out.insert(e["prefix"].get<std::string>());
  return out;
}

}  // namespace bpfgate::test
