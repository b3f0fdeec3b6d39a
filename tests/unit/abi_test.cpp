// The ABI shared by BPF and C++: sizes and offsets pinned, so a change on one
// side that the other does not see fails here.
#include <gtest/gtest.h>

#include <cstddef>

#include "bpfgate/abi/events.h"
#include "bpfgate/abi/observe.h"
#include "bpfgate/abi/parse.h"
#include "bpfgate/abi/fleet.h"
#include "bpfgate/abi/xdp.h"

namespace {

// What bg_parse makes of a frame, as the parser tests read it back (abi/parse.h).
static_assert(sizeof(bg_packet) == 50);
static_assert(offsetof(bg_packet, l3_proto) == 32);
static_assert(offsetof(bg_packet, vlan_id) == 38);
static_assert(offsetof(bg_packet, sport) == 40);
static_assert(offsetof(bg_packet, tcp_flags) == 44);
static_assert(offsetof(bg_packet, l3_off) == 46);
static_assert(offsetof(bg_packet, l4_off) == 48);
static_assert(sizeof(bg_parse_probe_out) == 60);
static_assert(offsetof(bg_parse_probe_out, pkt) == 8);
static_assert(sizeof(bg_counter) == 16);
static_assert(sizeof(bg_limit) == 32);
static_assert(sizeof(bg_src_key) == 24);
static_assert(offsetof(bg_src_key, rule) == 16);
static_assert(offsetof(bg_src_key, kind) == 18);
static_assert(offsetof(bg_src_key, prefixlen) == 19);
static_assert(sizeof(bg_src_state) == 72);
static_assert(sizeof(bg_hot_slot) == 112);  // per-CPU values: a multiple of 8
static_assert(offsetof(bg_hot_slot, epoch) == 24);
static_assert(offsetof(bg_hot_slot, packets) == 64);
static_assert(offsetof(bg_hot_slot, hot) == 104);
static_assert(offsetof(bg_src_state, tat_ns) == 0);
static_assert(offsetof(bg_src_state, last_seen_ns) == 8);
static_assert(offsetof(bg_src_state, packets) == 16);
static_assert(offsetof(bg_src_state, bytes) == 24);
static_assert(offsetof(bg_src_state, drops) == 32);
static_assert(offsetof(bg_src_state, first_seen_ns) == 40);
static_assert(offsetof(bg_src_state, over_since_ns) == 48);
static_assert(offsetof(bg_src_state, last_drop_ns) == 56);
static_assert(sizeof(bg_lpm_key) == 20);
static_assert(offsetof(bg_lpm_key, addr) == 4);
static_assert(sizeof(bg_rule) == 40);
static_assert(offsetof(bg_rule, action) == 32);
static_assert(sizeof(bg_block) == 32);
static_assert(offsetof(bg_block, reason) == 24);
// The fleet's origins (bpfgate/abi/fleet.h).
static_assert(sizeof(bg_fleet_origin) == 80);
static_assert(offsetof(bg_fleet_origin, at_ms) == 64);
static_assert(offsetof(bg_fleet_origin, expires) == 72);
static_assert(sizeof(bg_settings) == 160);
static_assert(offsetof(bg_settings, unproven_limit) == 120);
static_assert(offsetof(bg_settings, syn_mss4) == 152);
static_assert(offsetof(bg_settings, syn_wscale) == 156);
static_assert(offsetof(bg_settings, block_limit) == 88);
static_assert(offsetof(bg_settings, new_source_limit) == 32);
static_assert(offsetof(bg_settings, block_after_ns) == 64);
static_assert(offsetof(bg_settings, prefix_v4) == 80);
static_assert(offsetof(bg_settings, unparsed_verdict) == 84);
static_assert(sizeof(bg_config) == 336);
static_assert(sizeof(bg_runtime) == 8);
static_assert(sizeof(bg_admission) == 8);
static_assert(sizeof(bg_early) == 32);  // per-CPU values: a multiple of 8
static_assert(offsetof(bg_config, active) == 0);
static_assert(offsetof(bg_config, generation) == 8);
// Where older versions had padding (zero): pins of those keep working.
static_assert(offsetof(bg_config, bypass) == 12);
static_assert(offsetof(bg_config, frags) == 13);
static_assert(static_cast<unsigned>(BG_OP_WOULD_DROP) + BG_REASON_NR <= BG_OP_SLOTS);
static_assert(offsetof(bg_config, gen) == 16);

// Events and per-service probes (issue 5).
static_assert(sizeof(bg_event) == 56);
static_assert(offsetof(bg_event, type) == 8);
static_assert(offsetof(bg_event, reason) == 12);
static_assert(offsetof(bg_event, addr) == 16);
static_assert(offsetof(bg_event, value) == 32);
static_assert(offsetof(bg_event, rule) == 40);
static_assert(offsetof(bg_event, len) == 44);
static_assert(offsetof(bg_event, dport) == 48);
static_assert(offsetof(bg_event, proto) == 50);
static_assert(offsetof(bg_event, prefixlen) == 51);
static_assert(sizeof(bg_event_config) == 8);
static_assert(sizeof(bg_event_sampler) == 24);
static_assert(sizeof(bg_rule_stats) == 24);
static_assert(offsetof(bg_rule_stats, generation) == 16);
static_assert(sizeof(bg_obs_service) == 4);
static_assert(sizeof(bg_obs_service_info) == 40);
static_assert(offsetof(bg_obs_service_info, port) == 32);
static_assert(sizeof(bg_obs_stats) == 20 * 8 + 2 * BG_OBS_HIST_BUCKETS * 8);
static_assert(offsetof(bg_obs_stats, status) == 24);
static_assert(offsetof(bg_obs_stats, handshakes) == 88);
static_assert(offsetof(bg_obs_stats, retransmits) == 120);
static_assert(offsetof(bg_obs_stats, latency_hist) == 160);
static_assert(offsetof(bg_obs_stats, handshake_hist) == 160 + BG_OBS_HIST_BUCKETS * 8);
static_assert(sizeof(bg_obs_flow_key) == 40);
static_assert(offsetof(bg_obs_flow_key, client_port) == 32);
static_assert(sizeof(bg_obs_flow) == 16);
static_assert(BG_HTTP_NR <= 8, "status[] has 8 slots");
static_assert((BG_OBS_HIST_BUCKETS & (BG_OBS_HIST_BUCKETS - 1)) == 0, "masked as an index");

TEST(Abi, CounterKeysAreDenseAndDistinct) {
  std::vector<bool> seen(BG_COUNTER_NR, false);
  for (uint32_t v = 0; v < BG_VERDICT_NR; v++)
    for (uint32_t r = 0; r < BG_REASON_NR; r++) {
      uint32_t k = bg_counter_key(v, r);
      ASSERT_LT(k, static_cast<uint32_t>(BG_COUNTER_NR));
      EXPECT_FALSE(seen[k]);
      seen[k] = true;
    }
}

}  // namespace

// The tc datapath (issue 6).
#include "bpfgate/abi/tc.h"

namespace {

static_assert(sizeof(bg_tc_match) == 80);
static_assert(offsetof(bg_tc_match, src_mask) == 16);
static_assert(offsetof(bg_tc_match, dst) == 32);
static_assert(offsetof(bg_tc_match, dst_mask) == 48);
static_assert(offsetof(bg_tc_match, sport_lo) == 64);
static_assert(offsetof(bg_tc_match, dport_lo) == 68);
static_assert(offsetof(bg_tc_match, l4_proto) == 72);
static_assert(offsetof(bg_tc_match, dscp) == 73);
static_assert(offsetof(bg_tc_match, flags) == 76);
static_assert(sizeof(bg_tc_class) == 160);
static_assert(offsetof(bg_tc_class, name) == 80);
static_assert(offsetof(bg_tc_class, rate_bps) == 112);
static_assert(offsetof(bg_tc_class, burst_bytes) == 120);
static_assert(offsetof(bg_tc_class, burst_ns) == 128);
static_assert(offsetof(bg_tc_class, skb_priority) == 136);
static_assert(offsetof(bg_tc_class, mirror_ifindex) == 140);
static_assert(offsetof(bg_tc_class, mirror_sample) == 144);
static_assert(offsetof(bg_tc_class, flags) == 148);
static_assert(offsetof(bg_tc_class, dirs) == 152);
static_assert(offsetof(bg_tc_class, exceed) == 153);
static_assert(offsetof(bg_tc_class, set_dscp) == 154);
static_assert(offsetof(bg_tc_class, exceed_dscp) == 155);
static_assert(sizeof(bg_tc_bucket) == 64, "a cache line each: no false sharing between classes");
static_assert(sizeof(bg_tc_stats) == 96);
static_assert(offsetof(bg_tc_stats, mirror_seq) == 40);
static_assert(offsetof(bg_tc_stats, win_start_ns) == 48);
static_assert(offsetof(bg_tc_stats, prev_ns) == 88);
static_assert(sizeof(bg_tc_config) == 32);
static_assert(offsetof(bg_tc_config, active) == 0);
static_assert(offsetof(bg_tc_config, owned) == 12);
static_assert(offsetof(bg_tc_config, htb_rate_bps) == 16);
static_assert(BG_TC_STAGE_NR == 5);
static_assert(BG_TC_PRIORITY < 0xb6e0, "ours run before the observability probes on clsact");

}  // namespace

// The XDP load balancer (issue 15): its datapath and its control plane agree on these.
#include "bpfgate/abi/lb.h"

namespace {

static_assert(sizeof(bg_lb_ctl) == 16);
static_assert(offsetof(bg_lb_ctl, ring_size) == 4);
static_assert(offsetof(bg_lb_ctl, conn_idle_ns) == 8);
static_assert(sizeof(bg_lb_vip_key) == 20, "a hash key: no hidden padding");
static_assert(offsetof(bg_lb_vip_key, port) == 16);
static_assert(offsetof(bg_lb_vip_key, proto) == 18);
static_assert(offsetof(bg_lb_vip_key, gen) == 19);
static_assert(sizeof(bg_lb_service) == 16);
static_assert(offsetof(bg_lb_service, slot) == 4);
static_assert(offsetof(bg_lb_service, flags) == 8);
static_assert(sizeof(bg_lb_backend) == 24);
static_assert(offsetof(bg_lb_backend, port) == 16);
static_assert(offsetof(bg_lb_backend, flags) == 18);
static_assert(offsetof(bg_lb_backend, service) == 20);
static_assert(sizeof(bg_lb_conn_key) == 40, "bg_lb_hash reads ten words");
static_assert(offsetof(bg_lb_conn_key, vip) == 16);
static_assert(offsetof(bg_lb_conn_key, cport) == 32);
static_assert(offsetof(bg_lb_conn_key, vport) == 34);
static_assert(offsetof(bg_lb_conn_key, proto) == 36);
static_assert(sizeof(bg_lb_conn) == 64);
static_assert(offsetof(bg_lb_conn, flags) == 4);
static_assert(offsetof(bg_lb_conn, last_ns) == 8);
static_assert(offsetof(bg_lb_conn, opened_ns) == 16);
static_assert(offsetof(bg_lb_conn, request_ns) == 24);
static_assert(offsetof(bg_lb_conn, route) == 32);
static_assert(sizeof(bg_lb_route) == 32);
static_assert(offsetof(bg_lb_route, ifindex) == 12);
static_assert(offsetof(bg_lb_route, dmac) == 16);
static_assert(offsetof(bg_lb_route, smac) == 22);
static_assert(offsetof(bg_lb_route, mtu) == 28);
static_assert(sizeof(bg_lb_rev_key) == 40);
static_assert(offsetof(bg_lb_rev_key, client) == 16);
static_assert(offsetof(bg_lb_rev_key, bport) == 32);
static_assert(offsetof(bg_lb_rev_key, cport) == 34);
static_assert(offsetof(bg_lb_rev_key, proto) == 36);
static_assert(sizeof(bg_lb_rev) == 56);
static_assert(sizeof(bg_lb_hot) == 112);
static_assert(offsetof(bg_lb_hot, sport) == 32);
static_assert(offsetof(bg_lb_hot, active) == 40);
static_assert(offsetof(bg_lb_hot, addr) == 56);
static_assert(offsetof(bg_lb_hot, seen) == 76);
static_assert(offsetof(bg_lb_hot, route) == 80);
static_assert(offsetof(bg_lb_rev, route) == 24);
static_assert(offsetof(bg_lb_rev, vport) == 16);
static_assert(offsetof(bg_lb_rev, backend) == 20);
static_assert(sizeof(bg_lb_backend_stats) == 80);
static_assert(offsetof(bg_lb_backend_stats, rx_packets) == 16);
static_assert(offsetof(bg_lb_backend_stats, new_flows) == 32);
static_assert(offsetof(bg_lb_backend_stats, resets) == 40);
static_assert(offsetof(bg_lb_backend_stats, connect_ns) == 48);
static_assert(offsetof(bg_lb_backend_stats, connects) == 56);
static_assert(offsetof(bg_lb_backend_stats, response_ns) == 64);
static_assert(offsetof(bg_lb_backend_stats, responses) == 72);
static_assert(BG_LB_COUNTER_NR == 11);
static_assert(BG_NEXT_LB == 0, "the filter's program array has one slot");

}  // namespace
