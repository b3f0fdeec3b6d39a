// The observer's families in /metrics: per-service requests, responses, HTTP
// status classes, latency and handshake histograms, TCP resets, retransmits
// and connections, read fresh from the probes' pins at each scrape.
#pragma once

#include <string>
#include <vector>

#include "core/prometheus.hpp"
#include "features/observe/probes.hpp"

namespace bpfgate::agent {

// The bpfgate_service_* families, one sample (or histogram) per service;
// HELP and TYPE even without services.
void write_services(core::prom::Writer &w, const std::vector<ServiceStats> &services);
// The same for the services pinned under `bpffs`, when the config has
// services (`services`); families without samples otherwise.
void write_service_metrics(core::prom::Writer &w, const std::string &bpffs, bool services);

}  // namespace bpfgate::agent
