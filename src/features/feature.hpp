// What every datapath feature is to the agent (src/features/README.md): the
// daemon holds the list make_features() returns and calls each feature, in
// that order, at the same few points of its loop: before the first attach,
// to converge on a config, on its sweep timer, on link events, on readable
// fds it asked to watch, and when it stops (in reverse order). It knows no
// feature by name.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "agent/control_request.hpp"
#include "bpf/fd.hpp"
#include "core/config.hpp"
#include "util/result.hpp"

namespace bpfgate::agent {

struct FeatureContext {
  std::string bpffs = "/sys/fs/bpf";
};

class Feature {
 public:
  virtual ~Feature() = default;
  virtual const char *name() const = 0;

  // What `c` asks of the machine that parsing alone cannot see, one
  // "FILE:LINE: reason" per error. With absent_interfaces_ok (the agent), an
  // interface that is not there yet is waited for, not an error.
  virtual void check(const core::Config &c, bool absent_interfaces_ok,
                     std::vector<std::string> &errors) const {
    (void)c, (void)absent_interfaces_ok, (void)errors;
  }
  // Once, when the agent starts, before any feature converges: what must
  // fail the start before anything is attached, and state read from disk.
  virtual Status prepare(const core::Config &c) {
    (void)c;
    return {};
  }
  // Attaches, adopts, applies and detaches what `next` asks; `running` is the
  // config in force (nullptr at start). Each change audited as `by`'s. On an
  // error the features after this one are not converged and the reload is
  // refused.
  virtual Status converge(const core::Config *running, const core::Config &next,
                          const std::string &by) = 0;
  // After every reload, applied or refused.
  virtual void reloaded(bool ok) { (void)ok; }
  // The sweep timer: expiry, housekeeping, what to log of the datapath.
  virtual void sweep(const core::Config &running) { (void)running; }
  // Interfaces came or went (agent/link_watch.hpp).
  virtual void links_changed(const core::Config &running, const std::string &by) {
    (void)running, (void)by;
  }
  // File descriptors the agent's loop watches for this feature (valid after
  // the first converge), and what to do when one is readable.
  virtual std::vector<int> fds() const { return {}; }
  virtual void on_readable(int fd) { (void)fd; }
  // A control-socket client whose request this feature may serve for as long
  // as it likes (`events`): true if it took the connection.
  virtual bool take_client(ControlVerb verb, bpf::UniqueFd &conn, const std::string &request) {
    (void)verb, (void)conn, (void)request;
    return false;
  }
  // The agent stops: keep leaves the datapath running from its pins.
  virtual void stop(const core::Config &running, bool keep, const std::string &by) = 0;
};

using Features = std::vector<std::unique_ptr<Feature>>;

// Every feature, in the order they converge (src/features/features.cpp).
Features make_features(const FeatureContext &ctx);

// The features' check() over `c`, as one error: "N errors in PATH; nothing
// was applied:" and one line each.
Status check_features(const Features &features, const core::Config &c, bool absent_interfaces_ok);
// "FILE:LINE: unknown WHAT 'NAME' (not in this network namespace; ...)" when
// no interface NAME is in this network namespace; nothing when there is.
void check_interface(const core::Config &c, int line, const char *what, const std::string &name,
                     std::vector<std::string> &errors);
// `errors` ("FILE:LINE: reason") as that one error; none: success.
Status refuse_config(const core::Config &c, const std::vector<std::string> &errors);

}  // namespace bpfgate::agent
