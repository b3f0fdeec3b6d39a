#include "cli/status_view.hpp"

#include <fmt/format.h>

namespace bpfgate::cli {

using nlohmann::json;

json limits_json(const core::Limits &l) {
  return {{"rate_pps", l.rate_pps}, {"burst", l.burst}};
}

namespace {

// Verdict -> reason -> {packets, bytes}, counters that are not zero only.
json counters_json(const agent::CounterTotals &c) {
  json out = json::object();
  for (uint32_t v = 0; v < BG_VERDICT_NR; v++) {
    for (uint32_t r = 0; r < BG_REASON_NR; r++) {
      const bg_counter &x = c[bg_counter_key(v, r)];
      if (x.packets == 0)
        continue;
      out[agent::to_string(static_cast<bg_verdict>(v))][agent::to_string(
          static_cast<bg_reason>(r))] = {{"packets", x.packets}, {"bytes", x.bytes}};
    }
  }
  return out;
}

// Every datapath event, zero or not, by its stable name.
json events_json(const agent::StatTotals &s) {
  json out = json::object();
  for (uint32_t e = 0; e < BG_STAT_NR; e++)
    out[agent::stat_name(static_cast<bg_stat>(e)).name] = s[e];
  return out;
}

// The operator switches: bypass, dry-run, and the frames dry-run passed
// that the filter would have dropped, by reason (those not zero).
json operations_json(const agent::FilterStatus &s) {
  json would = json::object();
  for (uint32_t r = 0; r < BG_REASON_NR; r++) {
    const bg_counter &x = s.ops[BG_OP_WOULD_DROP + r];
    if (x.packets)
      would[agent::to_string(static_cast<bg_reason>(r))] = {{"packets", x.packets},
                                                            {"bytes", x.bytes}};
  }
  return {{"supported", s.op_stats},
          {"bypass", s.bypass},
          {"bypassed",
           {{"packets", s.ops[BG_OP_BYPASSED].packets}, {"bytes", s.ops[BG_OP_BYPASSED].bytes}}},
          {"dry_run", s.dry_run},
          {"would_drop", would},
          {"would_autoblock", s.ops[BG_OP_WOULD_AUTOBLOCK].packets}};
}

// "  BYPASS ..." and "  would drop: ..." lines where they say something.
std::string operations_text(const agent::FilterStatus &s) {
  std::string out;
  if (s.bypass)
    out += fmt::format(
        "  *** BYPASS: every frame passes unfiltered ({} so far; `bpfgate bypass {} off` to "
        "filter again) ***\n",
        s.ops[BG_OP_BYPASSED].packets, s.iface);
  uint64_t would = 0;
  std::string reasons;
  for (uint32_t r = 0; r < BG_REASON_NR; r++)
    if (uint64_t n = s.ops[BG_OP_WOULD_DROP + r].packets) {
      would += n;
      reasons += fmt::format("  {} {}", agent::to_string(static_cast<bg_reason>(r)), n);
    }
  uint64_t blocks = s.ops[BG_OP_WOULD_AUTOBLOCK].packets;
  if (s.dry_run || would || blocks)
    out += fmt::format("  would drop (dry-run {}): {}{}  would auto-block {}\n",
                       s.dry_run ? "on" : "off", would, reasons, blocks);
  return out;
}

uint64_t sum_verdict(const agent::CounterTotals &c, bg_verdict v) {
  uint64_t n = 0;
  for (uint32_t r = 0; r < BG_REASON_NR; r++)
    n += c[bg_counter_key(v, r)].packets;
  return n;
}

}  // namespace

json status_json(const agent::FilterStatus &s) {
  json j = {{"iface", s.iface},
            {"ifindex", s.ifindex},
            {"attached", s.ifindex != 0},
            {"mode", s.mode},
            {"prog_id", s.prog_id},
            {"link_id", s.link_id},
            {"limits", limits_json(s.limits)},
            {"new_sources", limits_json(s.new_sources)},
            {"unproven",
             {{"rate_pps", s.unproven.rate_pps},
              {"burst", s.unproven.burst},
              {"enforced", s.unproven_enforced}}},
            {"syn_proxy", {{"asked", s.syn_proxy_asked}, {"enforced", s.syn_proxy}}},
            {"unparsed_verdict", agent::to_string(s.unparsed_verdict)},
            {"max_sources", s.max_sources},
            {"generation", s.generation},
            {"packets",
             {{"passed", sum_verdict(s.counters, BG_VERDICT_PASS)},
              {"dropped", sum_verdict(s.counters, BG_VERDICT_DROP)}}},
            {"counters", counters_json(s.counters)},
            {"known_sources", {{"entries", s.known_sources}, {"max_entries", s.max_known}}},
            {"events", events_json(s.stats)}};
  j["frags"] = s.frags;
  j["operations"] = operations_json(s);
  j["attach"] = agent::to_string(s.attach);
  if (s.attach == agent::XdpAttach::kDispatcher)
    j["priority"] = s.priority;
  return j;
}

std::string status_text(const agent::FilterStatus &s) {
  std::string out = fmt::format(
      "{}: {}mode {}  prog {}  {}  rate {} pps  burst {}  max-sources {}  "
      "new-sources {}  unproven {}  syn-proxy {}  unparsed {}\n    passed {}  dropped {}  known "
      "sources {}/{}\n  "
      "  events:",
      s.iface,
      s.ifindex                                   ? ""
      : s.attach == agent::XdpAttach::kDispatcher ? "DEFUNCT (not in the interface's XDP "
                                                    "dispatcher; run detach)  "
                                                  : "DEFUNCT (interface gone: a running agent "
                                                    "attaches it again when it is back; else run "
                                                    "detach)  ",
      s.frags ? s.mode + " (frags)" : s.mode, s.prog_id,
      s.attach == agent::XdpAttach::kDispatcher ? fmt::format("dispatcher priority {}", s.priority)
                                                : fmt::format("link {}", s.link_id),
      s.limits.rate_pps, s.limits.burst, s.max_sources,
      s.new_sources.rate_pps ? fmt::format("{}/s", s.new_sources.rate_pps) : "unbounded",
      !s.unproven.rate_pps  ? std::string("unbounded")
      : s.unproven_enforced ? fmt::format("{}/s", s.unproven.rate_pps)
                            : fmt::format("{}/s (not enforced: no proofs)", s.unproven.rate_pps),
      s.syn_proxy         ? "on"
      : s.syn_proxy_asked ? "off (needs prove and tcp_syncookies=2)"
                          : "off",
      agent::to_string(s.unparsed_verdict), sum_verdict(s.counters, BG_VERDICT_PASS),
      sum_verdict(s.counters, BG_VERDICT_DROP), s.known_sources, s.max_known);
  for (uint32_t e = 0; e < BG_STAT_NR; e++)
    out += fmt::format("{}{} {}", e ? "  " : " ", agent::stat_name(static_cast<bg_stat>(e)).name,
                       s.stats[e]);
  return out + "\n" + operations_text(s);
}

}  // namespace bpfgate::cli
