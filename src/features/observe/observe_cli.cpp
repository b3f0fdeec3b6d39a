// `bpfgate events`: follows the datapath's events live. Normally from the
// agent (which reads each filter's event buffer, adds what it sees itself,
// such as released blocks, and fans them out); with --direct, from the
// pinned event buffers themselves, for filters attached without an agent.
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <cstring>

#include "features/observe/events.hpp"
#include "features/xdp/filter.hpp"
#include "bpf/event_buffer.hpp"
#include "bpf/map.hpp"
#include "bpf/pin.hpp"
#include "cli/registry.hpp"
#include "util/log.hpp"

namespace bpfgate::cli {

namespace {

struct EventsOptions {
  std::string socket = "/run/bpfgate/agent.sock";
  std::string iface;
  uint64_t count = 0;    // 0: until interrupted
  double timeout_s = 0;  // 0: no limit
  bool direct = false;
};

using Clock = std::chrono::steady_clock;

// Milliseconds left before the deadline (-1: none), 0 when it passed.
int ms_left(const EventsOptions &o, Clock::time_point start) {
  if (o.timeout_s <= 0)
    return -1;
  auto end = start + std::chrono::duration_cast<Clock::duration>(
                         std::chrono::duration<double>(o.timeout_s));
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(end - Clock::now()).count();
  return left > 0 ? static_cast<int>(left) : 0;
}

int from_agent(const Globals &g, const EventsOptions &o) {
  bpf::UniqueFd sock(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, o.socket.c_str(), sizeof(addr.sun_path) - 1);
  if (!sock.valid() || connect(sock.get(), reinterpret_cast<sockaddr *>(&addr), sizeof(addr)) != 0)
    return fail(Error(errno, fmt::format("no agent answers on {}: is `bpfgate run` running (or "
                                         "give its socket with --socket)? To read the events of "
                                         "filters attached without an agent, use --direct",
                                         o.socket)));
  std::string req = fmt::format("events {} {}\n", g.json ? "json" : "text", o.iface);
  (void)!send(sock.get(), req.data(), req.size(), MSG_NOSIGNAL);
  auto start = Clock::now();
  std::string buf;
  bool greeted = false;
  uint64_t seen = 0;
  char chunk[4096];
  while (!stop_requested()) {
    int left = ms_left(o, start);
    if (left == 0)
      break;
    pollfd p{sock.get(), POLLIN, 0};
    int r = poll(&p, 1, left < 0 || left > 200 ? 200 : left);
    if (r < 0 && errno != EINTR)
      return fail(Error(errno, "wait for the agent"));
    if (r <= 0)
      continue;
    ssize_t n = recv(sock.get(), chunk, sizeof(chunk), 0);
    if (n <= 0) {
      if (!greeted)
        return fail(Error(EPIPE, "the agent closed the connection: is it an older bpfgate?"));
      log::info("the agent went away");
      return 1;
    }
    buf.append(chunk, static_cast<size_t>(n));
    for (size_t nl; (nl = buf.find('\n')) != std::string::npos;) {
      std::string line = buf.substr(0, nl);
      buf.erase(0, nl + 1);
      if (!greeted) {
        greeted = true;
        if (line.rfind("ok ", 0) != 0)
          return fail(Error(0, line.rfind("error ", 0) == 0 ? line.substr(6) : line));
        log::info("following {} (Ctrl-C to stop)", line.substr(3));
        continue;
      }
      fmt::print("{}\n", line);
      if (o.count && ++seen >= o.count)
        return 0;
    }
  }
  return 0;
}

int direct(const Globals &g, const EventsOptions &o) {
  std::vector<std::string> names;
  if (!o.iface.empty()) {
    names.push_back(o.iface);
  } else {
    auto all = agent::pinned_interfaces(g.bpffs);
    if (!all)
      return fail(all.error());
    names = *all;
  }
  std::vector<std::pair<std::string, bpf::EventBuffer>> bufs;
  uint64_t seen = 0;
  bool done = false;
  for (const auto &n : names) {
    std::string path = bpf::pin_path(bpf::pin_dir(g.bpffs, n), BG_PIN_EVENTS);
    auto map = bpf::open_pinned(path);
    if (!map)
      return fail(
          map.error().context(fmt::format("{}: no event buffer pinned ({}); attach with "
                                          "this version of bpfgate",
                                          n, path)));
    auto b = bpf::EventBuffer::open(map->get(), [&, n](std::string_view rec) {
      auto e = agent::decode_event(n, rec);
      if (!e || done)
        return;
      fmt::print("{}\n", g.json ? agent::event_json(*e) : agent::event_text(*e));
      if (o.count && ++seen >= o.count)
        done = true;
    });
    if (!b)
      return fail(b.error().context(n));
    bufs.emplace_back(n, std::move(*b));
  }
  if (bufs.empty())
    return fail(Error(ENOENT, "bpfgate is not attached to any interface; see `bpfgate attach`"));
  log::warn(
      "reading the event buffers directly: do not run this beside an agent (you would split its "
      "events); released blocks are reported by the agent only");
  auto start = Clock::now();
  while (!stop_requested() && !done) {
    int left = ms_left(o, start);
    if (left == 0)
      break;
    for (auto &[n, b] : bufs)
      if (auto r = b.poll(bufs.size() > 1 ? 50 : 200); !r)
        return fail(r.error().context(n));
  }
  return 0;
}

}  // namespace

void add_observe_commands(Registry &r) {
  auto &o = r.keep<EventsOptions>();
  auto *e = r.app().add_subcommand(
      "events",
      "follow the datapath's events live: blocks, releases, first rule hits, samples "
      "of dropped frames");
  e->add_option("--socket", o.socket, "the agent's control socket")->capture_default_str();
  e->add_option("--iface", o.iface, "only this interface")->check(iface_name());
  e->add_option("-c,--count", o.count, "exit after this many events");
  e->add_option("--timeout", o.timeout_s, "exit after this many seconds")
      ->check(CLI::Range(0.0, 1e6));
  e->add_flag("--direct", o.direct,
              "read the pinned event buffers, not the agent (for filters attached without one)");
  r.add(e, [&o, &g = r.globals()] {
    stop_on_signals();
    std::setvbuf(stdout, nullptr, _IOLBF, 0);
    return o.direct ? direct(g, o) : from_agent(g, o);
  });
}

}  // namespace bpfgate::cli
