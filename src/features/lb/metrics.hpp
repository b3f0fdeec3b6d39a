// The load balancer's families in /metrics, read from its pins at each scrape
// with the catalog the agent published (names, weights, health):
// per backend (labels service, backend, id) bpfgate_lb_backend_packets_total,
// _bytes_total, _reply_packets_total, _reply_bytes_total, _new_flows_total,
// _resets_total, _active_flows, _up, _draining, _weight{kind}, _ring_entries,
// _connect_seconds and _response_seconds (histograms of one bucket: their
// _sum / _count is the mean); per reason bpfgate_lb_packets_total and
// _bytes_total; bpfgate_lb_connections and _max_connections. Declared with no
// samples when no balancer runs.
#pragma once

#include <string>

#include "core/prometheus.hpp"
#include "features/lb/lb_status.hpp"

namespace bpfgate::agent::lb {

void write_metrics(core::prom::Writer &w, const LbView *view);
void write_metrics(core::prom::Writer &w, const std::string &bpffs);

}  // namespace bpfgate::agent::lb
