// The integration tests' topology: a gateway namespace and a peer namespace
// joined by one veth pair, no default route anywhere. The peer holds a
// client address and an attacker address; bpfgate runs in the gateway
// namespace. Everything (namespaces, links, pins) goes when the owner goes.
#pragma once

#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

#include "support/system.hpp"

namespace bpfgate::test {

// Packets a `bpfgate -j status` entry counts for `verdict` and `reason` (0: none yet).
uint64_t counter(const nlohmann::json &status, const char *verdict, const char *reason);

class GatewayPair {
 public:
  static constexpr const char *kGatewayAddr = "198.18.0.1";
  static constexpr const char *kClientAddr = "198.18.0.2";
  static constexpr const char *kAttackerAddr = "198.18.0.3";

  GatewayPair();
  ~GatewayPair();
  GatewayPair(const GatewayPair &) = delete;
  GatewayPair &operator=(const GatewayPair &) = delete;

  const Netns &gw() const { return gw_; }
  const Netns &peer() const { return peer_; }
  const std::string &gw_if() const { return gw_if_; }
  const std::string &peer_if() const { return peer_if_; }
  std::string gw_mac() const;
  std::string pin_dir() const { return "/sys/fs/bpf/bpfgate/" + gw_if_; }

  // Deletes the veth pair (both ends go), as when a VM's tap or a veth is
  // removed; make_link() makes it again with the same names and addresses.
  void remove_link() const;
  void make_link() const;

  // `bpfgate ARGS` run in the gateway namespace.
  CmdResult bpfgate(const std::string &args) const;
  // bpfgate-gen in the peer namespace towards the gateway; returns frames sent.
  uint64_t flood(const std::string &src, uint64_t count, double rate_pps,
                 const std::string &extra = "") const;
  // This interface's entry of `bpfgate -j status` (other filters may be pinned too).
  nlohmann::json status() const;
  // Packets status() counts for `verdict` and `reason` (0: none yet).
  uint64_t counter(const char *verdict, const char *reason) const;
  // The XDP program id attached to the gateway interface (0: none).
  uint32_t xdp_prog_id() const;
  // Swaps the program of the pinned XDP link for program `prog` of another
  // build (an object under BPFGATE_BPF_DIR), loaded on the running program's
  // maps (by name, from its map ids), as another version would run: its
  // program id (a gtest failure and 0 if that fails).
  uint32_t run_other_build(const std::string &object, const std::string &prog) const;
  // A TCP listener on the gateway's address, and a connection to it from the
  // peer namespace (true: the handshake completed).
  bpf::UniqueFd tcp_listen(uint16_t port) const;
  bool tcp_connect(uint16_t port) const;

 private:
  std::string gw_if_, peer_if_;
  Netns gw_, peer_;
};

}  // namespace bpfgate::test
