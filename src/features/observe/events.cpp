#include "features/observe/events.hpp"

#include <bpf/bpf.h>
#include <netinet/in.h>

#include <ctime>
#include <cstring>

#include <nlohmann/json.hpp>

#include "features/xdp/filter.hpp"
#include "features/xdp/blocklist.hpp"
#include "bpf/features.hpp"
#include "bpf/map.hpp"
#include "bpf/pin.hpp"
#include "core/addr.hpp"
#include "core/cidr.hpp"
#include "core/duration.hpp"

namespace bpfgate::agent {

using nlohmann::json;

Result<TransportChoice> resolve_transport(EventBufferChoice choice) {
  bool ring = bpf::has_map_type(BPF_MAP_TYPE_RINGBUF);
  switch (choice) {
    case EventBufferChoice::kPerf:
      return TransportChoice{BG_EVENT_PERFBUF, ""};
    case EventBufferChoice::kRingbuf:
      if (!ring)
        return make_error(EOPNOTSUPP,
                          "events.buffer is ringbuf, but kernel {} has no BPF ring buffers "
                          "(5.8+): use auto or perf",
                          bpf::kernel_release());
      return TransportChoice{BG_EVENT_RINGBUF, ""};
    case EventBufferChoice::kAuto:
      break;
  }
  if (ring)
    return TransportChoice{BG_EVENT_RINGBUF, ""};
  return TransportChoice{BG_EVENT_PERFBUF,
                         fmt::format("kernel {} has no BPF ring buffers (5.8+): events go "
                                     "through a perf buffer",
                                     bpf::kernel_release())};
}

Status set_sample_interval(int fd, uint64_t interval_ns) {
  bg_event_config c{.sample_interval_ns = interval_ns};
  __u32 zero = 0;
  return bpf::raw::update(fd, &zero, &c, BPF_ANY);
}

std::vector<bpf::PinSpec> event_pins() {
  return {bpf::map_pin(BG_PIN_EVENTS, "bg_events"),
          bpf::map_pin(BG_PIN_EVENT_CONFIG, "bg_event_config"),
          bpf::map_pin(BG_PIN_RULE_STATS, "bg_rule_stats")};
}

int64_t realtime_offset_ns() {
  timespec rt{}, mono{};
  clock_gettime(CLOCK_REALTIME, &rt);
  clock_gettime(CLOCK_MONOTONIC, &mono);
  return (static_cast<int64_t>(rt.tv_sec) - mono.tv_sec) * 1'000'000'000LL +
         (static_cast<int64_t>(rt.tv_nsec) - mono.tv_nsec);
}

Result<Event> decode_event(const std::string &iface, std::string_view record) {
  // A perf buffer may pad a record to 8 bytes; never shorter than ours.
  if (record.size() < sizeof(bg_event))
    return make_error(EPROTO, "event record of {} bytes, expected {}: built by another version?",
                      record.size(), sizeof(bg_event));
  Event e;
  e.iface = iface;
  std::memcpy(&e.raw, record.data(), sizeof(bg_event));
  e.wall_ns = static_cast<uint64_t>(static_cast<int64_t>(e.raw.ts_ns) + realtime_offset_ns());
  return e;
}

Event agent_event(const std::string &iface, bg_event_type type, const bg_lpm_key &prefix,
                  uint32_t block_reason, uint64_t ttl_ns) {
  Event e;
  e.iface = iface;
  e.raw.ts_ns = monotonic_ns();
  e.raw.type = type;
  e.raw.reason = block_reason;
  e.raw.value = ttl_ns;
  std::memcpy(e.raw.addr, prefix.addr, 16);
  e.raw.prefixlen = static_cast<uint8_t>(prefix.prefixlen);
  e.wall_ns = static_cast<uint64_t>(static_cast<int64_t>(e.raw.ts_ns) + realtime_offset_ns());
  return e;
}

std::string event_type_name(uint32_t type) {
  switch (type) {
    case BG_EVENT_BLOCKED:
      return "blocked";
    case BG_EVENT_RELEASED:
      return "released";
    case BG_EVENT_RULE_HIT:
      return "rule_hit";
    case BG_EVENT_DROP_SAMPLE:
      return "drop_sample";
    case BG_EVENT_MANUAL_BLOCK:
      return "manual_block";
    default:
      return "unknown";
  }
}

namespace {

bool is_block(uint32_t type) {
  return type == BG_EVENT_BLOCKED || type == BG_EVENT_RELEASED || type == BG_EVENT_MANUAL_BLOCK;
}

std::string source_of(const bg_event &r) {
  bg_src_key k{};
  std::memcpy(k.addr, r.addr, 16);
  std::string addr = core::format_addr(k);
  if (!is_block(r.type))
    return addr;
  unsigned len = core::is_v4_mapped(k) && r.prefixlen >= 96 ? r.prefixlen - 96u : r.prefixlen;
  return fmt::format("{}/{}", addr, len);
}

std::string proto_name(uint8_t p) {
  switch (p) {
    case IPPROTO_TCP:
      return "tcp";
    case IPPROTO_UDP:
      return "udp";
    case IPPROTO_ICMP:
      return "icmp";
    case IPPROTO_ICMPV6:
      return "icmpv6";
    case 0:
      return "";
    default:
      return std::to_string(p);
  }
}

std::string wall_time(uint64_t wall_ns, bool date) {
  time_t s = static_cast<time_t>(wall_ns / 1'000'000'000ULL);
  tm t{};
  gmtime_r(&s, &t);
  char buf[32];
  std::strftime(buf, sizeof(buf), date ? "%Y-%m-%dT%H:%M:%S" : "%H:%M:%S", &t);
  return fmt::format("{}.{:03}{}", buf, (wall_ns / 1'000'000ULL) % 1000, date ? "Z" : "");
}

}  // namespace

std::string event_json(const Event &e) {
  const bg_event &r = e.raw;
  json j = {{"time", wall_time(e.wall_ns, true)},
            {"iface", e.iface},
            {"type", event_type_name(r.type)},
            {"source", source_of(r)}};
  switch (r.type) {
    case BG_EVENT_BLOCKED:
    case BG_EVENT_RELEASED:
    case BG_EVENT_MANUAL_BLOCK:
      j["reason"] = to_string(static_cast<bg_block_reason>(r.reason));
      if (r.type != BG_EVENT_RELEASED)
        j["ttl_s"] = r.value ? json(r.value / 1e9) : json(nullptr);
      break;
    case BG_EVENT_RULE_HIT:
      j["rule"] = r.rule;
      j["generation"] = r.value;
      break;
    case BG_EVENT_DROP_SAMPLE:
      j["reason"] = to_string(static_cast<bg_reason>(r.reason));
      j["rule"] = r.rule;
      j["len"] = r.len;
      j["not_sampled"] = r.value;
      break;
    default:
      break;
  }
  if (!e.rule_match.empty())
    j["match"] = e.rule_match;
  if (r.type == BG_EVENT_RULE_HIT || r.type == BG_EVENT_DROP_SAMPLE) {
    if (r.proto)
      j["proto"] = proto_name(r.proto);
    if (r.proto == IPPROTO_TCP || r.proto == IPPROTO_UDP)
      j["dport"] = r.dport;
  }
  return j.dump();
}

std::string event_text(const Event &e) {
  const bg_event &r = e.raw;
  std::string head = fmt::format("{} {} {} {}", wall_time(e.wall_ns, false), e.iface,
                                 event_type_name(r.type), source_of(r));
  std::string where;
  if (r.proto)
    where = (r.proto == IPPROTO_TCP || r.proto == IPPROTO_UDP)
                ? fmt::format(" {}/{}", proto_name(r.proto), r.dport)
                : " " + proto_name(r.proto);
  std::string rule = e.rule_match.empty() ? fmt::format("rule {}", r.rule)
                                          : fmt::format("rule {} {}", r.rule, e.rule_match);
  switch (r.type) {
    case BG_EVENT_BLOCKED:
    case BG_EVENT_MANUAL_BLOCK:
      return fmt::format("{} ({}{})", head, to_string(static_cast<bg_block_reason>(r.reason)),
                         r.value ? ", for " + core::format_duration_ns(r.value) : ", no expiry");
    case BG_EVENT_RELEASED:
      return fmt::format("{} ({} block expired)", head,
                         to_string(static_cast<bg_block_reason>(r.reason)));
    case BG_EVENT_RULE_HIT:
      return fmt::format("{}{} ({}, first hit of generation {})", head, where, rule, r.value);
    case BG_EVENT_DROP_SAMPLE:
      return fmt::format("{}{} ({}{}, {} bytes; {} drops not sampled since the last)", head, where,
                         to_string(static_cast<bg_reason>(r.reason)),
                         r.rule ? ", " + rule : std::string(), r.len, r.value);
    default:
      return head;
  }
}

}  // namespace bpfgate::agent
