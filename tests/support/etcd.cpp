#include "support/etcd.hpp"

#include <fmt/format.h>

#include <csignal>
#include <thread>

namespace bpfgate::test {

EtcdProcess::EtcdProcess(const Netns &ns, std::vector<std::string> addrs, uint16_t port)
    : ns_(ns), addrs_(std::move(addrs)), port_(port), dir_(unique_prefix() + "etcd" + ns.name()) {}

EtcdProcess::~EtcdProcess() {
  kill();
}  // ScratchDir removes the data

std::string EtcdProcess::endpoint(size_t i) const {
  return fmt::format("http://{}:{}", addrs_.at(i), port_);
}

bool EtcdProcess::start(std::chrono::milliseconds limit) {
  std::string clients;
  for (size_t i = 0; i < addrs_.size(); i++)
    clients += (i ? "," : "") + endpoint(i);
  std::string peer = fmt::format("http://{}:{}", addrs_[0], port_ + 1);
  process_.reset();
  process_.emplace(Process::spawn(fmt::format(
      "exec {}etcd --name m1 --data-dir {} --listen-client-urls {} --advertise-client-urls {} "
      "--listen-peer-urls {} --initial-advertise-peer-urls {} --initial-cluster m1={} "
      "--log-outputs stderr >>{} 2>&1",
      ns_.exec(), dir_.file("data"), clients, clients, peer, peer, peer, dir_.file("etcd.log"))));
  auto deadline = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < deadline) {
    auto r = run(ns_.exec() + "curl -s -m 1 " + endpoint() + "/health");
    if (r.exit_code == 0 && contains(r.out, "\"health\":\"true\""))
      return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return false;
}

void EtcdProcess::kill() {
  if (!process_)
    return;
  process_->kill(SIGKILL);
  process_->wait(std::chrono::milliseconds(5000));
  process_.reset();
}

CmdResult EtcdProcess::etcdctl(const std::string &args) const {
  return run(ns_.exec() + "env ETCDCTL_API=3 etcdctl --endpoints " + endpoint() + " " + args);
}

}  // namespace bpfgate::test
