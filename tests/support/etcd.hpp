// A real etcd (Debian's etcd-server) for the fleet's tests: one member in a
// network namespace the test made, its data in a scratch folder, waited for
// until /health says so, SIGKILLed and its data removed with its owner.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "support/system.hpp"

namespace bpfgate::test {

class EtcdProcess {
 public:
  // Listens for clients on http://ADDR:port for each of `addrs` (addresses
  // of `ns`), for its peer on the first.
  EtcdProcess(const Netns &ns, std::vector<std::string> addrs, uint16_t port = 2379);
  ~EtcdProcess();
  EtcdProcess(const EtcdProcess &) = delete;
  EtcdProcess &operator=(const EtcdProcess &) = delete;

  // Serve clients over TLS from the next start(): the server's certificate and
  // key, and the CA whose certificates clients must present (`client` is
  // such a certificate and key, for the health check and etcdctl).
  struct Tls {
    std::string ca, cert, key, client_cert, client_key;
  };
  void use_tls(Tls t) { tls_ = std::move(t); }

  // One member of a cluster from the next start(): its name and the whole
  // cluster as etcd's --initial-cluster lists it (NAME=PEER_URL,...).
  void as_member(std::string name, std::string initial_cluster) {
    name_ = std::move(name);
    initial_cluster_ = std::move(initial_cluster);
  }
  // http://ADDR:PORT+1 on addrs[0]: where its peers reach it.
  std::string peer_url() const;
  const std::string &name() const { return name_; }

  // Started and healthy within `limit` (false: its log says why).
  bool start(std::chrono::milliseconds limit = std::chrono::milliseconds(15000));
  // Started, not waited for (the members of a cluster start together).
  void spawn();
  bool healthy_within(std::chrono::milliseconds limit);
  // SIGSTOP/SIGCONT.
  void pause(bool stopped);
  void kill();  // SIGKILL, reaped; the data stays for a start() again
  bool running() const { return process_.has_value(); }
  // http://ADDR:PORT for addrs[i].
  std::string endpoint(size_t i = 0) const;
  std::string log() const { return read_file(dir_.file("etcd.log")); }
  // `etcdctl --endpoints ENDPOINT ARGS` run in the namespace.
  CmdResult etcdctl(const std::string &args) const;

 private:
  const Netns &ns_;
  std::vector<std::string> addrs_;
  uint16_t port_;
  ScratchDir dir_;
  std::optional<Process> process_;
  std::optional<Tls> tls_;
  std::string name_ = "m1", initial_cluster_;
  std::string client_flags(const char *ca, const char *cert, const char *key) const;
};

// A CA, a server certificate for `server_ips` and a client certificate whose
// subject is `client_subject`, made with openssl in `dir` (ca.pem,
// server.pem/.key, client.pem/.key).
EtcdProcess::Tls make_test_certs(const std::string &dir, const std::vector<std::string> &server_ips,
                                 const std::string &client_subject = "/CN=client");
inline EtcdProcess::Tls make_test_certs(const std::string &dir, const std::string &server_ip) {
  return make_test_certs(dir, std::vector<std::string>{server_ip});
}

}  // namespace bpfgate::test
