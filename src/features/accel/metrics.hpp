// Socket acceleration's families in /metrics, read fresh from its pins
// (whoever enabled it) at each scrape: state, sockets, the sk_msg and
// sock_ops counters.
#pragma once

#include <string>

#include "core/prometheus.hpp"
#include "features/accel/accel.hpp"

namespace bpfgate::agent::accel {

// bpfgate_accel_enabled (always a sample), then bpfgate_accel_sockets,
// _congested_sockets, _messages_total{event} and _bytes_total{event}, with
// samples only while acceleration is on (`status` null or off: HELP and TYPE
// alone).
void write_metrics(core::prom::Writer &w, const AccelStatus *status);
// The same for the acceleration pinned under `bpffs`.
void write_metrics(core::prom::Writer &w, const std::string &bpffs);

}  // namespace bpfgate::agent::accel
