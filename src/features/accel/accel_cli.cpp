// Socket acceleration's subcommands: `bpfgate accel enable|disable|status`.
#include <nlohmann/json.hpp>

#include <chrono>
#include <thread>

#include "features/accel/accel.hpp"
#include "bpf/pin.hpp"
#include "core/cidr.hpp"
#include "cli/registry.hpp"
#include "util/audit.hpp"
#include "util/log.hpp"

namespace bpfgate::cli {

namespace {

namespace accel = agent::accel;
using nlohmann::json;

// CLI11 validators: a bad list is a usage error (exit 2).
std::string check_ports(const std::string &s) {
  auto p = accel::parse_ports(s);
  return p ? "" : p.error().message();
}

std::vector<std::string> split(const std::string &s) {
  std::vector<std::string> out;
  size_t pos = 0;
  while (pos <= s.size()) {
    size_t comma = s.find(',', pos);
    std::string item = s.substr(pos, comma == std::string::npos ? comma : comma - pos);
    if (!item.empty())
      out.push_back(item);
    if (comma == std::string::npos)
      break;
    pos = comma + 1;
  }
  return out;
}

std::string check_addresses(const std::string &s) {
  auto items = split(s);
  if (items.empty())
    return "give at least one address or prefix";
  for (const auto &item : items)
    if (auto p = core::parse_prefix(item); !p)
      return p.error().message();
  return "";
}

std::string join(const std::vector<std::string> &v) {
  std::string out;
  for (const auto &s : v)
    out += (out.empty() ? "" : ",") + s;
  return out;
}

std::string ports_text(const std::vector<uint16_t> &ports) {
  if (ports.empty())
    return "any";
  // Consecutive ports as ranges: 8080-8083,9000.
  std::string out;
  for (size_t i = 0; i < ports.size();) {
    size_t j = i;
    while (j + 1 < ports.size() && ports[j + 1] == ports[j] + 1)
      j++;
    out += (out.empty() ? "" : ",") + std::to_string(ports[i]);
    if (j > i)
      out += "-" + std::to_string(ports[j]);
    i = j + 1;
  }
  return out;
}

std::string bytes_text(uint64_t b) {
  const char *unit[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double v = static_cast<double>(b);
  int u = 0;
  while (v >= 1024 && u < 4) {
    v /= 1024;
    u++;
  }
  return u == 0 ? fmt::format("{} B", b) : fmt::format("{:.1f} {}", v, unit[u]);
}

int cmd_enable(const Globals &g, accel::EnableOptions o) {
  auto r = accel::enable(g.bpffs, o);
  if (!r)
    return fail(r.error());
  audit::Entry("accel_enable", audit::by_cli())
      .set("cgroup", r->cgroup)
      .set("ports", ports_text(o.ports))
      .set("prog_id", r->sockops_prog_id)
      .set("msg_prog_id", r->msg_prog_id)
      .write();
  if (g.json) {
    fmt::print("{}\n", json{{"state", "enabled"},
                            {"cgroup", r->cgroup},
                            {"ports", o.ports},
                            {"addresses", r->addresses},
                            {"max_sockets", o.max_sockets},
                            {"sockops_prog_id", r->sockops_prog_id},
                            {"msg_prog_id", r->msg_prog_id},
                            {"link_id", r->link_id},
                            {"resumed_draining", r->resumed_draining}}
                           .dump());
    return 0;
  }
  if (r->resumed_draining)
    log::info("a previous disable had not finished draining; its sockets stay in the sockhash");
  fmt::print(
      "socket acceleration enabled on cgroup {}: TCP between local addresses ({}) on ports {}; "
      "sock_ops program id {}, sk_msg program id {}\n",
      r->cgroup, join(r->addresses), ports_text(o.ports), r->sockops_prog_id, r->msg_prog_id);
  return 0;
}

int cmd_disable(const Globals &g, const accel::DisableOptions &o) {
  auto r = accel::disable(g.bpffs, o);
  if (!r)
    return fail(r.error());
  audit::Entry("accel_disable", audit::by_cli())
      .set("released", r->released)
      .set("dropped", r->dropped)
      .set("draining", r->remaining)
      .write();
  if (g.json) {
    json j = {{"state", r->removed ? "off" : "draining"},
              {"released", r->released},
              {"dropped", r->dropped},
              {"dropped_bytes", r->dropped_bytes},
              {"remaining", r->remaining}};
    if (!r->note.empty())
      j["note"] = r->note;
    fmt::print("{}\n", j.dump());
    return 0;
  }
  if (r->removed) {
    fmt::print("socket acceleration disabled; {} sockets released", r->released);
    if (r->dropped)
      fmt::print(", {} dropped with {} unread (--force)", r->dropped, bytes_text(r->dropped_bytes));
    fmt::print("\n");
  } else {
    log::warn(
        "{} accelerated sockets still hold bytes their owner has not read; they no longer redirect "
        "but stay pinned until they are read: run `bpfgate accel disable` again later, or "
        "`bpfgate accel disable --force` to drop those bytes",
        r->remaining);
    fmt::print("socket acceleration disabled; {} sockets released, {} draining\n", r->released,
               r->remaining);
  }
  return 0;
}

json counters_json(const accel::Counters &c) {
  json out = json::object();
  for (uint32_t e = 0; e < BG_ACCEL_EVENT_NR; e++)
    out[accel::event_name(static_cast<bg_accel_event>(e))] = {{"count", c[e].count},
                                                              {"bytes", c[e].bytes}};
  return out;
}

int cmd_status(const Globals &g) {
  auto s = accel::status(g.bpffs);
  if (!s)
    return fail(s.error());
  if (g.json) {
    json j = {{"state", accel::to_string(s->state)}};
    if (s->state != accel::State::kOff) {
      j.update(
          {{"cgroup", s->cgroup},
           {"cgroup_id", s->cgroup_id},
           {"ports", s->ports},
           {"addresses", s->addresses},
           {"max_sockets", s->max_sockets},
           {"sockets", s->sockets},
           {"congested", s->congested},
           {"sockops_prog_id", s->sockops_prog_id},
           {"msg_prog_id", s->msg_prog_id},
           {"link_id", s->link_id},
           {"redirected",
            {{"messages", s->redirected_messages()}, {"bytes", s->redirected_bytes()}}},
           {"fallback", {{"messages", s->fallback_messages()}, {"bytes", s->fallback_bytes()}}},
           {"counters", counters_json(s->counters)}});
    }
    fmt::print("{}\n", j.dump());
    return 0;
  }
  if (s->state == accel::State::kOff) {
    fmt::print("socket acceleration is off\n");
    return 0;
  }
  const auto &c = s->counters;
  fmt::print("socket acceleration: {}", accel::to_string(s->state));
  if (s->state == accel::State::kEnabled)
    fmt::print("  cgroup {}  sock_ops prog {}  link {}", s->cgroup.empty() ? "(gone)" : s->cgroup,
               s->sockops_prog_id, s->link_id);
  fmt::print("  sk_msg prog {}\n", s->msg_prog_id);
  fmt::print("    ports {}  addresses {}\n", ports_text(s->ports), join(s->addresses));
  fmt::print("    sockets {} (max {})  added {}  skipped {}  add failed {}\n", s->sockets,
             s->max_sockets, c[BG_ACCEL_SOCK_ADDED].count, c[BG_ACCEL_SOCK_SKIPPED].count,
             c[BG_ACCEL_SOCK_ADD_FAILED].count);
  fmt::print("    redirected {} messages, {}  fallback {} messages, {}\n", s->redirected_messages(),
             bytes_text(s->redirected_bytes()), s->fallback_messages(),
             bytes_text(s->fallback_bytes()));
  return 0;
}

struct WatchArgs {
  double interval_s = 0.5;
  uint64_t limit = 0;  // 0: the default (tcp_rmem's maximum)
  uint64_t count = 0;  // 0: until interrupted or disabled
};

int cmd_watch(const Globals &g, const WatchArgs &a) {
  auto hk = accel::Housekeeper::open(g.bpffs);
  if (!hk)
    return fail(hk.error());
  uint64_t limit = a.limit ? a.limit : accel::default_backlog_limit();
  stop_on_signals();
  if (!g.json)
    fmt::print("watching accelerated sockets every {} s: backlog limit {}, Ctrl-C to stop\n",
               a.interval_s, bytes_text(limit));
  for (uint64_t n = 0; !stop_requested() && (a.count == 0 || n < a.count); n++) {
    if (n > 0)
      std::this_thread::sleep_for(std::chrono::duration<double>(a.interval_s));
    if (!bpf::exists(accel::pin_dir(g.bpffs) + "/" BG_ACCEL_PIN_SOCKETS)) {
      if (!g.json)
        fmt::print("socket acceleration was disabled\n");
      return 0;
    }
    auto rep = hk->check(limit);
    if (!rep)
      return fail(rep.error());
    if (g.json)
      fmt::print("{}\n", json{{"sockets", rep->sockets},
                              {"over_limit", rep->over_limit},
                              {"newly_marked", rep->newly_marked},
                              {"released", rep->released},
                              {"max_unread", rep->max_unread}}
                             .dump());
    else if (rep->newly_marked || rep->released)
      fmt::print(
          "{} sockets: {} newly over the backlog limit (their peers fall back), {} "
          "released to plain TCP; most unread {}\n",
          rep->sockets, rep->newly_marked, rep->released, bytes_text(rep->max_unread));
    std::fflush(stdout);
  }
  return 0;
}

void add_enable(Registry &r, CLI::App *accel_cmd) {
  struct EnableArgs {
    std::string cgroup, ports, addresses;
    uint32_t max_sockets = BG_ACCEL_MAX_SOCKETS_DEFAULT;
    bool ignore_fionread = false;
  };
  auto &e = r.keep<EnableArgs>();
  auto *en = accel_cmd->add_subcommand(
      "enable", "accelerate TCP between local sockets of a cgroup (v2) and its descendants");
  en->add_option("--cgroup", e.cgroup,
                 "cgroup v2 directory, absolute or inside the unified hierarchy (default: its "
                 "root, every process)");
  en->add_option("--ports", e.ports, "only connections with an end on these ports: 80,8080-8090")
      ->check(check_ports);
  en->add_option("--addresses", e.addresses,
                 "both ends in these prefixes (default: this namespace's addresses and loopback)")
      ->check(check_addresses);
  en->add_option("--max-sockets", e.max_sockets, "size of the sockhash")
      ->check(CLI::Range(1U, BG_ACCEL_MAX_SOCKETS_MAX))
      ->capture_default_str();
  en->add_flag("--ignore-fionread-check", e.ignore_fionread,
               "enable even if this kernel's FIONREAD misses redirected bytes (nginx stalls)");
  r.add(en, [&e, &g = r.globals()] {
    accel::EnableOptions o;
    o.cgroup = e.cgroup;
    o.max_sockets = e.max_sockets;
    o.ignore_fionread_check = e.ignore_fionread;
    if (!e.ports.empty())
      o.ports = accel::parse_ports(e.ports).value();
    o.addresses = split(e.addresses);
    return cmd_enable(g, o);
  });
}

void add_disable(Registry &r, CLI::App *accel_cmd) {
  struct DisableArgs {
    double timeout_s = 5.0;
    bool force = false;
  };
  auto &d = r.keep<DisableArgs>();
  auto *dis = accel_cmd->add_subcommand(
      "disable", "stop accelerating, release every socket whose bytes were read, unpin");
  dis->add_option("--timeout", d.timeout_s,
                  "seconds to wait for accelerated sockets to be read empty")
      ->check(CLI::Range(0.0, 3600.0))
      ->capture_default_str();
  dis->add_flag("--force", d.force,
                "also release sockets that still hold unread redirected bytes (they are lost)");
  r.add(dis, [&d, &g = r.globals()] {
    accel::DisableOptions o{
        .drain_timeout = std::chrono::milliseconds(static_cast<int64_t>(d.timeout_s * 1000)),
        .force = d.force};
    return cmd_disable(g, o);
  });
}

void add_watch(Registry &r, CLI::App *accel_cmd) {
  auto &w = r.keep<WatchArgs>();
  auto *wa = accel_cmd->add_subcommand(
      "watch",
      "housekeeping in the foreground, when the agent does not run: bound the backlog of "
      "readers that stop reading, give fallen-back sockets plain TCP back");
  wa->add_option("-i,--interval", w.interval_s, "seconds between checks")
      ->check(CLI::Range(0.01, 3600.0))
      ->capture_default_str();
  wa->add_option("--backlog-limit", w.limit,
                 "unread bytes past which a socket's peer falls back (default: tcp_rmem max)");
  wa->add_option("-c,--count", w.count, "checks before exiting (default: until Ctrl-C)");
  r.add(wa, [&w, &g = r.globals()] { return cmd_watch(g, w); });
}

}  // namespace

void add_accel_commands(Registry &r) {
  auto *accel_cmd = r.app().add_subcommand(
      "accel", "socket acceleration: local TCP skips the TCP/IP stack (sock_ops + sk_msg)");
  accel_cmd->require_subcommand(1);
  add_enable(r, accel_cmd);
  add_disable(r, accel_cmd);
  add_watch(r, accel_cmd);
  auto *st = accel_cmd->add_subcommand(
      "status", "state, cgroup, filters, sockets in the sockhash, redirected and fallback counts");
  r.add(st, [&g = r.globals()] { return cmd_status(g); });
}

}  // namespace bpfgate::cli
