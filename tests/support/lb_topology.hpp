// The load balancer's topology: the gateway pair (client namespace <-> gateway
// namespace, tests/support/topology.hpp) plus one namespace per backend, each
// joined to the gateway by its own veth and running a real nginx that answers
// its own name ("b1\n"). The gateway routes (forwarding on); the client
// reaches the services' addresses through the gateway, the backends reach
// the client's network through it: no default route anywhere.
//
//   client 198.18.0.2, 2001:db8::2 --- gateway 198.18.0.1, 2001:db8::1
//   gateway 198.18.1N.1, 2001:db8:1N::1 --- backend bN 198.18.1N.2, 2001:db8:1N::2
//   services: 198.18.20.0/24, 2001:db8:20::/64 routed to the gateway
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "support/system.hpp"
#include "support/topology.hpp"

namespace bpfgate::test {

class LbTopology {
 public:
  static constexpr const char *kVip4 = "198.18.20.1";
  static constexpr const char *kVip6 = "2001:db8:20::1";

  explicit LbTopology(int backends = 3);
  ~LbTopology();
  LbTopology(const LbTopology &) = delete;
  LbTopology &operator=(const LbTopology &) = delete;

  GatewayPair &pair() { return pair_; }
  const GatewayPair &pair() const { return pair_; }
  const Netns &gw() const { return pair_.gw(); }
  const Netns &client() const { return pair_.peer(); }
  size_t backends() const { return backends_.size(); }
  // Backend i (0-based) as the config names it: its name ("b1"), its
  // gateway-side interface, its addresses.
  std::string name(size_t i) const { return "b" + std::to_string(i + 1); }
  const std::string &gw_if(size_t i) const { return backends_[i]->gw_if; }
  std::string addr4(size_t i) const;
  std::string addr6(size_t i) const;
  // The gateway-side interfaces of every backend, as a YAML flow list.
  std::string gw_ifs_yaml() const;

  // Adds one more backend (namespace, link, nginx); its index.
  size_t add_backend();
  // nginx of backend i: stopped (SIGKILL: its connections die with it) or started.
  void kill_nginx(size_t i);
  void start_nginx(size_t i);
  // Backend i served by bpfgate-slow-backend instead of nginx (IPv4, port 80,
  // same name), whose delay per request set_delay() changes at run time.
  void use_slow_backend(size_t i);
  void set_delay(size_t i, int ms) const;
  // bpfgate-lb-client ARGS in the client namespace; its JSON lines.
  std::vector<nlohmann::json> client_run(const std::string &args) const;
  // As above in the background (hold mode: a line on its stdin goes on).
  Process client_spawn(const std::string &args, const std::string &out_file) const;

 private:
  struct Backend {
    std::unique_ptr<Netns> ns;
    std::string gw_if, b_if;
    std::unique_ptr<ScratchDir> dir;
    std::optional<Process> nginx;
    std::optional<Process> slow;
  };
  void wire(Backend &b, size_t i);
  GatewayPair pair_;
  std::vector<std::unique_ptr<Backend>> backends_;
};

// The bpfgate-lb-client binary of this build.
std::string lb_client_bin();

}  // namespace bpfgate::test
