// The fleet's I/O with etcd, on its own two threads so that the agent's loop
// and the datapath never wait on etcd: a watcher (a full read when it has no
// revision or its revision was compacted, then the watch) and a publisher
// (queued puts and deletes, batched into transactions with a lease per
// TTL). What they learn comes back to the loop through a queue under a
// mutex, and an eventfd the loop watches (given: it outlives the threads).
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "features/fleet/etcd_client.hpp"

namespace bpfgate::fleet {

// One write the loop asks for: a put (ttl_s 0: no lease) or a delete.
struct Publish {
  bool put = true;
  std::string key, value;
  int64_t ttl_s = 0;
};

// What the threads report to the loop.
struct Report {
  enum Kind {
    kSnapshot,   // kvs: every key under the prefix at `revision`
    kEvents,     // events, up to `revision`
    kConnected,  // the watch is in place on `endpoint`
    kDown,       // etcd could not be reached or refused: `error`
    kPublished,  // `count` writes done at `revision`
  } kind = kDown;
  std::vector<KeyValue> kvs{};
  std::vector<WatchEvent> events{};
  int64_t revision = 0;
  size_t count = 0;
  std::string endpoint{}, error{};
};

class FleetSync {
 public:
  // Starts both threads; start_revision 0: a full read first. notify_fd:
  // an eventfd the threads add 1 to after each report.
  FleetSync(EtcdOptions o, std::string prefix, int64_t start_revision, int notify_fd);
  ~FleetSync();  // stops and joins them (within about 100 ms plus a request's timeout)
  FleetSync(const FleetSync &) = delete;
  FleetSync &operator=(const FleetSync &) = delete;

  void publish(std::vector<Publish> writes);
  size_t queued() const;
  // Everything reported since the last take (the loop reads the eventfd).
  std::vector<Report> take();

 private:
  void watcher();
  void publisher();
  // One batch: leases for its TTLs, then one transaction.
  Result<int64_t> write_batch(EtcdClient &c, const std::vector<Publish> &batch);
  void report(Report r);
  void pause(long &backoff_ms);

  EtcdOptions opts_;
  std::string prefix_;
  int64_t start_revision_;
  int notify_fd_;
  std::atomic<bool> stop_{false};
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Publish> outbox_;
  std::vector<Report> inbox_;
  std::thread watch_thread_, publish_thread_;
};

}  // namespace bpfgate::fleet
