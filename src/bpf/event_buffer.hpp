// EventBuffer: reads a BPF ring buffer or perf event array (whichever the map
// is) and hands each record to a callback. Its fd goes into the caller's
// epoll; consume() drains what is there without blocking.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string_view>

#include "bpf/fd.hpp"
#include "util/result.hpp"

struct ring_buffer;
struct perf_buffer;

namespace bpfgate::bpf {

class EventBuffer {
 public:
  using Callback = std::function<void(std::string_view record)>;

  // map_fd: a BPF_MAP_TYPE_RINGBUF or BPF_MAP_TYPE_PERF_EVENT_ARRAY. The
  // reader holds its own duplicate: the kernel clears a perf event array's
  // entries when the map file they were added through is closed.
  static Result<EventBuffer> open(int map_fd, Callback cb);
  EventBuffer(EventBuffer &&) noexcept;
  EventBuffer &operator=(EventBuffer &&) noexcept;
  EventBuffer(const EventBuffer &) = delete;
  EventBuffer &operator=(const EventBuffer &) = delete;
  ~EventBuffer();

  bool is_ring() const { return ring_ != nullptr; }
  const char *kind() const { return ring_ ? "ringbuf" : "perfbuf"; }
  // Readable when records are waiting (an epoll fd itself).
  int fd() const;
  // Delivers every waiting record; the number delivered.
  Result<int> consume();
  // Waits up to timeout_ms for records and delivers them.
  Result<int> poll(int timeout_ms);
  // Records the kernel could not queue (perf buffer only: a ring buffer's
  // losses are counted by the producer failing its reserve).
  uint64_t lost() const { return state_->lost; }

 private:
  struct State {
    Callback cb;
    uint64_t lost = 0;
  };
  EventBuffer() = default;
  void reset();
  ring_buffer *ring_ = nullptr;
  perf_buffer *perf_ = nullptr;
  std::unique_ptr<State> state_;
  UniqueFd map_;
};

}  // namespace bpfgate::bpf
