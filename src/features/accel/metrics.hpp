// Socket acceleration's families in /metrics, read fresh from its pins
// (whoever enabled it) at each scrape: state, sockets, the sk_msg and
// sock_ops counters, and among them the fallbacks to the normal TCP path and
// the sockets the sockhash refused.
#pragma once

#include <string>

#include "core/prometheus.hpp"
#include "features/accel/accel.hpp"

namespace bpfgate::agent::accel {

// bpfgate_accel_enabled (always a sample), then bpfgate_accel_sockets,
// _congested_sockets, _messages_total{event}, _bytes_total{event},
// _max_sockets, _fallbacks_total{reason}, _fallback_bytes_total{reason} and
// _sockets_refused_total, with samples only while acceleration is on
// (`status` null or off: HELP and TYPE alone).
void write_metrics(core::prom::Writer &w, const AccelStatus *status);
// The same for the acceleration pinned under `bpffs`.
void write_metrics(core::prom::Writer &w, const std::string &bpffs);

}  // namespace bpfgate::agent::accel
