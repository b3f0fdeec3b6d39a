#include "features/observe/top_view.hpp"

#include <sys/ioctl.h>
#include <termios.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>

#include <fmt/format.h>

#include "features/xdp/filter.hpp"

namespace bpfgate::cli {

using nlohmann::json;

static_assert(sizeof(termios) <= 64);

Screen::Screen(bool full) : full_(full) {
  if (!full_)
    return;
  termios t{};
  if (tcgetattr(STDIN_FILENO, &t) == 0) {
    std::memcpy(saved_, &t, sizeof(t));
    t.c_lflag &= ~static_cast<tcflag_t>(ICANON | ECHO);
    t.c_cc[VMIN] = 0;
    t.c_cc[VTIME] = 0;
    raw_ = tcsetattr(STDIN_FILENO, TCSANOW, &t) == 0;
  }
  fmt::print("\x1b[?1049h\x1b[?25l");  // alternate screen, hide the cursor
}

Screen::~Screen() {
  if (raw_) {
    termios t{};
    std::memcpy(&t, saved_, sizeof(t));
    tcsetattr(STDIN_FILENO, TCSANOW, &t);
  }
  if (full_) {
    fmt::print("\x1b[?25h\x1b[?1049l");
    std::fflush(stdout);
  }
}

void Screen::show(const std::string &frame) {
  if (!full_) {
    fmt::print("{}\n", frame);
    std::fflush(stdout);
    return;
  }
  winsize ws{};
  int rows = 24, cols = 80;
  if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_row && ws.ws_col)
    rows = ws.ws_row, cols = ws.ws_col;
  std::string out = "\x1b[H";  // home; each line clears its rest
  int line = 0;
  for (size_t pos = 0; pos < frame.size() && line < rows - 1; line++) {
    size_t nl = frame.find('\n', pos);
    std::string l = frame.substr(pos, nl == std::string::npos ? std::string::npos : nl - pos);
    if (static_cast<int>(l.size()) > cols)
      l.resize(static_cast<size_t>(cols));
    out += l + "\x1b[K\r\n";
    pos = nl == std::string::npos ? frame.size() : nl + 1;
  }
  out += "\x1b[J";  // clear below
  out += "\x1b[7m q or Ctrl-C: quit \x1b[0m";
  fmt::print("{}", out);
  std::fflush(stdout);
}

std::string human(double v) {
  if (v >= 1e9)
    return fmt::format("{:.1f}G", v / 1e9);
  if (v >= 1e6)
    return fmt::format("{:.1f}M", v / 1e6);
  if (v >= 1e4)
    return fmt::format("{:.1f}k", v / 1e3);
  return fmt::format("{:.0f}", v);
}

namespace {

std::string ms(double seconds) {
  if (seconds <= 0)
    return "-";
  if (seconds < 1e-3)
    return fmt::format("{:.0f}us", seconds * 1e6);
  if (seconds < 1)
    return fmt::format("{:.1f}ms", seconds * 1e3);
  return fmt::format("{:.2f}s", seconds);
}

double rate(uint64_t now, uint64_t before, double seconds) {
  return now >= before && seconds > 0 ? static_cast<double>(now - before) / seconds : 0;
}

const agent::ServiceStats *find(const std::vector<agent::ServiceStats> &v,
                                const agent::ServiceStats &s) {
  for (const auto &b : v)
    if (b.id == s.id && b.port == s.port && b.name == s.name)
      return &b;
  return nullptr;
}

// The interval's share of a service's counters.
bg_obs_stats delta(const agent::ServiceStats &now, const agent::ServiceStats *before) {
  bg_obs_stats d = now.total;
  if (!before)
    return d;
  constexpr size_t kWords = sizeof(bg_obs_stats) / sizeof(uint64_t);
  auto *w = reinterpret_cast<uint64_t *>(&d);
  const auto *b = reinterpret_cast<const uint64_t *>(&before->total);
  for (size_t i = 0; i < kWords; i++)
    w[i] = w[i] >= b[i] ? w[i] - b[i] : w[i];
  return d;
}

const char *kClass[] = {"1xx", "2xx", "3xx", "4xx", "5xx", "other"};

}  // namespace

std::string reasons_text(const agent::CounterTotals &now, const agent::CounterTotals &before,
                         double seconds) {
  std::string out =
      fmt::format("  {:<14} {:>12} {:>10} {:>12}\n", "DROP REASON", "PACKETS", "PPS", "BYTES");
  bool any = false;
  for (uint32_t r = 0; r < BG_REASON_NR; r++) {
    const bg_counter &n = now[bg_counter_key(BG_VERDICT_DROP, r)];
    const bg_counter &b = before[bg_counter_key(BG_VERDICT_DROP, r)];
    if (!n.packets)
      continue;
    any = true;
    out +=
        fmt::format("  {:<14} {:>12} {:>10} {:>12}\n", agent::to_string(static_cast<bg_reason>(r)),
                    n.packets, human(rate(n.packets, b.packets, seconds)), human(n.bytes));
  }
  if (!any)
    out += "  (no drops)\n";
  return out;
}

json reasons_json(const agent::CounterTotals &now, const agent::CounterTotals &before,
                  double seconds) {
  json out = json::object();
  for (uint32_t r = 0; r < BG_REASON_NR; r++) {
    const bg_counter &n = now[bg_counter_key(BG_VERDICT_DROP, r)];
    const bg_counter &b = before[bg_counter_key(BG_VERDICT_DROP, r)];
    if (n.packets)
      out[agent::to_string(static_cast<bg_reason>(r))] = {
          {"packets", n.packets}, {"bytes", n.bytes}, {"pps", rate(n.packets, b.packets, seconds)}};
  }
  return out;
}

std::string services_text(const std::vector<agent::ServiceStats> &now,
                          const std::vector<agent::ServiceStats> &before, double seconds) {
  if (now.empty())
    return "";
  std::string out = fmt::format(
      "{:<16} {:>6} {:>9} {:>9} {:>9} {:>9} {:>7} {:>7} {:>7} {:>6} "
      "{:>6}\n",
      "SERVICE", "PORT", "REQ/S", "MEAN", "P50", "P99", "2XX", "4XX", "5XX", "RST", "RETX");
  for (const auto &s : now) {
    bg_obs_stats d = delta(s, find(before, s));
    double mean = d.responses ? d.latency_sum_ns / 1e9 / static_cast<double>(d.responses) : 0;
    out += fmt::format("{:<16} {:>6} {:>9} {:>9} {:>9} {:>9} {:>7} {:>7} {:>7} {:>6} {:>6}\n",
                       s.name, s.port, human(seconds > 0 ? d.requests / seconds : 0), ms(mean),
                       ms(d.responses ? agent::quantile_seconds(d.latency_hist, 0.5) : 0),
                       ms(d.responses ? agent::quantile_seconds(d.latency_hist, 0.99) : 0),
                       s.http ? human(static_cast<double>(s.total.status[BG_HTTP_2XX])) : "-",
                       s.http ? human(static_cast<double>(s.total.status[BG_HTTP_4XX])) : "-",
                       s.http ? human(static_cast<double>(s.total.status[BG_HTTP_5XX])) : "-",
                       human(static_cast<double>(s.total.resets_rx + s.total.resets_tx)),
                       human(static_cast<double>(s.total.retransmits)));
  }
  return out;
}

json services_json(const std::vector<agent::ServiceStats> &now,
                   const std::vector<agent::ServiceStats> &before, double seconds) {
  json arr = json::array();
  for (const auto &s : now) {
    bg_obs_stats d = delta(s, find(before, s));
    json classes = json::object();
    for (uint32_t c = 0; s.http && c < BG_HTTP_NR; c++)
      classes[kClass[c]] = s.total.status[c];
    arr.push_back({{"service", s.name},
                   {"port", s.port},
                   {"requests", s.total.requests},
                   {"responses", s.total.responses},
                   {"requests_per_s", seconds > 0 ? d.requests / seconds : 0},
                   {"mean_latency_s",
                    d.responses ? d.latency_sum_ns / 1e9 / static_cast<double>(d.responses) : 0},
                   {"p50_latency_s", agent::quantile_seconds(d.latency_hist, 0.5)},
                   {"p99_latency_s", agent::quantile_seconds(d.latency_hist, 0.99)},
                   {"status", classes},
                   {"resets", {{"received", s.total.resets_rx}, {"sent", s.total.resets_tx}}},
                   {"retransmits", s.total.retransmits},
                   {"connections", s.total.accepted}});
  }
  return arr;
}

}  // namespace bpfgate::cli
