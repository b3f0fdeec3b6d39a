// The XDP filter's events (include/bpfgate/abi/events.h) as the control plane
// sees them: choosing the transport (ring buffer, or perf buffer where the
// kernel has no ring buffer), preparing a filter object before load, pinning
// the event maps, decoding records, and the JSON and text forms that
// `bpfgate events` and the agent's log print.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <bpf/libbpf.h>

#include "bpfgate/abi/events.h"
#include "bpfgate/abi/xdp.h"
#include "bpf/pin_set.hpp"
#include "features/observe/observe_config.hpp"
#include "util/result.hpp"

namespace bpfgate::agent {

// events.buffer in the config (features/observe/observe_config.hpp).
using core::EventBufferChoice;
using core::parse_event_buffer;

struct TransportChoice {
  bg_event_transport transport = BG_EVENT_RINGBUF;
  std::string note;  // set when auto fell back, or the choice cannot work here
};
// kAuto: a ring buffer where the kernel has them (5.8+), else a perf buffer.
Result<TransportChoice> resolve_transport(EventBufferChoice choice);

// Between open and load of any object that includes bpf/xdp/events.h: makes
// bg_events a perf event array when asked, and tells the program which.
template <class Skel>
Status set_event_transport(Skel &skel, bg_event_transport t) {
  skel->rodata->bg_event_transport = t;
  if (t == BG_EVENT_RINGBUF)
    return {};
  bpf_map *m = skel->maps.bg_events;
  if (bpf_map__set_type(m, BPF_MAP_TYPE_PERF_EVENT_ARRAY) || bpf_map__set_key_size(m, 4) ||
      bpf_map__set_value_size(m, 4) || bpf_map__set_max_entries(m, 0))
    return make_error(EINVAL, "turn the event ring buffer into a perf event array");
  return {};
}

// Writes the drop-sample interval (0: no samples) into a filter's event_config map.
Status set_sample_interval(int event_config_fd, uint64_t interval_ns);
// The event maps a filter pins beside its own (bpf::PinSet entries).
std::vector<bpf::PinSpec> event_pins();

// One event, from the datapath or made by the agent (released, manual block).
struct Event {
  std::string iface;
  bg_event raw{};
  uint64_t wall_ns = 0;    // CLOCK_REALTIME
  std::string rule_match;  // RULE_HIT and samples under a rule: "udp/53"
};

// A record read from a filter's event buffer; monotonic time becomes wall time.
Result<Event> decode_event(const std::string &iface, std::string_view record);
// An event the agent makes: a block that expired, or one an operator added.
Event agent_event(const std::string &iface, bg_event_type type, const bg_lpm_key &prefix,
                  uint32_t block_reason, uint64_t ttl_ns);

std::string event_type_name(uint32_t type);
std::string event_json(const Event &e);  // one line, no newline
std::string event_text(const Event &e);  // one line, no newline

// CLOCK_REALTIME - CLOCK_MONOTONIC in ns.
int64_t realtime_offset_ns();

}  // namespace bpfgate::agent
