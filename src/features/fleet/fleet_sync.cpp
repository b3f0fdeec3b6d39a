#include "features/fleet/fleet_sync.hpp"

#include <sys/eventfd.h>
#include <unistd.h>

#include <chrono>
#include <map>
#include <set>

namespace bpfgate::fleet {

namespace {
constexpr size_t kMaxTxnOps = 128;  // etcd's --max-txn-ops default
constexpr long kBackoffMinMs = 100, kBackoffMaxMs = 5000;
}  // namespace

FleetSync::FleetSync(EtcdOptions o, std::string prefix, int64_t start_revision, int notify_fd)
    : opts_(std::move(o)),
      prefix_(std::move(prefix)),
      start_revision_(start_revision),
      notify_fd_(notify_fd) {
  watch_thread_ = std::thread([this] { watcher(); });
  publish_thread_ = std::thread([this] { publisher(); });
}

FleetSync::~FleetSync() {
  {
    std::lock_guard<std::mutex> l(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  watch_thread_.join();
  publish_thread_.join();
}

void FleetSync::report(Report r) {
  {
    std::lock_guard<std::mutex> l(mu_);
    inbox_.push_back(std::move(r));
  }
  uint64_t one = 1;
  (void)!write(notify_fd_, &one, sizeof(one));
}

std::vector<Report> FleetSync::take() {
  std::lock_guard<std::mutex> l(mu_);
  return std::exchange(inbox_, {});
}

void FleetSync::publish(std::vector<Publish> writes) {
  {
    std::lock_guard<std::mutex> l(mu_);
    for (auto &w : writes)
      outbox_.push_back(std::move(w));
  }
  cv_.notify_all();
}

size_t FleetSync::queued() const {
  std::lock_guard<std::mutex> l(mu_);
  return outbox_.size();
}

void FleetSync::pause(long &backoff_ms) {
  std::unique_lock<std::mutex> l(mu_);
  cv_.wait_for(l, std::chrono::milliseconds(backoff_ms), [this] { return stop_.load(); });
  backoff_ms = std::min(backoff_ms * 2, kBackoffMaxMs);
}

void FleetSync::watcher() {
  EtcdClient c(opts_);
  int64_t rev = start_revision_;
  long backoff = kBackoffMinMs;
  while (!stop_) {
    if (rev == 0) {
      auto r = c.range(prefix_, true);
      if (!r) {
        report({.kind = Report::kDown, .error = r.error().what()});
        pause(backoff);
        continue;
      }
      rev = r->revision + 1;
      report({.kind = Report::kSnapshot, .kvs = std::move(r->kvs), .revision = r->revision});
    }
    auto created = [&] {
      backoff = kBackoffMinMs;
      report({.kind = Report::kConnected, .endpoint = c.endpoint()});
    };
    auto on_events = [&](std::vector<WatchEvent> &events, int64_t header) {
      for (const auto &e : events)
        rev = std::max(rev, e.kv.mod_revision + 1);
      report({.kind = Report::kEvents, .events = std::move(events), .revision = rev - 1});
      (void)header;
    };
    auto end = c.watch(prefix_, rev, created, on_events, stop_);
    if (end && end->compact_revision > 0) {
      rev = 0;  // compacted past us: read everything again
      continue;
    }
    if (!end) {
      report({.kind = Report::kDown, .error = end.error().what()});
      pause(backoff);
    }
  }
}

Result<int64_t> FleetSync::write_batch(EtcdClient &c, const std::vector<Publish> &batch) {
  std::map<int64_t, int64_t> lease_of_ttl;
  std::vector<TxnOp> ops;
  for (const auto &p : batch) {
    TxnOp op{p.put, p.key, p.value, 0};
    if (p.put && p.ttl_s > 0) {
      auto it = lease_of_ttl.find(p.ttl_s);
      if (it == lease_of_ttl.end()) {
        auto id = c.lease_grant(p.ttl_s);
        if (!id)
          return id.error();
        it = lease_of_ttl.emplace(p.ttl_s, *id).first;
      }
      op.lease = it->second;
    }
    ops.push_back(std::move(op));
  }
  return c.txn(ops);
}

void FleetSync::publisher() {
  EtcdClient c(opts_);
  long backoff = kBackoffMinMs;
  while (!stop_) {
    std::vector<Publish> batch;
    {
      std::unique_lock<std::mutex> l(mu_);
      cv_.wait(l, [this] { return stop_ || !outbox_.empty(); });
      if (stop_)
        return;
      // A transaction names a key once: a batch ends before a key it holds.
      std::set<std::string> keys;
      for (size_t i = 0; i < outbox_.size() && i < kMaxTxnOps; i++) {
        if (!keys.insert(outbox_[i].key).second)
          break;
        batch.push_back(outbox_[i]);
      }
    }
    auto rev = write_batch(c, batch);
    if (!rev) {
      report({.kind = Report::kDown, .error = rev.error().what()});
      pause(backoff);  // the batch stays queued: tried again
      continue;
    }
    backoff = kBackoffMinMs;
    {
      std::lock_guard<std::mutex> l(mu_);
      outbox_.erase(outbox_.begin(), outbox_.begin() + static_cast<long>(batch.size()));
    }
    report({.kind = Report::kPublished, .revision = *rev, .count = batch.size()});
  }
}

}  // namespace bpfgate::fleet
