#include "support/etcd.hpp"

#include <fmt/format.h>

#include <csignal>
#include <thread>

namespace bpfgate::test {

EtcdProcess::EtcdProcess(const Netns &ns, std::vector<std::string> addrs, uint16_t port)
    : ns_(ns),
      addrs_(std::move(addrs)),
      port_(port),
      dir_(unique_prefix() + "etcd" + ns.name() + std::to_string(port)) {}

EtcdProcess::~EtcdProcess() {
  kill();
}  // ScratchDir removes the data

std::string EtcdProcess::endpoint(size_t i) const {
  return fmt::format("{}://{}:{}", tls_ ? "https" : "http", addrs_.at(i), port_);
}

std::string EtcdProcess::client_flags(const char *ca, const char *cert, const char *key) const {
  if (!tls_)
    return " ";
  return fmt::format(" {} {} {} {} {} {} ", ca, tls_->ca, cert, tls_->client_cert, key,
                     tls_->client_key);
}

std::string EtcdProcess::peer_url() const {
  return fmt::format("http://{}:{}", addrs_[0], port_ + 1);
}

void EtcdProcess::spawn() {
  std::string clients;
  for (size_t i = 0; i < addrs_.size(); i++)
    clients += (i ? "," : "") + endpoint(i);
  std::string peer = peer_url();
  std::string cluster = initial_cluster_.empty() ? name_ + "=" + peer : initial_cluster_;
  process_.reset();
  process_.emplace(Process::spawn(fmt::format(
      "exec {}etcd --name {} --data-dir {} --listen-client-urls {} --advertise-client-urls {} "
      "--listen-peer-urls {} --initial-advertise-peer-urls {} --initial-cluster {} "
      "--log-outputs stderr {} >>{} 2>&1",
      ns_.exec(), name_, dir_.file("data"), clients, clients, peer, peer, cluster,
      tls_ ? fmt::format("--cert-file {} --key-file {} --trusted-ca-file {} --client-cert-auth",
                         tls_->cert, tls_->key, tls_->ca)
           : "",
      dir_.file("etcd.log"))));
}

void EtcdProcess::pause(bool stopped) {
  if (process_)
    process_->kill(stopped ? SIGSTOP : SIGCONT);
}

bool EtcdProcess::start(std::chrono::milliseconds limit) {
  spawn();
  return healthy_within(limit);
}

bool EtcdProcess::healthy_within(std::chrono::milliseconds limit) {
  auto deadline = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < deadline) {
    auto r = run(ns_.exec() + "curl -s -m 1" + client_flags("--cacert", "--cert", "--key") +
                 endpoint() + "/health");
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
  return run(ns_.exec() + "env ETCDCTL_API=3 etcdctl" +
             client_flags("--cacert", "--cert", "--key") + " --endpoints " + endpoint() + " " +
             args);
}

EtcdProcess::Tls make_test_certs(const std::string &dir, const std::vector<std::string> &server_ips,
                                 const std::string &client_subject) {
  std::string sans;
  for (const auto &ip : server_ips)
    sans += (sans.empty() ? "IP:" : ",IP:") + ip;
  auto key = [&](const std::string &name, const std::string &subject) {
    return fmt::format(
        "openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes "
        "-keyout {0}/{1}.key -out {0}/{1}.csr -subj {2} 2>/dev/null",
        dir, name, subject);
  };
  auto sign = [&](const std::string &name, const std::string &ext) {
    return fmt::format(
        "printf '{2}\\n' >{0}/{1}.ext && openssl x509 -req -in {0}/{1}.csr -CA "
        "{0}/ca.pem -CAkey {0}/ca.key -CAcreateserial -days 1 -out {0}/{1}.pem "
        "-extfile {0}/{1}.ext 2>/dev/null",
        dir, name, ext);
  };
  run_ok(
      fmt::format("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes "
                  "-keyout {0}/ca.key -out {0}/ca.pem -days 1 -subj /CN=bpfgate-test-ca "
                  "2>/dev/null",
                  dir));
  run_ok(key("server", "/CN=server") + " && " +
         sign("server", "subjectAltName=" + sans + "\\nextendedKeyUsage=serverAuth,clientAuth"));
  run_ok(key("client", client_subject) + " && " + sign("client", "extendedKeyUsage=clientAuth"));
  return {dir + "/ca.pem", dir + "/server.pem", dir + "/server.key", dir + "/client.pem",
          dir + "/client.key"};
}

}  // namespace bpfgate::test
