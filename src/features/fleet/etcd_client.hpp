// A small etcd v3 client over etcd's JSON gateway (grpc-gateway: HTTP/1.1,
// POST /v3/..., keys and values base64 in JSON), with libcurl: TLS with a
// client certificate, the auth token header, keep-alive, and the watch
// stream read chunk by chunk. Calls block: the fleet runs them on its own
// threads (fleet_sync.hpp), never on the agent's loop. One client per
// thread: a client is not shared.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "util/result.hpp"

namespace bpfgate::fleet {

struct EtcdOptions {
  std::vector<std::string> endpoints{};  // http(s)://host:port, failed over in order
  std::string ca{}, cert{}, key{};       // TLS: PEM files (empty: system CAs, no client cert)
  std::string user{}, password{};        // auth (empty user: none)
  long timeout_ms = 3000;                // one request's deadline
  int rounds = 2;                        // every endpoint tried this many times per call
  long backoff_ms = 100, backoff_max_ms = 2000;  // between rounds, doubling
};

struct KeyValue {
  std::string key, value;
  int64_t mod_revision = 0;
  int64_t lease = 0;
};

struct RangeResult {
  std::vector<KeyValue> kvs;
  int64_t revision = 0;  // the store's revision the read saw
};

struct TxnOp {
  bool put = true;  // else a delete of key
  std::string key, value;
  int64_t lease = 0;
};

struct WatchEvent {
  bool put = true;  // else DELETE
  KeyValue kv;
};

// How a watch ended, when not with an error.
struct WatchEnd {
  bool stopped = false;          // the caller's stop flag
  int64_t compact_revision = 0;  // > 0: start_revision was compacted away
};

class EtcdClient {
 public:
  explicit EtcdClient(EtcdOptions o);
  ~EtcdClient();
  EtcdClient(const EtcdClient &) = delete;
  EtcdClient &operator=(const EtcdClient &) = delete;

  // The revision of the write.
  Result<int64_t> put(const std::string &key, const std::string &value, int64_t lease = 0);
  // How many keys went (prefix: every key beginning with `key`).
  Result<int64_t> del(const std::string &key, bool prefix = false);
  // revision 0: the newest; keys_only: values left empty.
  Result<RangeResult> range(const std::string &key, bool prefix, int64_t revision = 0,
                            bool keys_only = false);
  // All of `ops` in one transaction (etcd's limit: 128 by default): its revision.
  Result<int64_t> txn(const std::vector<TxnOp> &ops);
  Result<int64_t> lease_grant(int64_t ttl_s);  // the lease's id
  Status lease_revoke(int64_t id);
  Status compact(int64_t revision);
  // A token for `user` (done by the first call that needs one).
  Status authenticate();

  using OnEvents = std::function<void(std::vector<WatchEvent> &events, int64_t header_revision)>;
  // Watches every key under `prefix` from start_revision (> 0); on_created
  // once the watch is in place, on_events for each batch, until `stop` is
  // set (checked at least every 100 ms), an error, or a compaction.
  Result<WatchEnd> watch(const std::string &prefix, int64_t start_revision,
                         const std::function<void()> &on_created, const OnEvents &on_events,
                         const std::atomic<bool> &stop);

  // The endpoint the last call used.
  const std::string &endpoint() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// The key just past every key beginning with `prefix` (etcd's range_end).
std::string prefix_end(const std::string &prefix);
std::string base64_encode(const std::string &in);
// nullopt-like: false when `in` is no base64.
bool base64_decode(const std::string &in, std::string &out);

}  // namespace bpfgate::fleet
