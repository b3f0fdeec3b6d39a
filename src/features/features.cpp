// The list of the datapath's features (features/feature.hpp), in the order
// they converge; they stop in the reverse order. A new feature is a folder
// of src/features/ (listed in src/CMakeLists.txt) and one line here.
#include "features/accel/feature.hpp"
#include "features/lb/feature.hpp"
#include "features/fleet/feature.hpp"
#include "features/observe/feature.hpp"
#include "features/tc/feature.hpp"
#include "features/xdp/feature.hpp"
#include "util/netif.hpp"

namespace bpfgate::agent {

Features make_features(const FeatureContext &ctx) {
  Features f;
  auto &xdp = *f.emplace_back(std::make_unique<XdpFeature>(ctx));
  // After the filters: it goes into their `next` program arrays.
  f.push_back(std::make_unique<LbFeature>(ctx));
  // After the filters: it puts the fleet's entries into their blocklists.
  f.push_back(std::make_unique<FleetFeature>(ctx, static_cast<XdpFeature &>(xdp)));
  f.push_back(std::make_unique<TcFeature>(ctx));
  f.push_back(std::make_unique<AccelFeature>(ctx));
  // After the filters: it reads their event buffers and follows them.
  f.push_back(std::make_unique<ObserveFeature>(ctx, static_cast<XdpFeature &>(xdp)));
  return f;
}

Status check_features(const Features &features, const core::Config &c, bool absent_interfaces_ok) {
  std::vector<std::string> errors;
  for (const auto &f : features)
    f->check(c, absent_interfaces_ok, errors);
  return refuse_config(c, errors);
}

void check_interface(const core::Config &c, int line, const char *what, const std::string &name,
                     std::vector<std::string> &errors) {
  if (util::ifindex_of(name) == 0)
    errors.push_back(
        fmt::format("{}:{}: unknown {} '{}' (not in this network namespace; see `ip link`)", c.path,
                    line, what, name));
}

Status refuse_config(const core::Config &c, const std::vector<std::string> &errors) {
  if (errors.empty())
    return {};
  std::string all;
  for (const auto &e : errors)
    all += "\n" + e;
  return make_error(ENODEV, "{} error{} in {}; nothing was applied:{}", errors.size(),
                    errors.size() == 1 ? "" : "s", c.path, all);
}

}  // namespace bpfgate::agent
