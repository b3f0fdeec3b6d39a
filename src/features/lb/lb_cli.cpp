// The load balancer's subcommands: `bpfgate lb list` (from the pins, with the
// agent's catalog) and `lb add|remove|drain|weight` (sent to the agent, which
// applies each as a new generation).
#include <nlohmann/json.hpp>

#include <cstring>

#include "cli/commands.hpp"
#include "cli/registry.hpp"
#include "core/duration.hpp"
#include "features/lb/lb_plan.hpp"
#include "features/lb/lb_status.hpp"

namespace bpfgate::cli {

namespace {

namespace lb = agent::lb;
using nlohmann::json;

double avg_ms(uint64_t sum_ns, uint64_t n) {
  return n ? double(sum_ns) / double(n) / 1e6 : 0;
}

json backend_json(const lb::BackendView &b) {
  json j = {{"id", b.id},
            {"address", b.address},
            {"state", b.state()},
            {"ring_entries", b.ring_entries},
            {"packets", b.stats.packets},
            {"bytes", b.stats.bytes},
            {"reply_packets", b.stats.rx_packets},
            {"reply_bytes", b.stats.rx_bytes},
            {"new_flows", b.stats.new_flows},
            {"active_flows", b.active_flows},
            {"resets", b.stats.resets},
            {"connect_ms_avg", avg_ms(b.stats.connect_ns, b.stats.connects)},
            {"response_ms_avg", avg_ms(b.stats.response_ns, b.stats.responses)}};
  if (b.cat) {
    j["weight"] = {
        {"configured", b.cat->configured}, {"set", b.cat->weight}, {"effective", b.cat->effective}};
    j["runtime"] = b.cat->runtime;
    j["runtime_weight"] = b.cat->runtime_weight;
    j["health"] = b.cat->health;
  }
  return j;
}

json view_json(const lb::LbView &v) {
  json services = json::array();
  for (const auto &s : v.services) {
    json backends = json::array();
    for (const auto &b : s.backends)
      backends.push_back(backend_json(b));
    services.push_back({{"id", s.id},
                        {"name", s.name},
                        {"vip", s.vip},
                        {"proto", s.proto},
                        {"check", s.cat ? s.cat->check : "unknown"},
                        {"no_backend", s.no_backend},
                        {"backends", backends}});
  }
  json counters = json::object();
  for (uint32_t c = 0; c < BG_LB_COUNTER_NR; c++)
    counters[lb::counter_name(static_cast<bg_lb_counter>(c))] = {{"packets", v.counters[c].packets},
                                                                 {"bytes", v.counters[c].bytes}};
  return {{"table_size", v.table_size}, {"connections", v.connections},
          {"conns", v.conns},           {"idle_timeout", core::format_duration_ns(v.idle_ns)},
          {"generation", v.active},     {"prog_id", v.prog_id},
          {"interfaces", v.interfaces}, {"catalog", !v.catalog.empty()},
          {"services", services},       {"counters", counters}};
}

std::string weight_text(const lb::BackendView &b) {
  if (!b.cat)
    return "?";
  std::string t = std::to_string(b.cat->weight);
  if (b.cat->runtime_weight)
    t += "*";
  if (b.cat->effective != b.cat->weight)
    t += "/" + std::to_string(b.cat->effective);
  return t;
}

void print_view(const lb::LbView &v) {
  fmt::print("load balancer: prog {}, generation {}, table {}, {} of {} connections, alone on {}\n",
             v.prog_id, v.active, v.table_size, v.conns, v.connections,
             v.interfaces.empty() ? "none" : fmt::format("{}", fmt::join(v.interfaces, ",")));
  if (v.catalog.empty())
    fmt::print("(no catalog from the agent: names, weights and health unknown; see --state-dir)\n");
  for (const auto &s : v.services) {
    fmt::print("\n{} {}/{} (id {}){}\n", s.name, s.vip, s.proto, s.id,
               s.no_backend ? ": NO BACKEND UP" : "");
    fmt::print("  {:>4} {:<24} {:<9} {:>9} {:>6} {:>10} {:>12} {:>9} {:>7} {:>9} {:>9} {}\n", "id",
               "backend", "state", "weight", "ring", "packets", "bytes", "new", "active", "conn_ms",
               "resp_ms", "health");
    for (const auto &b : s.backends)
      fmt::print(
          "  {:>4} {:<24} {:<9} {:>9} {:>6} {:>10} {:>12} {:>9} {:>7} {:>9.3f} {:>9.3f} {}{}\n",
          b.id, b.address, b.state(), weight_text(b), b.ring_entries, b.stats.packets,
          b.stats.bytes, b.stats.new_flows, b.active_flows,
          avg_ms(b.stats.connect_ns, b.stats.connects),
          avg_ms(b.stats.response_ns, b.stats.responses), b.cat ? b.cat->health : "?",
          b.cat && b.cat->runtime ? " (runtime)" : "");
  }
  fmt::print("\nweight: set at run time *, effective after / (dynamic weights)\n");
}

int cmd_list(const Globals &g, const std::string &state_dir) {
  std::optional<lb::Catalog> cat;
  if (auto text = lb::read_state_file(lb::catalog_path(state_dir)); text && *text)
    if (auto c = lb::catalog_from_json(**text); c)
      cat = std::move(*c);
  auto v = lb::read_view(g.bpffs, std::move(cat));
  if (!v)
    return fail(v.error());
  if (g.json)
    fmt::print("{}\n", view_json(*v).dump());
  else
    print_view(*v);
  return 0;
}

// Sends the request to the agent; prints its answer.
int cmd_request(const std::string &socket_path, const lb::LbRequest &r) {
  auto reply = ask_agent(socket_path, lb::format_lb_request(r));
  if (!reply)
    return fail(reply.error());
  fmt::print("{}\n", *reply);
  return 0;
}

struct ChangeArgs {
  std::string service, address, socket = "/run/bpfgate/agent.sock";
  std::optional<uint32_t> weight;
};

void add_change(Registry &r, CLI::App *lb_cmd, lb::LbOp op, const char *help) {
  auto &a = r.keep<ChangeArgs>();
  auto *sub = lb_cmd->add_subcommand(lb::op_name(op), help);
  sub->add_option("SERVICE", a.service, "the service's name")->required();
  sub->add_option("ADDR", a.address, "the backend: ADDRESS[:PORT] (no port: the VIP's)")
      ->required();
  if (op == lb::LbOp::weight)
    sub->add_option("W", a.weight, "the weight, 0-65535")->required()->check(CLI::Range(0, 65535));
  if (op == lb::LbOp::add)
    sub->add_option("--weight", a.weight, "its weight, 0-65535 (default 100)")
        ->check(CLI::Range(0, 65535));
  sub->add_option("--socket", a.socket, "the agent's control socket")->capture_default_str();
  r.add(sub, [&a, op] {
    return cmd_request(a.socket, lb::LbRequest{op, a.service, a.address, a.weight});
  });
}

}  // namespace

void add_lb_commands(Registry &r) {
  auto *lb_cmd = r.app().add_subcommand(
      "lb", "the XDP load balancer: services, backends, runtime changes through the agent");
  lb_cmd->require_subcommand(1);
  auto &state_dir = r.keep<std::string>();
  state_dir = "/var/lib/bpfgate";
  auto *list = lb_cmd->add_subcommand(
      "list", "services and backends: id, state, weight, ring share, traffic, flows, latency");
  list->add_option("--state-dir", state_dir, "the agent's agent.state_dir (its catalog)")
      ->capture_default_str();
  r.add(list, [&state_dir, &g = r.globals()] { return cmd_list(g, state_dir); });
  add_change(r, lb_cmd, lb::LbOp::add, "add a backend to a service (or end its draining)");
  add_change(r, lb_cmd, lb::LbOp::remove, "remove a backend from a service");
  add_change(r, lb_cmd, lb::LbOp::drain, "take a backend out of the ring; its flows finish");
  add_change(r, lb_cmd, lb::LbOp::weight, "change a backend's weight");
}

}  // namespace bpfgate::cli
