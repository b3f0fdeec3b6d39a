// The load balancer's control plane run by the agent (issue 15): the lb:
// section loads and pins the balancer, `lb list` reads it from the pins,
// `lb drain|weight|add|remove` change the Maglev rings (read here straight
// from the pinned maps), a reload keeps the backend ids and the runtime
// overlay, a bad config is refused with FILE:LINE and the running generation
// stays, a restarted agent adopts the pins, SIGTERM removes them.
#include <arpa/inet.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "bpf/map.hpp"
#include "bpfgate/abi/lb.h"
#include "support/agent.hpp"
#include "support/prometheus_parse.hpp"
#include "support/system.hpp"

namespace bpfgate::test {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

std::string name(const std::string &suffix) {
  return fmt::format("bglb{}{}", getpid() % 100000, suffix);
}

constexpr uint32_t kTable = 251;

// A bpffs of the test's own, so that runs on one machine never share the balancer's pins.
class Bpffs {
 public:
  Bpffs() : dir_("/tmp/" + name("-bpffs")) {
    run("umount " + dir_ + " 2>/dev/null; rmdir " + dir_ + " 2>/dev/null");
    run_ok("mkdir -p " + dir_ + " && mount -t bpf bpf " + dir_);
  }
  ~Bpffs() { run("umount " + dir_ + " && rmdir " + dir_); }
  const std::string &dir() const { return dir_; }

 private:
  std::string dir_;
};

// The running generation's ring of the service at `vip` (v4, TCP), read from the pins:
// backend id -> entries.
std::map<uint32_t, uint32_t> ring_of(const std::string &pins, const std::string &vip,
                                     uint16_t port) {
  std::map<uint32_t, uint32_t> out;
  auto ctl = bpf::Map<__u32, bg_lb_ctl>::open_pinned(pins + "/ctl");
  auto vips = bpf::Map<bg_lb_vip_key, bg_lb_service>::open_pinned(pins + "/vips");
  auto ring = bpf::Map<__u32, __u32>::open_pinned(pins + "/ring");
  if (!ctl || !vips || !ring) {
    ADD_FAILURE() << "the balancer's maps are not pinned under " << pins;
    return out;
  }
  auto c = ctl->lookup(0);
  bg_lb_vip_key k{};
  k.addr[10] = k.addr[11] = 0xff;
  inet_pton(AF_INET, vip.c_str(), k.addr + 12);
  k.port = htons(port);
  k.proto = IPPROTO_TCP;
  k.gen = static_cast<__u8>((*c)->active);
  auto svc = vips->lookup(k);
  if (!svc || !*svc) {
    ADD_FAILURE() << "no VIP " << vip << " in generation " << (*c)->active;
    return out;
  }
  EXPECT_EQ((*c)->ring_size, kTable);
  for (uint32_t i = 0; i < kTable; i++) {
    auto id = ring->lookup((*svc)->slot * kTable + i);
    out[id && *id ? **id : 0]++;
  }
  return out;
}

class LbAgent : public ::testing::Test {
 protected:
  void SetUp() override {
    make_veth(ns_, name("x"), "198.18.40.254/24", ns_, name("y"), "198.18.41.254/24");
  }
  void TearDown() override { agent_.stop(); }

  std::string pins() const { return bpffs_.dir() + "/bpfgate-lb"; }
  std::string log() const { return agent_.log(); }
  std::string bpfgate() const { return ns_.exec() + bpfgate_bin() + " --bpffs " + bpffs_.dir(); }
  CmdResult lb(const std::string &args) const {
    return run(bpfgate() + " lb " + args + " --socket " + agent_.socket());
  }
  json list() const {
    auto r = run(bpfgate() + " -j lb list --state-dir " + dir_.string());
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return json::parse(r.out, nullptr, false);
  }
  std::map<uint32_t, uint32_t> web_ring() const { return ring_of(pins(), "198.18.40.1", 80); }

  std::string config(const std::string &extra_backends = "", bool keep = false) const {
    return fmt::format(R"(interfaces: [{{name: {x}}}]
agent: {{control_socket: {sock}, state_dir: {dir}, keep_datapath: {keep}}}
sweep: {{interval: 100ms}}
metrics: {{listen: 127.0.0.1:9479}}
lb:
  table_size: {table}
  connections: 4096
  idle_timeout: 30s
  interfaces: [{y}]
  services:
    - name: web
      vip: 198.18.40.1:80/tcp
      backends:
        - {{address: 198.18.41.1:8080, weight: 100}}
        - {{address: 198.18.41.2:8080, weight: 100}}
        - {{address: 198.18.41.3, weight: 50}}
{extra}    - name: dns6
      vip: "[2001:db8:40::1]:53/udp"
      backends: ["[2001:db8:41::1]"]
)",
                       fmt::arg("x", name("x")), fmt::arg("y", name("y")),
                       fmt::arg("sock", agent_.socket()), fmt::arg("dir", dir_.string()),
                       fmt::arg("keep", keep ? "true" : "false"), fmt::arg("table", kTable),
                       fmt::arg("extra", extra_backends));
  }
  void start(const std::string &text) {
    std::ofstream(agent_.config()) << text;
    if (!agent_.start(bpfgate()))
      FAIL() << "the agent did not come up: " << log();
  }
  // id of each web backend by address, from `lb list -j`.
  std::map<std::string, uint32_t> web_ids() const {
    std::map<std::string, uint32_t> out;
    json l = list();
    for (const auto &s : l["services"])
      if (s["name"] == "web")
        for (const auto &b : s["backends"])
          out[b["address"].get<std::string>()] = b["id"].get<uint32_t>();
    return out;
  }

  Netns ns_{name("g")};
  Bpffs bpffs_;
  ScratchDir dir_{name("-agent")};
  AgentProcess agent_{dir_.path()};
};

TEST_F(LbAgent, PinsListRuntimeChangesReloadAndStop) {
  ASSERT_NO_FATAL_FAILURE(start(config()));
  for (const char *pin :
       {"prog", "ctl", "vips", "ring", "backends", "conns", "reverse", "stats", "counters"})
    EXPECT_TRUE(fs::exists(pins() + "/" + pin)) << pin << "\n" << log();
  EXPECT_TRUE(fs::exists(pins() + "/link_" + name("y"))) << "attached alone on lb.interfaces";
  std::string next = bpffs_.dir() + "/bpfgate/" + name("x") + "/" + BG_PIN_NEXT;
  if (!fs::exists(next)) {
    EXPECT_TRUE(contains(log(), "predates the balancer")) << log();
  }

  json l = list();
  ASSERT_TRUE(l.is_object());
  ASSERT_EQ(l["services"].size(), 2u) << l.dump();
  EXPECT_EQ(l["table_size"], kTable);
  EXPECT_EQ(l["interfaces"], json::array({name("y")}));
  auto ids = web_ids();
  ASSERT_EQ(ids.size(), 3u) << l.dump();
  uint32_t a = ids["198.18.41.1:8080"], b = ids["198.18.41.2:8080"], c = ids["198.18.41.3:80"];
  EXPECT_TRUE(a && b && c && a != b && b != c && a != c);
  auto ring = web_ring();
  EXPECT_EQ(ring[0], 0u) << "every entry filled";
  EXPECT_NEAR(ring[a], kTable * 0.4, 3);
  EXPECT_NEAR(ring[b], kTable * 0.4, 3);
  EXPECT_NEAR(ring[c], kTable * 0.2, 3);
  for (const auto &s : l["services"])
    for (const auto &be : s["backends"])
      if (be["id"] == a) {
        EXPECT_EQ(be["ring_entries"], ring[a]) << "`lb list` shows the ring as the pins hold it";
      }

  // Drain: out of the ring, still listed, its id kept.
  auto r = lb("drain web 198.18.41.2:8080");
  ASSERT_EQ(r.exit_code, 0) << r.err << log();
  ring = web_ring();
  EXPECT_EQ(ring.count(b), 0u);
  EXPECT_NEAR(ring[a], kTable * 2 / 3.0, 3);
  EXPECT_TRUE(contains(log(), "audit: action=lb_drain service=web backend=198.18.41.2:8080"))
      << log();
  // Weight: shares follow.
  ASSERT_EQ(lb("weight web 198.18.41.1:8080 300").exit_code, 0);
  ring = web_ring();
  EXPECT_NEAR(ring[a], kTable * 300 / 350.0, 3);
  // Add: a new id, a share, shown as runtime.
  ASSERT_EQ(lb("add web 198.18.41.9:8080 --weight 50").exit_code, 0) << log();
  ids = web_ids();
  uint32_t d = ids["198.18.41.9:8080"];
  ASSERT_NE(d, 0u);
  EXPECT_TRUE(d != a && d != b && d != c);
  ring = web_ring();
  EXPECT_NEAR(ring[d], kTable * 50 / 400.0, 3);
  l = list();
  for (const auto &s : l["services"])
    for (const auto &be : s["backends"]) {
      if (be["id"] == d) {
        EXPECT_TRUE(be["runtime"].get<bool>());
      }
      if (be["id"] == a) {
        EXPECT_TRUE(be["runtime_weight"].get<bool>());
        EXPECT_EQ(be["weight"]["configured"], 100);
        EXPECT_EQ(be["weight"]["set"], 300);
      }
      if (be["id"] == b) {
        EXPECT_EQ(be["state"], "draining");
      }
    }
  // Remove: gone from the ring and the list.
  ASSERT_EQ(lb("remove web 198.18.41.3").exit_code, 0);
  ring = web_ring();
  EXPECT_EQ(ring.count(c), 0u);
  EXPECT_EQ(web_ids().count("198.18.41.3:80"), 0u);

  // Bad requests: a clear error, nothing changed.
  auto before = web_ring();
  for (const char *bad : {"weight web 198.18.41.77:8080 5", "add nope 198.18.41.1",
                          "add web 2001:db8::9", "drain web 198.18.41.2:8080"}) {
    r = lb(bad);
    EXPECT_EQ(r.exit_code, 1) << bad;
    EXPECT_TRUE(contains(r.err, "nothing changed")) << bad << ": " << r.err;
    EXPECT_EQ(web_ring(), before) << bad;
  }
  EXPECT_NE(lb("weight web 198.18.41.1 70000").exit_code, 0) << "out of range";

  // A reload (a backend more in the config) keeps the ids and the runtime changes.
  std::ofstream(agent_.config()) << config("        - {address: 198.18.41.4:8080}\n");
  r = run(bpfgate() + " reload --socket " + agent_.socket());
  ASSERT_EQ(r.exit_code, 0) << r.err << log();
  ids = web_ids();
  EXPECT_EQ(ids["198.18.41.1:8080"], a);
  EXPECT_EQ(ids["198.18.41.2:8080"], b);
  EXPECT_EQ(ids["198.18.41.9:8080"], d);
  EXPECT_EQ(ids.count("198.18.41.3:80"), 0u) << "still removed";
  uint32_t e = ids["198.18.41.4:8080"];
  EXPECT_NE(e, 0u);
  ring = web_ring();
  EXPECT_EQ(ring.count(b), 0u) << "still draining";
  EXPECT_NEAR(ring[a], kTable * 300 / 450.0, 3) << "weight 300 kept";

  // A bad line: refused with FILE:LINE, the running generation stays.
  before = web_ring();
  uint32_t gen = list()["generation"];
  std::string bad = config("        - {address: 198.18.41.5:8080, weight: 70000}\n");
  std::ofstream(agent_.config()) << bad;
  r = run(bpfgate() + " reload --socket " + agent_.socket());
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_TRUE(contains(r.err, agent_.config() + ":17: web.backends.weight")) << r.err;
  EXPECT_EQ(web_ring(), before);
  EXPECT_EQ(list()["generation"], gen);

  // SIGTERM: everything unpinned, the link gone.
  agent_->kill(SIGTERM);
  EXPECT_EQ(agent_->wait(5000ms), 0) << log();
  agent_.reset();
  EXPECT_FALSE(fs::exists(pins())) << log();
  EXPECT_TRUE(contains(log(), "audit: action=lb_remove")) << log();
}

TEST_F(LbAgent, ARestartedAgentAdoptsThePinsIdsAndOverlay) {
  ASSERT_NO_FATAL_FAILURE(start(config("", true)));
  ASSERT_EQ(lb("drain web 198.18.41.2:8080").exit_code, 0) << log();
  ASSERT_EQ(lb("add web 198.18.41.9 --weight 20").exit_code, 0) << log();
  auto ids = web_ids();
  auto ring = web_ring();
  uint32_t prog = list()["prog_id"];
  agent_->kill(SIGTERM);
  ASSERT_EQ(agent_->wait(5000ms), 0) << log();
  agent_.reset();
  ASSERT_TRUE(fs::exists(pins() + "/ring")) << "keep_datapath: the pins stay";
  EXPECT_EQ(web_ring(), ring);

  ASSERT_NO_FATAL_FAILURE(start(config("", true)));
  EXPECT_TRUE(contains(log(), "audit: action=lb_adopt")) << log();
  EXPECT_EQ(list()["prog_id"], prog) << "the same program";
  EXPECT_EQ(web_ids(), ids) << "ids recovered from the pins";
  EXPECT_EQ(web_ring(), ring) << "the overlay (drain, add) kept in the state dir";

  // /metrics shows the backends, as the ring holds them.
  auto m = run(ns_.exec() + "curl -sf http://127.0.0.1:9479/metrics");
  ASSERT_EQ(m.exit_code, 0) << m.err;
  auto p = prom::parse(m.out);
  ASSERT_TRUE(p) << p.error().what();
  uint32_t a = ids["198.18.41.1:8080"];
  EXPECT_EQ(prom::value_of(*p, "bpfgate_lb_backend_ring_entries",
                           {{"service", "web"}, {"backend", "198.18.41.1:8080"}}),
            ring[a]);
  EXPECT_EQ(prom::value_of(*p, "bpfgate_lb_backend_draining",
                           {{"service", "web"}, {"backend", "198.18.41.2:8080"}}),
            1);
  EXPECT_EQ(prom::value_of(*p, "bpfgate_lb_backend_weight",
                           {{"backend", "198.18.41.9:80"}, {"kind", "effective"}}),
            20);
  // Every bpfgate_lb_ metric the dashboard uses has samples here.
  std::ifstream in(std::string(BPFGATE_SOURCE_DIR) + "/deploy/grafana-bpfgate.json");
  std::string text((std::istreambuf_iterator<char>(in)), {});
  int used = 0;
  for (size_t i = text.find("bpfgate_lb_"); i != std::string::npos;
       i = text.find("bpfgate_lb_", i + 1), used++) {
    size_t j = i;
    while (j < text.size() && (std::islower(static_cast<unsigned char>(text[j])) || text[j] == '_'))
      j++;
    std::string metric = text.substr(i, j - i);
    bool found = false;
    for (const auto &s : p->samples)
      found = found || s.name == metric;
    EXPECT_TRUE(found) << "the dashboard uses " << metric << ", which the agent does not export";
  }
  EXPECT_GE(used, 10);

  // Stopped for good (keep_datapath off): the pins go.
  std::ofstream(agent_.config()) << config("", false);
  ASSERT_EQ(run(bpfgate() + " reload --socket " + agent_.socket()).exit_code, 0) << log();
  agent_.stop();
  EXPECT_FALSE(fs::exists(pins())) << log();
}

// An agent of an earlier version left its pins with a connection table of
// another layout (32-byte entries before the route cache): a new agent
// starting says so and replaces the balancer, whose flows the hash places
// again, instead of adopting maps it would misread or refusing to start.
TEST_F(LbAgent, PinsOfAnOlderLayoutAreReplacedAtStartAndSaidSo) {
  ASSERT_NO_FATAL_FAILURE(start(config("", true)));
  uint32_t prog = list()["prog_id"];
  agent_->kill(SIGTERM);
  ASSERT_EQ(agent_->wait(5000ms), 0) << log();
  agent_.reset();
  run_ok("rm " + pins() + "/conns");
  run_ok(
      fmt::format("bpftool map create {}/conns type lru_hash key {} value 32 entries 4096 "
                  "name bg_lb_conns",
                  pins(), sizeof(bg_lb_conn_key)));

  ASSERT_NO_FATAL_FAILURE(start(config("", true)));
  EXPECT_TRUE(contains(
      log(), fmt::format("key/value size {}/32, expected {}/{}: built by another "
                         "version of bpfgate",
                         sizeof(bg_lb_conn_key), sizeof(bg_lb_conn_key), sizeof(bg_lb_conn))))
      << log();
  EXPECT_TRUE(contains(log(), "its connection table is lost")) << log();
  EXPECT_FALSE(contains(log(), "audit: action=lb_adopt")) << log();
  EXPECT_NE(list()["prog_id"], prog) << "a program of this version";
  auto conns = bpf::open_pinned(pins() + "/conns");
  ASSERT_TRUE(conns) << conns.error().what();
  auto info = bpf::map_info(conns->get());
  ASSERT_TRUE(info) << info.error().what();
  EXPECT_EQ(info->value_size, sizeof(bg_lb_conn));
  EXPECT_EQ(web_ring().size(), 3u) << "the services are in the new maps";
}

}  // namespace
}  // namespace bpfgate::test
