// Socket acceleration under a real gateway: nginx as reverse proxy to a local
// nginx backend that serves files with sendfile, driven by curl and wrk. All
// of it runs in a network namespace and a cgroup the test creates; a second
// namespace plays a client on another host, over veth.
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <regex>
#include <thread>
#include <vector>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

#include "integration/accel_support.hpp"

namespace bpfgate::test {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using namespace std::chrono_literals;

constexpr int kProxyPort = 8080;
constexpr int kBackendPort = 8081;
constexpr const char *kGatewayAddr = "198.18.20.1";
constexpr const char *kClientAddr = "198.18.20.2";

// One nginx master with its config, logs and temp files in its own directory.
class Nginx {
 public:
  Nginx(const accel::Cgroup &cg, const Netns &ns, const std::string &dir, const std::string &http)
      : dir_(dir) {
    fs::create_directories(dir_ + "/tmp");
    std::ofstream conf(dir_ + "/nginx.conf");
    conf << fmt::format(R"(daemon off;
master_process on;
worker_processes 2;
user root;
pid {0}/nginx.pid;
error_log {0}/error.log warn;
events {{ worker_connections 8192; }}
http {{
  access_log off;
  client_body_temp_path {0}/tmp/body;
  proxy_temp_path {0}/tmp/proxy;
  fastcgi_temp_path {0}/tmp/fastcgi;
  uwsgi_temp_path {0}/tmp/uwsgi;
  scgi_temp_path {0}/tmp/scgi;
  sendfile on;
  keepalive_requests 1000000;
  default_type application/octet-stream;
{1}
}}
)",
                        dir_, http);
    conf.close();
    proc_.emplace(Process::spawn(cg.run_in(
        ns.exec() + fmt::format("nginx -p {0} -c {0}/nginx.conf -e {0}/error.log", dir_))));
  }
  std::string log() const {
    std::ifstream f(dir_ + "/error.log");
    return std::string(std::istreambuf_iterator<char>(f), {});
  }

 private:
  std::string dir_;
  std::optional<Process> proc_;
};

class AccelNginx : public ::testing::Test {
 protected:
  void SetUp() override {
    run_ok(gw.exec() + "sysctl -qw net.ipv4.tcp_tw_reuse=1");
    make_veth(gw, accel::name("g0"), std::string(kGatewayAddr) + "/24", client, accel::name("k0"),
              std::string(kClientAddr) + "/24");
    fs::create_directories(root + "/www");
    for (const auto &[file, size] : files) {
      std::vector<char> data(size);
      for (size_t i = 0; i < size; i++)
        data[i] = static_cast<char>(accel::pattern_byte(size, i));
      std::ofstream(root + "/www/" + file, std::ios::binary).write(data.data(), data.size());
    }
    backend.emplace(
        cg, gw, root + "/backend",
        fmt::format("  server {{ listen 127.0.0.1:{}; root {}/www; }}", kBackendPort, root));
    // No upstream keepalive: every request opens a new connection to the
    // backend, which acceleration takes as soon as it is enabled.
    proxy.emplace(cg, gw, root + "/proxy",
                  fmt::format("  server {{ listen {}; location / {{ proxy_pass "
                              "http://127.0.0.1:{}; proxy_http_version 1.1; }} }}",
                              kProxyPort, kBackendPort));
    for (int i = 0; i < 100; i++) {
      if (run(gw.exec() +
              fmt::format("curl -sf -o /dev/null http://127.0.0.1:{}/small.bin", kProxyPort))
              .exit_code == 0)
        return;
      std::this_thread::sleep_for(50ms);
    }
    FAIL() << "nginx did not come up\nbackend: " << backend->log() << "\nproxy: " << proxy->log();
  }

  void TearDown() override {
    proxy.reset();
    backend.reset();
    fs::remove_all(root);
  }

  std::string sha256_of_file(const std::string &file) {
    auto r = run_ok("sha256sum " + root + "/www/" + file);
    return r.out.substr(0, 64);
  }
  // curl in namespace `ns` (and in the cgroup): sha256 of the body.
  std::string fetch(const Netns &ns, const std::string &host, const std::string &file) {
    auto r = run_ok(
        cg.run_in(ns.exec() + fmt::format("curl -sf http://{}:{}/{}", host, kProxyPort, file)) +
        " | sha256sum");
    return r.out.substr(0, 64);
  }

  struct WrkResult {
    double rps = 0;
    uint64_t requests = 0;
    uint64_t socket_errors = 0;
    uint64_t non2xx = 0;
    uint64_t bad_length = 0;
    std::string out;
  };
  // wrk in `ns`, in the cgroup; a Lua script checks every body's length.
  WrkResult wrk(const Netns &ns, const std::string &host, const std::string &file, size_t length,
                int seconds, int conns) {
    std::string script = root + "/check.lua";
    std::ofstream(script) << fmt::format(
        "local bad = 0\n"
        "function response(status, headers, body)\n"
        "  if #body ~= {} then bad = bad + 1 end\n"
        "end\n"
        "function done(summary, latency, requests)\n"
        "  io.write(string.format(\"bad_length %d\\n\", bad))\n"
        "end\n",
        length);
    auto r =
        run(cg.run_in(ns.exec() + fmt::format("wrk -t2 -c{} -d{}s -s {} http://{}:{}/{}", conns,
                                              seconds, script, host, kProxyPort, file)));
    EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
    WrkResult w;
    w.out = r.out;
    std::smatch m;
    if (std::regex_search(r.out, m, std::regex(R"((\d+) requests in)")))
      w.requests = std::stoull(m[1]);
    if (std::regex_search(r.out, m, std::regex(R"(Requests/sec:\s+([\d.]+))")))
      w.rps = std::stod(m[1]);
    if (std::regex_search(
            r.out, m,
            std::regex(R"(Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+))")))
      for (int i = 1; i <= 4; i++)
        w.socket_errors += std::stoull(m[i]);
    if (std::regex_search(r.out, m, std::regex(R"(Non-2xx or 3xx responses: (\d+))")))
      w.non2xx = std::stoull(m[1]);
    if (std::regex_search(r.out, m, std::regex(R"(bad_length (\d+))")))
      w.bad_length = std::stoull(m[1]);
    else
      ADD_FAILURE() << "wrk's script did not report: " << r.out;
    return w;
  }

  void expect_clean_run(const WrkResult &w) {
    EXPECT_GT(w.requests, 0u) << w.out;
    EXPECT_EQ(w.socket_errors, 0u) << w.out;
    EXPECT_EQ(w.non2xx, 0u) << w.out;
    EXPECT_EQ(w.bad_length, 0u) << w.out;
  }

  Netns gw{accel::name("g")};
  Netns client{accel::name("k")};
  accel::Cgroup cg{"ng"};
  accel::Accel acc{gw, cg};
  std::string root = "/tmp/" + accel::name("-nginx");
  const std::map<std::string, size_t> files = {
      {"small.bin", 1024}, {"medium.bin", 200 * 1024}, {"large.bin", 6 * 1024 * 1024 + 7}};
  std::optional<Nginx> backend, proxy;
};

TEST_F(AccelNginx, ResponsesAreByteIdenticalAndGoThroughTheMap) {
  std::map<std::string, std::string> plain;
  for (const auto &[file, size] : files) {
    plain[file] = fetch(gw, "127.0.0.1", file);
    EXPECT_EQ(plain[file], sha256_of_file(file)) << file;
  }
  acc.enable(fmt::format("--ports {},{}", kProxyPort, kBackendPort));
  uint64_t total = 0;
  for (int round = 0; round < 3; round++)
    for (const auto &[file, size] : files) {
      EXPECT_EQ(fetch(gw, "127.0.0.1", file), plain[file]) << file << " round " << round;
      total += size;
    }
  auto s = acc.status();
  // Both hops are local: backend -> proxy and proxy -> curl.
  EXPECT_GE(s["redirected"]["bytes"].get<uint64_t>(), 2 * total) << s.dump();
  EXPECT_GE(s["counters"]["sockets_added"]["count"].get<uint64_t>(), 4u * 9);
  expect_clean_run(wrk(gw, "127.0.0.1", "medium.bin", files.at("medium.bin"), 2, 16));
  EXPECT_GT(acc.redirected_bytes(), s["redirected"]["bytes"].get<uint64_t>());
}

TEST_F(AccelNginx, ClientOverVethIsServedNormally) {
  acc.enable(fmt::format("--ports {},{}", kProxyPort, kBackendPort));
  auto before = acc.status();
  for (const auto &[file, size] : files)
    EXPECT_EQ(fetch(client, kGatewayAddr, file), sha256_of_file(file)) << file;
  auto after = acc.status();
  // The proxy -> backend hop is local and redirected; the client's connection
  // crosses namespaces and stays on the normal path, both of its ends skipped.
  EXPECT_GT(after["redirected"]["bytes"].get<uint64_t>(),
            before["redirected"]["bytes"].get<uint64_t>());
  EXPECT_GE(after["counters"]["sockets_skipped"]["count"].get<uint64_t>() -
                before["counters"]["sockets_skipped"]["count"].get<uint64_t>(),
            2u * files.size());
  expect_clean_run(wrk(client, kGatewayAddr, "medium.bin", files.at("medium.bin"), 1, 8));
}

// Two wrk runs: A for the whole 6 s, its connections opened before enabling;
// B from 1.2 s to 4.7 s, its connections opened while enabled, so they are
// redirected when the first disable comes (at 2.5 s) and fall back under
// load. Enable again at 3.5 s, disable at 5 s. No request may fail.
TEST_F(AccelNginx, EnablingAndDisablingUnderLoadLosesNoRequest) {
  std::string enable =
      fmt::format("accel enable --cgroup {} --ports {},{}", cg.path(), kProxyPort, kBackendPort);
  std::vector<std::string> steps;
  std::vector<json> disables;
  uint64_t redirected_before_disable = 0;
  WrkResult b;
  auto start = std::chrono::steady_clock::now();
  std::thread toggler([&] {
    auto at = [&](std::chrono::milliseconds t) { std::this_thread::sleep_until(start + t); };
    auto step = [&](const std::string &args) {
      auto r = acc.cli(args);
      steps.push_back(fmt::format("{} -> {}: {}{}", args, r.exit_code, r.out, r.err));
      if (contains(args, "disable"))
        disables.push_back(json::parse(r.out, nullptr, false));
    };
    at(1000ms);
    step(enable);
    at(1200ms);
    std::thread wrk_b(
        [&] { b = wrk(gw, "127.0.0.1", "medium.bin", files.at("medium.bin"), 3, 8); });
    at(2400ms);
    redirected_before_disable = acc.redirected_bytes();
    at(2500ms);
    step("-j accel disable --timeout 3");
    at(3500ms);
    step(enable);
    wrk_b.join();
    at(5000ms);
    step("-j accel disable --timeout 3");
  });
  auto a = wrk(gw, "127.0.0.1", "medium.bin", files.at("medium.bin"), 6, 16);
  toggler.join();
  std::string log = fmt::format("{}", fmt::join(steps, "\n"));
  for (const auto &s : steps)
    EXPECT_TRUE(contains(s, " -> 0: ")) << s;
  EXPECT_GT(redirected_before_disable, 0u) << "nothing was redirected under load\n" << log;
  ASSERT_EQ(disables.size(), 2u) << log;
  // B's 8 connections, both ends, were accelerated when the first disable came.
  EXPECT_GE(disables[0].value("released", 0), 16) << log;
  for (const auto &d : disables) {
    EXPECT_EQ(d.value("state", ""), "off") << log;
    EXPECT_EQ(d.value("dropped", -1), 0) << log;
  }
  expect_clean_run(a);
  expect_clean_run(b);
  EXPECT_EQ(acc.status()["state"], "off") << log;
}

}  // namespace
}  // namespace bpfgate::test
