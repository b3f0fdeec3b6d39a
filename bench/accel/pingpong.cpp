// 64-byte TCP request/response between two local processes: the client sends
// a message, the server (a forked child) sends it back, and so on for a fixed
// time. Prints round trips per second. bench/accel/run.sh runs it with and
// without socket acceleration; it knows nothing about BPF itself.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sched.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <vector>

#include <CLI/CLI.hpp>

namespace {

bool full_io(int fd, char *buf, size_t n, bool write) {
  size_t done = 0;
  while (done < n) {
    ssize_t r = write ? ::send(fd, buf + done, n - done, MSG_NOSIGNAL)
                      : ::recv(fd, buf + done, n - done, 0);
    if (r < 0 && errno == EINTR)
      continue;
    if (r <= 0)
      return false;
    done += static_cast<size_t>(r);
  }
  return true;
}

void pin(int cpu) {
  if (cpu < 0)
    return;
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  if (sched_setaffinity(0, sizeof(set), &set) != 0)
    std::perror("pingpong: pin to a CPU");
}

void nodelay(int fd) {
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

}  // namespace

int main(int argc, char **argv) {
  double seconds = 2.0;
  size_t size = 64;
  CLI::App app{"64-byte TCP ping-pong between two local processes: round trips per second"};
  app.add_option("-t,--seconds", seconds, "how long to run")->capture_default_str();
  app.add_option("-s,--size", size, "message size in bytes")
      ->check(CLI::Range(1, 1 << 20))
      ->capture_default_str();
  int client_cpu = -1, server_cpu = -1;
  app.add_option("--client-cpu", client_cpu, "pin the client to this CPU");
  app.add_option("--server-cpu", server_cpu, "pin the server to this CPU");
  CLI11_PARSE(app, argc, argv);

  int listener = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(a);
  if (listener < 0 || bind(listener, reinterpret_cast<sockaddr *>(&a), len) != 0 ||
      listen(listener, 1) != 0 || getsockname(listener, reinterpret_cast<sockaddr *>(&a), &len)) {
    std::perror("pingpong: listen on 127.0.0.1");
    return 1;
  }
  std::vector<char> buf(size, 'p');
  pid_t child = fork();
  if (child < 0) {
    std::perror("pingpong: fork");
    return 1;
  }
  if (child == 0) {
    pin(server_cpu);
    int c = accept(listener, nullptr, nullptr);
    if (c < 0)
      _exit(1);
    nodelay(c);
    while (full_io(c, buf.data(), size, false) && full_io(c, buf.data(), size, true)) {
    }
    _exit(0);
  }
  close(listener);
  pin(client_cpu);
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (connect(fd, reinterpret_cast<sockaddr *>(&a), len) != 0) {
    std::perror("pingpong: connect");
    kill(child, SIGKILL);
    return 1;
  }
  nodelay(fd);
  // Every message carries its number; the echo must carry it back.
  std::vector<char> back(size);
  uint64_t seq = 0;
  auto round_trip = [&] {
    seq++;
    std::memcpy(buf.data(), &seq, std::min(size, sizeof(seq)));
    if (!full_io(fd, buf.data(), size, true) || !full_io(fd, back.data(), size, false))
      return false;
    if (std::memcmp(buf.data(), back.data(), size) != 0) {
      std::fprintf(stderr, "pingpong: echo %lu came back wrong\n", static_cast<unsigned long>(seq));
      std::exit(1);
    }
    return true;
  };
  // Warm up, then count round trips in checks of 256.
  for (int i = 0; i < 1000; i++)
    if (!round_trip())
      return 1;
  auto start = std::chrono::steady_clock::now();
  auto end = start + std::chrono::duration<double>(seconds);
  uint64_t trips = 0;
  auto now = start;
  while (now < end) {
    for (int i = 0; i < 256; i++)
      if (!round_trip()) {
        std::fprintf(stderr, "pingpong: connection broke after %lu round trips\n",
                     static_cast<unsigned long>(trips));
        return 1;
      }
    trips += 256;
    now = std::chrono::steady_clock::now();
  }
  double secs = std::chrono::duration<double>(now - start).count();
  close(fd);
  waitpid(child, nullptr, 0);
  std::printf("round_trips_per_sec %.0f\n", static_cast<double>(trips) / secs);
  return 0;
}
