// A tiny HTTP server for the latency tests and the probes benchmark: each
// request sleeps a known time, then answers with the status it asks for.
//   bpfgate-slow-backend ADDRESS PORT
//   GET /any/path?ms=50&status=404  -> sleeps 50 ms, answers 404
// nginx-light has no echo or sleep module, so nginx proxies to this.
#include <httplib.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>

int main(int argc, char **argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: bpfgate-slow-backend ADDRESS PORT\n");
    return 2;
  }
  httplib::Server srv;
  srv.new_task_queue = [] { return new httplib::ThreadPool(64); };
  srv.set_tcp_nodelay(true);  // headers and body go out in two writes: no Nagle delay
  srv.Get(R"(/.*)", [](const httplib::Request &req, httplib::Response &res) {
    int ms = req.has_param("ms") ? std::atoi(req.get_param_value("ms").c_str()) : 0;
    int status = req.has_param("status") ? std::atoi(req.get_param_value("status").c_str()) : 200;
    if (ms > 0)
      std::this_thread::sleep_for(std::chrono::milliseconds(ms));
    res.status = status;
    res.set_content("slow_backend " + std::to_string(ms) + "ms\n", "text/plain");
  });
  if (!srv.listen(argv[1], std::atoi(argv[2]))) {
    std::fprintf(stderr, "bpfgate-slow-backend: cannot listen on %s:%s\n", argv[1], argv[2]);
    return 1;
  }
  return 0;
}
