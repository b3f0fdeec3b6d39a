#include "cli/commands.hpp"

#include <sys/socket.h>
#include <sys/un.h>

#include <csignal>
#include <cstring>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdio>
#include <string>
#include <vector>

#include "bpf/pin.hpp"
#include "features/xdp/replace.hpp"
#include "bpf/fd.hpp"
#include "cli/status_view.hpp"
#include "util/audit.hpp"
#include "util/log.hpp"

namespace bpfgate::cli {

using nlohmann::json;

namespace {

volatile std::sig_atomic_t g_stop = 0;
void on_stop_signal(int) {
  g_stop = 1;
}

bool g_json_errors = false;
}  // namespace

void set_json_errors(bool on) {
  g_json_errors = on;
}

int fail(const Error &e) {
  report(e);
  return 1;
}

void report(const Error &e) {
  if (!g_json_errors) {
    log::error("{}", e.what());
    return;
  }
  // With -j: one JSON object on stderr, the first line of the message and
  // each further one (a config's FILE:LINE errors) apart.
  std::string text = e.what();
  std::vector<std::string> lines;
  for (size_t at = 0; at <= text.size();) {
    size_t nl = text.find('\n', at);
    lines.push_back(text.substr(at, nl == std::string::npos ? std::string::npos : nl - at));
    if (nl == std::string::npos)
      break;
    at = nl + 1;
  }
  json j = {{"error", lines.front()},
            {"errno", e.err()},
            {"details", std::vector<std::string>(lines.begin() + 1, lines.end())}};
  fmt::print(stderr, "{}\n", j.dump());
}

int cmd_attach(const Globals &g, const agent::AttachOptions &opts) {
  auto r = agent::attach(g.bpffs, opts);
  if (!r)
    return fail(r.error());
  audit::Entry e("attach", audit::by_cli());
  e.set("iface", opts.iface)
      .set("mode", bpf::to_string(r->mode))
      .set("prog_id", r->prog_id)
      .set("rate", opts.limits.rate_pps)
      .set("burst", opts.limits.burst)
      .set("max_sources", opts.max_sources);
  if (r->replaced_prog_id)
    e.set("replaced_prog_id", r->replaced_prog_id);
  if (r->attach == agent::XdpAttach::kDispatcher)
    e.set("attach", "dispatcher").set("priority", r->priority);
  e.write();
  if (g.json) {
    json j = {{"iface", opts.iface},
              {"mode", bpf::to_string(r->mode)},
              {"prog_id", r->prog_id},
              {"link_id", r->link_id},
              {"limits", limits_json(opts.limits)},
              {"new_sources", limits_json(opts.new_sources)},
              {"max_sources", opts.max_sources}};
    if (!r->note.empty())
      j["note"] = r->note;
    if (r->replaced_prog_id)
      j["replaced_prog_id"] = r->replaced_prog_id;
    j["attach"] = agent::to_string(r->attach);
    j["frags"] = r->frags;
    if (r->attach == agent::XdpAttach::kDispatcher)
      j["priority"] = r->priority;
    fmt::print("{}\n", j.dump());
  } else {
    if (!r->note.empty())
      log::warn("{}", r->note);
    std::string through =
        r->attach == agent::XdpAttach::kDispatcher
            ? fmt::format(" through the XDP dispatcher at priority {}", r->priority)
            : "";
    fmt::print(
        "attached to {}{} in {} mode (program id {}{}), {} pps per source, burst {}, up to {} "
        "sources\n",
        opts.iface, through, bpf::to_string(r->mode), r->prog_id,
        r->frags ? ", with frags for the interface's MTU" : "", opts.limits.rate_pps,
        opts.limits.burst, opts.max_sources);
  }
  return 0;
}

int cmd_set(const Globals &g, const std::string &iface, std::optional<uint64_t> rate,
            std::optional<uint64_t> burst, std::optional<uint64_t> new_sources,
            std::optional<uint64_t> unproven) {
  auto f = agent::PinnedFilter::open(g.bpffs, iface);
  if (!f)
    return fail(f.error());
  auto cur = f->status();
  if (!cur)
    return fail(cur.error());
  core::Limits l = cur->limits;
  if (rate)
    l.rate_pps = *rate;
  if (burst)
    l.burst = *burst;
  core::Limits ns = cur->new_sources;
  if (new_sources)
    ns = core::Limits{*new_sources, *new_sources};
  core::Limits up = cur->unproven;
  if (unproven)
    up = core::Limits{*unproven, *unproven};
  if (auto st = f->set_limits(l, ns, up); !st)
    return fail(st.error().context("set " + iface));
  audit::Entry("set", audit::by_cli())
      .set("iface", iface)
      .set("rate", l.rate_pps)
      .set("burst", l.burst)
      .set("new_sources", ns.rate_pps)
      .set("unproven", up.rate_pps)
      .write();
  if (g.json)
    fmt::print("{}\n", json{{"iface", iface},
                            {"limits", limits_json(l)},
                            {"new_sources", limits_json(ns)},
                            {"unproven", limits_json(up)}}
                           .dump());
  else
    fmt::print("{}: {} pps per source, burst {}, new sources {}, unproven sources {}\n", iface,
               l.rate_pps, l.burst, ns.rate_pps ? fmt::format("{}/s", ns.rate_pps) : "unbounded",
               up.rate_pps ? fmt::format("{}/s", up.rate_pps) : "unbounded");
  return 0;
}

int cmd_upgrade(const Globals &g, const std::string &iface) {
  auto r = agent::replace_program(g.bpffs, iface, true);
  if (!r)
    return fail(r.error().context("upgrade " + iface));
  audit::Entry("replace", audit::by_cli())
      .set("iface", iface)
      .set("old_prog_id", r->old_prog_id)
      .set("prog_id", r->new_prog_id)
      .write();
  if (g.json)
    fmt::print("{}\n", json{{"iface", iface},
                            {"link_id", r->link_id},
                            {"old_prog_id", r->old_prog_id},
                            {"prog_id", r->new_prog_id}}
                           .dump());
  else
    fmt::print(
        "{}: program id {} replaced by {} in place (link {}; maps, counters and state kept)\n",
        iface, r->old_prog_id, r->new_prog_id, r->link_id);
  return 0;
}

int cmd_bypass(const Globals &g, const std::string &iface, bool on) {
  auto f = agent::PinnedFilter::open(g.bpffs, iface);
  if (!f)
    return fail(f.error());
  if (auto st = f->set_bypass(on); !st)
    return fail(st.error().context("bypass " + iface));
  audit::Entry("bypass", audit::by_cli())
      .set("iface", iface)
      .set("bypass", on ? "on" : "off")
      .write();
  if (g.json)
    fmt::print("{}\n", json{{"iface", iface}, {"bypass", on}}.dump());
  else if (on)
    fmt::print("{}: BYPASS on: every frame passes unfiltered until `bpfgate bypass {} off`\n",
               iface, iface);
  else
    fmt::print("{}: bypass off: filtering\n", iface);
  return 0;
}

int cmd_detach(const Globals &g, const std::string &iface) {
  if (auto st = agent::detach(g.bpffs, iface); !st)
    return fail(st.error());
  audit::Entry("detach", audit::by_cli()).set("iface", iface).write();
  if (g.json)
    fmt::print("{}\n", json{{"iface", iface}, {"detached", true}}.dump());
  else
    fmt::print("detached from {}\n", iface);
  return 0;
}

int cmd_status(const Globals &g, const std::string &only) {
  auto ifaces = agent::pinned_interfaces(g.bpffs);
  if (!ifaces)
    return fail(ifaces.error());
  if (!only.empty()) {
    if (std::find(ifaces->begin(), ifaces->end(), only) == ifaces->end())
      return fail(make_error(ENOENT, "bpfgate is not attached to {}; see `bpfgate status`", only));
    *ifaces = {only};
  }
  json arr = json::array();
  int rc = 0;
  for (const auto &name : *ifaces) {
    auto f = agent::PinnedFilter::open(g.bpffs, name);
    // Its pin directory gone between the listing and here (detached by
    // another operator, or by an agent whose link went): no longer attached,
    // so not shown, and not an error of this listing.
    if (!f && only.empty() && !bpf::exists(bpf::pin_dir(g.bpffs, name)))
      continue;
    if (!f) {
      rc = 1;
      report(f.error().context(name));
      continue;
    }
    auto s = f->status();
    if (!s) {
      rc = 1;
      report(s.error().context(name));
      continue;
    }
    if (g.json)
      arr.push_back(status_json(*s));
    else
      fmt::print("{}", status_text(*s));
  }
  if (g.json)
    fmt::print("{}\n", json{{"interfaces", arr}}.dump());
  else if (ifaces->empty())
    fmt::print("bpfgate is not attached to any interface\n");
  return rc;
}

// One request line to the agent, its whole answer.
Result<std::string> ask_agent(const std::string &path, const std::string &request) {
  bpf::UniqueFd sock(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, path.c_str(), sizeof(addr.sun_path) - 1);
  if (!sock.valid() || connect(sock.get(), reinterpret_cast<sockaddr *>(&addr), sizeof(addr)) != 0)
    return Error(errno, fmt::format("no agent answers on {}: is `bpfgate run` running (or give "
                                    "its socket with --socket)?",
                                    path));
  std::string line = request + "\n";
  (void)!send(sock.get(), line.data(), line.size(), MSG_NOSIGNAL);
  std::string reply;
  char buf[4096];
  for (ssize_t n; (n = recv(sock.get(), buf, sizeof(buf), 0)) > 0;)
    reply.append(buf, static_cast<size_t>(n));
  while (!reply.empty() && reply.back() == '\n')
    reply.pop_back();
  if (reply == "ok")
    return std::string();
  if (reply.rfind("ok ", 0) == 0)
    return reply.substr(3);
  return Error(0, reply.rfind("error ", 0) == 0 ? reply.substr(6) : "agent: " + reply);
}

void stop_on_signals() {
  std::signal(SIGINT, on_stop_signal);
  std::signal(SIGTERM, on_stop_signal);
}

bool stop_requested() {
  return g_stop != 0;
}

void request_stop() {
  g_stop = 1;
}

}  // namespace bpfgate::cli
