#include "cli/commands.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdio>

#include "util/log.hpp"

namespace bpfgate::cli {

using nlohmann::json;

int fail(const Error &e) {
  log::error("{}", e.what());
  return 1;
}

namespace {

json limits_json(const core::Limits &l) {
  return {{"rate_pps", l.rate_pps}, {"burst", l.burst}};
}

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

uint64_t sum_verdict(const agent::CounterTotals &c, bg_verdict v) {
  uint64_t n = 0;
  for (uint32_t r = 0; r < BG_REASON_NR; r++)
    n += c[bg_counter_key(v, r)].packets;
  return n;
}

}  // namespace

int cmd_attach(const Globals &g, const agent::AttachOptions &opts) {
  auto r = agent::attach(g.bpffs, opts);
  if (!r)
    return fail(r.error());
  if (g.json) {
    json j = {{"iface", opts.iface},
              {"mode", bpf::to_string(r->mode)},
              {"prog_id", r->prog_id},
              {"link_id", r->link_id},
              {"limits", limits_json(opts.limits)},
              {"new_sources", limits_json(opts.new_sources)},
              {"max_sources", opts.max_sources}};
    if (!r->note.empty())
      j["note"] = r->note;
    if (r->replaced_prog_id)
      j["replaced_prog_id"] = r->replaced_prog_id;
    fmt::print("{}\n", j.dump());
  } else {
    if (!r->note.empty())
      log::warn("{}", r->note);
    fmt::print(
        "attached to {} in {} mode (program id {}), {} pps per source, burst {}, up to {} "
        "sources\n",
        opts.iface, bpf::to_string(r->mode), r->prog_id, opts.limits.rate_pps, opts.limits.burst,
        opts.max_sources);
  }
  return 0;
}

int cmd_set(const Globals &g, const std::string &iface, std::optional<uint64_t> rate,
            std::optional<uint64_t> burst, std::optional<uint64_t> new_sources) {
  auto f = agent::PinnedFilter::open(g.bpffs, iface);
  if (!f)
    return fail(f.error());
  auto cur = f->status();
  if (!cur)
    return fail(cur.error());
  core::Limits l = cur->limits;
  if (rate)
    l.rate_pps = *rate;
  if (burst)
    l.burst = *burst;
  core::Limits ns = cur->new_sources;
  if (new_sources)
    ns = core::Limits{*new_sources, *new_sources};
  if (auto st = f->set_limits(l, ns); !st)
    return fail(st.error().context("set " + iface));
  if (g.json)
    fmt::print("{}\n",
               json{{"iface", iface}, {"limits", limits_json(l)}, {"new_sources", limits_json(ns)}}
                   .dump());
  else
    fmt::print("{}: {} pps per source, burst {}, new sources {}\n", iface, l.rate_pps, l.burst,
               ns.rate_pps ? fmt::format("{}/s", ns.rate_pps) : "unbounded");
  return 0;
}

int cmd_detach(const Globals &g, const std::string &iface) {
  if (auto st = agent::detach(g.bpffs, iface); !st)
    return fail(st.error());
  if (g.json)
    fmt::print("{}\n", json{{"iface", iface}, {"detached", true}}.dump());
  else
    fmt::print("detached from {}\n", iface);
  return 0;
}

int cmd_status(const Globals &g, const std::string &only) {
  auto ifaces = agent::pinned_interfaces(g.bpffs);
  if (!ifaces)
    return fail(ifaces.error());
  if (!only.empty()) {
    if (std::find(ifaces->begin(), ifaces->end(), only) == ifaces->end())
      return fail(make_error(ENOENT, "bpfgate is not attached to {}; see `bpfgate status`", only));
    *ifaces = {only};
  }
  json arr = json::array();
  int rc = 0;
  for (const auto &name : *ifaces) {
    auto f = agent::PinnedFilter::open(g.bpffs, name);
    if (!f) {
      rc = 1;
      log::error("{}: {}", name, f.error().what());
      continue;
    }
    auto s = f->status();
    if (!s) {
      rc = 1;
      log::error("{}: {}", name, s.error().what());
      continue;
    }
    uint64_t passed = sum_verdict(s->counters, BG_VERDICT_PASS);
    uint64_t dropped = sum_verdict(s->counters, BG_VERDICT_DROP);
    if (g.json) {
      arr.push_back({{"iface", s->iface},
                     {"ifindex", s->ifindex},
                     {"attached", s->ifindex != 0},
                     {"mode", s->mode},
                     {"prog_id", s->prog_id},
                     {"link_id", s->link_id},
                     {"limits", limits_json(s->limits)},
                     {"new_sources", limits_json(s->new_sources)},
                     {"unparsed_verdict", agent::to_string(s->unparsed_verdict)},
                     {"max_sources", s->max_sources},
                     {"generation", s->generation},
                     {"packets", {{"passed", passed}, {"dropped", dropped}}},
                     {"counters", counters_json(s->counters)}});
    } else {
      fmt::print(
          "{}: {}mode {}  prog {}  link {}  rate {} pps  burst {}  max-sources {}  "
          "new-sources {}  unparsed {}\n    passed {}  dropped {}\n",
          s->iface, s->ifindex ? "" : "DEFUNCT (interface gone; run detach)  ", s->mode, s->prog_id,
          s->link_id, s->limits.rate_pps, s->limits.burst, s->max_sources,
          s->new_sources.rate_pps ? fmt::format("{}/s", s->new_sources.rate_pps) : "unbounded",
          agent::to_string(s->unparsed_verdict), passed, dropped);
    }
  }
  if (g.json)
    fmt::print("{}\n", json{{"interfaces", arr}}.dump());
  else if (ifaces->empty())
    fmt::print("bpfgate is not attached to any interface\n");
  return rc;
}

}  // namespace bpfgate::cli
