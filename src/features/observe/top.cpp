// `bpfgate top`: reads the pinned maps (from any process) and shows the
// busiest sources, with rates computed over each interval.
#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <ctime>
#include <map>
#include <thread>

#include <poll.h>
#include <unistd.h>

#include "cli/commands.hpp"
#include "features/observe/top_view.hpp"
#include "core/addr.hpp"
#include "util/log.hpp"

namespace bpfgate::cli {

using nlohmann::json;

namespace {

// Rows are per address (or prefix): the buckets a source has for rules with
// their own limits are summed into its row.
struct KeyLess {
  bool operator()(const bg_src_key &a, const bg_src_key &b) const {
    if (int c = std::memcmp(a.addr, b.addr, sizeof(a.addr)))
      return c < 0;
    return a.kind != b.kind ? a.kind < b.kind : a.prefixlen < b.prefixlen;
  }
};
using Snapshot = std::map<bg_src_key, bg_src_state, KeyLess>;

struct Row {
  bg_src_key key;
  bg_src_state st;
  double pps;
  double drops_ps;
};

uint64_t monotonic_ns() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000000ULL + ts.tv_nsec;
}

Result<Snapshot> snapshot(const agent::PinnedFilter &f) {
  auto entries = f.sources();
  if (!entries)
    return entries.error();
  Snapshot s;
  for (const auto &e : *entries) {
    auto [it, fresh] = s.emplace(e.key, e.state);
    if (fresh)
      continue;
    bg_src_state &agg = it->second;
    agg.packets += e.state.packets;
    agg.bytes += e.state.bytes;
    agg.drops += e.state.drops;
    agg.last_seen_ns = std::max(agg.last_seen_ns, e.state.last_seen_ns);
  }
  return s;
}

std::vector<Row> rows_of(const Snapshot &now, const Snapshot &before, double seconds) {
  std::vector<Row> rows;
  rows.reserve(now.size());
  for (const auto &[k, st] : now) {
    uint64_t p0 = 0, d0 = 0;
    if (auto it = before.find(k); it != before.end()) {
      p0 = it->second.packets;
      d0 = it->second.drops;
    }
    double pps = st.packets >= p0 ? (st.packets - p0) / seconds : 0;
    double dps = st.drops >= d0 ? (st.drops - d0) / seconds : 0;
    rows.push_back(Row{k, st, pps, dps});
  }
  std::sort(rows.begin(), rows.end(), [](const Row &a, const Row &b) {
    if (a.pps != b.pps)
      return a.pps > b.pps;
    return a.st.packets > b.st.packets;
  });
  return rows;
}

std::string source_name(const bg_src_key &k) {
  if (k.kind != BG_SRC_PREFIX)
    return core::format_addr(k);
  unsigned len = core::is_v4_mapped(k) ? k.prefixlen - 96 : k.prefixlen;
  return fmt::format("{}/{}", core::format_addr(k), len);
}

json frame_json(const std::string &iface, const std::vector<Row> &rows, size_t limit,
                double seconds, uint64_t now_ns, uint32_t max_sources) {
  json srcs = json::array();
  for (size_t i = 0; i < rows.size() && i < limit; i++) {
    const Row &r = rows[i];
    srcs.push_back(
        {{"addr", source_name(r.key)},
         {"packets", r.st.packets},
         {"bytes", r.st.bytes},
         {"drops", r.st.drops},
         {"pps", r.pps},
         {"drops_per_s", r.drops_ps},
         {"last_seen_s", now_ns >= r.st.last_seen_ns ? (now_ns - r.st.last_seen_ns) / 1e9 : 0.0}});
  }
  return {{"iface", iface},
          {"interval_s", seconds},
          {"sources_total", rows.size()},
          {"max_sources", max_sources},
          {"sources", srcs}};
}

std::string format_frame(const std::string &iface, const std::vector<Row> &rows, size_t limit,
                         double seconds, uint64_t now_ns, uint32_t max_sources) {
  std::string out;
  double pps = 0, dps = 0;
  for (const Row &r : rows)
    pps += r.pps, dps += r.drops_ps;
  std::time_t t = std::time(nullptr);
  char when[16];
  std::strftime(when, sizeof(when), "%H:%M:%S", std::localtime(&t));
  out += fmt::format("{}  {}  interval {:.1f}s  sources {}/{}  in {} pps  dropped {} pps\n", when,
                     iface, seconds, rows.size(), max_sources, human(pps), human(dps));
  out += fmt::format("{:<40} {:>12} {:>9} {:>12} {:>9} {:>12} {:>9}\n", "SOURCE", "PACKETS", "PPS",
                     "DROPS", "DROP/S", "BYTES", "IDLE");
  for (size_t i = 0; i < rows.size() && i < limit; i++) {
    const Row &r = rows[i];
    double idle = now_ns >= r.st.last_seen_ns ? (now_ns - r.st.last_seen_ns) / 1e9 : 0;
    out += fmt::format("{:<40} {:>12} {:>9} {:>12} {:>9} {:>12} {:>8.1f}s\n", source_name(r.key),
                       r.st.packets, human(r.pps), r.st.drops, human(r.drops_ps), human(r.st.bytes),
                       idle);
  }
  return out;
}

// One interface top watches: its filter and what the last frame read.
struct Watched {
  std::string name;
  agent::PinnedFilter filter;
  Snapshot before;
  agent::CounterTotals counters_before;
  uint32_t max_sources = 0;
};

// The interface asked for, or every one bpfgate is attached to.
Result<std::vector<std::string>> top_interfaces(const Globals &g, const TopOptions &opts) {
  if (!opts.iface.empty())
    return std::vector<std::string>{opts.iface};
  auto all = agent::pinned_interfaces(g.bpffs);
  if (!all)
    return all.error();
  if (all->empty())
    return Error(ENOENT, "bpfgate is not attached to any interface; see `bpfgate attach`");
  return *all;
}

Result<std::vector<Watched>> watch(const Globals &g, const std::vector<std::string> &names) {
  std::vector<Watched> out;
  for (const auto &n : names) {
    auto f = agent::PinnedFilter::open(g.bpffs, n);
    if (!f)
      return f.error();
    auto s = snapshot(*f);
    if (!s)
      return s.error();
    auto st = f->status();
    if (!st)
      return st.error();
    out.push_back(Watched{n, std::move(*f), std::move(*s), st->counters, st->max_sources});
  }
  return out;
}

// Until `interval_s` has passed, or a stop (a signal, q on the full screen).
void wait_interval(const Screen &screen, double interval_s) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(interval_s);
  while (!stop_requested() && std::chrono::steady_clock::now() < deadline) {
    pollfd in{STDIN_FILENO, POLLIN, 0};
    char key = 0;
    if (screen.full() && poll(&in, 1, 20) > 0 && read(STDIN_FILENO, &key, 1) == 1 &&
        (key == 'q' || key == 'Q'))
      request_stop();
    else if (!screen.full())
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

// One interface's part of a frame, into `doc` (-j) or `text`; what it read
// becomes the next frame's `before`.
Status show_interface(Watched &w, const Globals &g, const TopOptions &opts, double seconds,
                      uint64_t now, json &doc, std::string &text) {
  auto s = snapshot(w.filter);
  if (!s)
    return s.error();
  auto rows = rows_of(*s, w.before, seconds);
  auto c = w.filter.counters();
  if (!c)
    return c.error();
  if (g.json) {
    doc["interfaces"].push_back(frame_json(w.name, rows, opts.rows, seconds, now, w.max_sources));
    doc["interfaces"].back()["drops"] = reasons_json(*c, w.counters_before, seconds);
  } else {
    text += format_frame(w.name, rows, opts.rows, seconds, now, w.max_sources);
    text += reasons_text(*c, w.counters_before, seconds) + "\n";
  }
  w.before = std::move(*s);
  w.counters_before = *c;
  return {};
}

}  // namespace

int cmd_top(const Globals &g, const TopOptions &opts) {
  auto names = top_interfaces(g, opts);
  if (!names)
    return fail(names.error());
  auto watched = watch(g, *names);
  if (!watched)
    return fail(watched.error());
  stop_on_signals();
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  auto svc_before = agent::read_services(g.bpffs);
  if (!svc_before)
    return fail(svc_before.error());
  // A terminal gets the full-screen view; a pipe or file, plain frames.
  Screen screen(!g.json && !opts.plain && isatty(STDOUT_FILENO) && isatty(STDIN_FILENO));

  uint64_t last = monotonic_ns();
  for (uint64_t frame = 0; !stop_requested() && (opts.count == 0 || frame < opts.count); frame++) {
    wait_interval(screen, opts.interval_s);
    uint64_t now = monotonic_ns();
    double seconds = (now - last) / 1e9;
    last = now;
    json doc = {{"interfaces", json::array()}};
    std::string text;
    for (auto &w : *watched)
      if (auto st = show_interface(w, g, opts, seconds, now, doc, text); !st)
        return fail(st.error());
    auto svc = agent::read_services(g.bpffs);
    if (!svc)
      return fail(svc.error());
    if (g.json) {
      doc["services"] = services_json(*svc, *svc_before, seconds);
      fmt::print("{}\n", doc.dump());
    } else {
      text += services_text(*svc, *svc_before, seconds);
      screen.show(text);
    }
    *svc_before = std::move(*svc);
    if (stop_requested())
      break;
  }
  return 0;
}

}  // namespace bpfgate::cli
