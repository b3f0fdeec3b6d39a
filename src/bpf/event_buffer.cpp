#include "bpf/event_buffer.hpp"

#include <bpf/libbpf.h>
#include <fcntl.h>

#include <utility>

#include "bpf/error.hpp"
#include "bpf/map.hpp"

namespace bpfgate::bpf {

namespace {
constexpr size_t kPerfPages = 16;  // per CPU, a power of two
}

Result<EventBuffer> EventBuffer::open(int map_fd, Callback cb) {
  auto info = map_info(map_fd);
  if (!info)
    return info.error();
  EventBuffer b;
  b.map_.reset(fcntl(map_fd, F_DUPFD_CLOEXEC, 3));
  if (!b.map_.valid())
    return Error(errno, "duplicate the event map fd");
  map_fd = b.map_.get();
  b.state_ = std::make_unique<State>();
  b.state_->cb = std::move(cb);
  if (info->type == BPF_MAP_TYPE_RINGBUF) {
    auto on_record = [](void *ctx, void *data, size_t size) -> int {
      static_cast<State *>(ctx)->cb(std::string_view(static_cast<const char *>(data), size));
      return 0;
    };
    b.ring_ = ring_buffer__new(map_fd, on_record, b.state_.get(), nullptr);
    if (!b.ring_)
      return libbpf_error(-errno, "open the event ring buffer");
    return b;
  }
  if (info->type == BPF_MAP_TYPE_PERF_EVENT_ARRAY) {
    auto on_sample = [](void *ctx, int, void *data, __u32 size) {
      static_cast<State *>(ctx)->cb(std::string_view(static_cast<const char *>(data), size));
    };
    auto on_lost = [](void *ctx, int, __u64 n) { static_cast<State *>(ctx)->lost += n; };
    b.perf_ = perf_buffer__new(map_fd, kPerfPages, on_sample, on_lost, b.state_.get(), nullptr);
    if (!b.perf_)
      return libbpf_error(-errno, "open the event perf buffer");
    return b;
  }
  return make_error(EINVAL, "map {} is neither a ring buffer nor a perf event array (type {})",
                    info->name, info->type);
}

EventBuffer::EventBuffer(EventBuffer &&o) noexcept
    : ring_(std::exchange(o.ring_, nullptr)),
      perf_(std::exchange(o.perf_, nullptr)),
      state_(std::move(o.state_)),
      map_(std::move(o.map_)) {}

EventBuffer &EventBuffer::operator=(EventBuffer &&o) noexcept {
  if (this != &o) {
    reset();
    ring_ = std::exchange(o.ring_, nullptr);
    perf_ = std::exchange(o.perf_, nullptr);
    state_ = std::move(o.state_);
    map_ = std::move(o.map_);
  }
  return *this;
}

EventBuffer::~EventBuffer() {
  reset();
}

void EventBuffer::reset() {
  if (ring_)
    ring_buffer__free(ring_);
  if (perf_)
    perf_buffer__free(perf_);
  ring_ = nullptr;
  perf_ = nullptr;
}

int EventBuffer::fd() const {
  return ring_ ? ring_buffer__epoll_fd(ring_) : perf_buffer__epoll_fd(perf_);
}

Result<int> EventBuffer::consume() {
  int n = ring_ ? ring_buffer__consume(ring_) : perf_buffer__consume(perf_);
  if (n < 0)
    return libbpf_error(n, "read events");
  return n;
}

Result<int> EventBuffer::poll(int timeout_ms) {
  int n = ring_ ? ring_buffer__poll(ring_, timeout_ms) : perf_buffer__poll(perf_, timeout_ms);
  if (n < 0 && n != -EINTR)
    return libbpf_error(n, "wait for events");
  return n < 0 ? 0 : n;
}

}  // namespace bpfgate::bpf
