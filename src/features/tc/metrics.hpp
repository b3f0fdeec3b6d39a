// The tc datapath's families in /metrics: its classes' counters, read fresh
// from the pins at each scrape.
#pragma once

#include <string>
#include <vector>

#include "core/prometheus.hpp"
#include "features/tc/tc.hpp"

namespace bpfgate::agent {

// The tc datapath's classes on one interface, as `class list` reads them.
struct TcClassesView {
  std::string iface;
  std::vector<TcClassStats> classes;  // the last one: the packets of no class
};
// bpfgate_tc_class_{packets,bytes,drops,marked,mirrored}_total{interface,
// class, direction}, one sample per class; the packets that matched no class
// as class="(unclassified)", direction="both". HELP and TYPE even without tc.
void write_tc_classes(core::prom::Writer &w, const std::vector<TcClassesView> &tc);
// The classes of the tc datapath on each of `ifaces` (the config's tc:
// section) that is attached.
void write_tc_metrics(core::prom::Writer &w, const std::string &bpffs,
                      const std::vector<std::string> &ifaces);

}  // namespace bpfgate::agent
