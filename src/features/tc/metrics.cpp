#include "features/tc/metrics.hpp"

namespace bpfgate::agent {

namespace {

std::vector<TcClassesView> read_tc_classes(const std::string &bpffs,
                                           const std::vector<std::string> &ifaces) {
  std::vector<TcClassesView> out;
  for (const auto &iface : ifaces) {
    auto p = PinnedTc::open(bpffs, iface);
    if (!p)
      continue;  // not attached (yet): no samples, as for a filter that is down
    auto stats = p->datapath().class_stats();
    if (stats)
      out.push_back({iface, std::move(*stats)});
  }
  return out;
}

}  // namespace

void write_tc_classes(core::prom::Writer &w, const std::vector<TcClassesView> &tc) {
  struct Family {
    const char *name;
    const char *help;
    uint64_t TcClassStats::*field;
  };
  static const Family kFamilies[] = {
      {"bpfgate_tc_class_packets_total",
       "Packets of a tc class, passed or not (unclassified: of no class)", &TcClassStats::packets},
      {"bpfgate_tc_class_bytes_total", "Bytes of those packets", &TcClassStats::bytes},
      {"bpfgate_tc_class_drops_total", "Packets of a tc class its policer dropped",
       &TcClassStats::drops},
      {"bpfgate_tc_class_marked_total",
       "Packets of a tc class over its rate, marked with exceed_dscp and passed (egress)",
       &TcClassStats::marked},
      {"bpfgate_tc_class_mirrored_total", "Copies of a tc class's packets sent to its mirror",
       &TcClassStats::mirrored},
  };
  for (const auto &f : kFamilies) {
    w.family(f.name, "counter", f.help);
    for (const auto &t : tc)
      for (const auto &c : t.classes)
        w.sample(f.name,
                 {{"interface", t.iface},
                  {"class", c.unclassified ? "(unclassified)" : c.name},
                  {"direction", c.unclassified ? "both" : core::direction_name(c.def.dirs)}},
                 static_cast<double>(c.*f.field));
  }
}

void write_tc_metrics(core::prom::Writer &w, const std::string &bpffs,
                      const std::vector<std::string> &ifaces) {
  write_tc_classes(w, read_tc_classes(bpffs, ifaces));
}

}  // namespace bpfgate::agent
