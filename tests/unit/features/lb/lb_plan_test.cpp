// The runtime overlay and the plan an apply writes (features/lb/lb_plan.hpp).
#include "features/lb/lb_plan.hpp"

#include <gtest/gtest.h>

#include "core/config.hpp"

namespace bpfgate::agent::lb {
namespace {

std::vector<core::LbServiceConfig> services() {
  auto c = core::parse_config(R"(interfaces: [{name: eth0}]
lb:
  services:
    - name: web
      vip: 198.18.1.1:80/tcp
      backends: [{address: 198.18.2.2, weight: 50}, 198.18.2.3:8080]
    - name: dns
      vip: "[2001:db8::1]:53/udp"
)",
                              "gw.yaml");
  EXPECT_TRUE(c) << c.error().message();
  return c ? c->lb->services : std::vector<core::LbServiceConfig>{};
}

Overlay change(const Overlay &o, const std::string &line, std::string *err = nullptr) {
  auto r = parse_lb_request(line);
  if (!r) {
    if (err)
      *err = r.error().message();
    return o;
  }
  std::string what;
  auto next = change_overlay(o, services(), *r, what);
  if (!next) {
    if (err)
      *err = next.error().message();
    return o;
  }
  return *next;
}

TEST(LbPlan, RequestsParseAndFormat) {
  auto r = parse_lb_request("lb add web 198.18.2.9:80 7");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->op, LbOp::add);
  EXPECT_EQ(r->weight, 7u);
  EXPECT_EQ(format_lb_request(*r), "lb add web 198.18.2.9:80 7");
  EXPECT_FALSE(parse_lb_request("lb weight web 198.18.2.2"));
  EXPECT_FALSE(parse_lb_request("lb weight web 198.18.2.2 70000"));
  EXPECT_FALSE(parse_lb_request("lb frobnicate web 198.18.2.2"));
  EXPECT_FALSE(parse_lb_request("lb drain web 198.18.2.2 5"));
}

TEST(LbPlan, AddDrainWeightRemove) {
  Overlay o = change({}, "lb add web 198.18.2.9 10");
  auto b = backends_of(services()[0], o);
  ASSERT_EQ(b.size(), 3u);
  EXPECT_EQ(b[2].key(), "198.18.2.9:80");
  EXPECT_TRUE(b[2].runtime_added);
  EXPECT_EQ(b[2].weight, 10u);
  o = change(o, "lb drain web 198.18.2.2:80");
  o = change(o, "lb weight web 198.18.2.3:8080 5");
  b = backends_of(services()[0], o);
  EXPECT_TRUE(b[0].draining);
  EXPECT_EQ(b[0].weight, 50u);
  EXPECT_EQ(b[1].weight, 5u);
  EXPECT_EQ(b[1].configured, 100u);
  EXPECT_TRUE(b[1].runtime_weight);
  o = change(o, "lb add web 198.18.2.2");  // ends the draining
  EXPECT_FALSE(backends_of(services()[0], o)[0].draining);
  o = change(o, "lb remove web 198.18.2.2");
  o = change(o, "lb remove web 198.18.2.9");
  b = backends_of(services()[0], o);
  ASSERT_EQ(b.size(), 1u);
  EXPECT_EQ(b[0].key(), "198.18.2.3:8080");
  // Back: the removed config backend returns with the config's weight.
  o = change(o, "lb add web 198.18.2.2");
  EXPECT_EQ(backends_of(services()[0], o).size(), 2u);
  EXPECT_EQ(backends_of(services()[0], o)[0].weight, 50u);
}

TEST(LbPlan, BadRequestsChangeNothing) {
  std::string err;
  Overlay o = change({}, "lb drain web 198.18.2.2");
  for (const char *line :
       {"lb add web 198.18.2.3:8080", "lb add nope 198.18.2.2", "lb add web 2001:db8::5",
        "lb remove web 198.18.2.77", "lb drain web 198.18.2.2", "lb weight web 198.18.2.8 3"}) {
    err.clear();
    Overlay next = change(o, line, &err);
    EXPECT_EQ(next, o) << line;
    EXPECT_FALSE(err.empty()) << line;
  }
  change(o, "lb add nope 198.18.2.2", &err);
  EXPECT_EQ(err, "no service 'nope' (see `bpfgate lb list`)");
  change(o, "lb add web 2001:db8::5", &err);
  EXPECT_NE(err.find("of one family"), std::string::npos) << err;
}

TEST(LbPlan, SignalsAndPlan) {
  Overlay o = change({}, "lb drain web 198.18.2.3:8080");
  Signals s;
  s.down[{"web", "198.18.2.2:80"}] = true;
  s.weights[{"web", "198.18.2.2:80"}] = 20;
  auto p = plan(services(), o, s);
  ASSERT_EQ(p.size(), 2u);
  EXPECT_EQ(p[0].name, "web");
  ASSERT_EQ(p[0].backends.size(), 2u);
  EXPECT_TRUE(p[0].backends[0].down);
  EXPECT_EQ(p[0].backends[0].weight, 20u);
  EXPECT_TRUE(p[0].backends[1].draining);
  EXPECT_TRUE(p[1].backends.empty());
}

TEST(LbPlan, OverlayRoundTripsAndIsPruned) {
  Overlay o = change(change({}, "lb add web 198.18.2.9 10"), "lb weight web 198.18.2.2 1");
  auto back = overlay_from_json(overlay_to_json(o));
  ASSERT_TRUE(back);
  EXPECT_EQ(*back, o);
  EXPECT_FALSE(overlay_from_json("[]"));
  EXPECT_FALSE(overlay_from_json("{\"services\": {\"web\": {\"x\": {\"added\": 3}}}}"));
  Overlay gone = o;
  gone["old"]["198.18.9.9:80"].added = true;
  EXPECT_EQ(prune_overlay(gone, services()), o) << "a service no longer configured goes";
}

}  // namespace
}  // namespace bpfgate::agent::lb
