// `bpfgate top`'s view: a full-screen live display when stdout is a
// terminal (alternate screen, redrawn in place, cut to the window), plain
// text frames one after another when it is not; and the sections that the
// per-source table of top.cpp is shown with: drop reasons and services.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "features/xdp/datapath.hpp"
#include "features/observe/probes.hpp"

namespace bpfgate::cli {

class Screen {
 public:
  // full: draw in place on the terminal (restored when the Screen goes).
  explicit Screen(bool full);
  ~Screen();
  Screen(const Screen &) = delete;
  Screen &operator=(const Screen &) = delete;
  bool full() const { return full_; }
  // Full screen: clears and draws `frame`, cut to the window. Plain: prints it.
  void show(const std::string &frame);

 private:
  bool full_;
  bool raw_ = false;              // stdin switched to non-canonical mode (keys without Enter)
  unsigned char saved_[64] = {};  // the terminal's termios, restored on exit
};

// A rate or count in 4 characters or so: 950, 12.3k, 1.5M, 2.0G.
std::string human(double v);

// Drops by reason over the interval, and since attach.
std::string reasons_text(const agent::CounterTotals &now, const agent::CounterTotals &before,
                         double seconds);
nlohmann::json reasons_json(const agent::CounterTotals &now, const agent::CounterTotals &before,
                            double seconds);

// Per service: requests/s, mean and p50/p99 latency over the interval, status
// classes, TCP resets and retransmits.
std::string services_text(const std::vector<agent::ServiceStats> &now,
                          const std::vector<agent::ServiceStats> &before, double seconds);
nlohmann::json services_json(const std::vector<agent::ServiceStats> &now,
                             const std::vector<agent::ServiceStats> &before, double seconds);

}  // namespace bpfgate::cli
