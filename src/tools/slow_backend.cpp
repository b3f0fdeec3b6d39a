// A tiny HTTP server for the latency tests, the probes benchmark and the load
// balancer's slow-backend test: each request sleeps a known time, then
// answers with the status it asks for.
//   bpfgate-slow-backend ADDRESS PORT [NAME]
//   GET /any/path?ms=50&status=404  -> sleeps 50 ms, answers 404
//   GET /_delay?ms=50               -> from now on, requests without ms= sleep 50 ms
// With NAME the body is "NAME\n" (a balanced backend telling who answered).
// nginx-light has no echo or sleep module, so nginx proxies to this.
#include <httplib.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>

int main(int argc, char **argv) {
  if (argc != 3 && argc != 4) {
    std::fprintf(stderr, "usage: bpfgate-slow-backend ADDRESS PORT [NAME]\n");
    return 2;
  }
  std::string name = argc == 4 ? argv[3] : "";
  std::atomic<int> default_ms{0};
  httplib::Server srv;
  srv.new_task_queue = [] { return new httplib::ThreadPool(64); };
  srv.set_tcp_nodelay(true);  // headers and body go out in two writes: no Nagle delay
  // Keep-alive connections live as long as a test holds them (httplib: 5 s by default).
  srv.set_keep_alive_timeout(120);
  srv.set_keep_alive_max_count(100000);
  srv.Get("/_delay", [&](const httplib::Request &req, httplib::Response &res) {
    default_ms = req.has_param("ms") ? std::atoi(req.get_param_value("ms").c_str()) : 0;
    res.set_content("delay " + std::to_string(default_ms.load()) + "ms\n", "text/plain");
  });
  srv.Get(R"(/.*)", [&](const httplib::Request &req, httplib::Response &res) {
    int ms = req.has_param("ms") ? std::atoi(req.get_param_value("ms").c_str()) : default_ms.load();
    int status = req.has_param("status") ? std::atoi(req.get_param_value("status").c_str()) : 200;
    if (ms > 0)
      std::this_thread::sleep_for(std::chrono::milliseconds(ms));
    res.status = status;
    res.set_content(name.empty() ? "slow_backend " + std::to_string(ms) + "ms\n" : name + "\n",
                    "text/plain");
  });
  if (!srv.listen(argv[1], std::atoi(argv[2]))) {
    std::fprintf(stderr, "bpfgate-slow-backend: cannot listen on %s:%s\n", argv[1], argv[2]);
    return 1;
  }
  return 0;
}
