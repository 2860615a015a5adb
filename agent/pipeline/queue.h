#pragma once

// The bounded queue between the inputs and the sinks, bounded in records and in bytes.
//
// Thread-safety: push() from any input thread, pop() from the consumer threads, close() from the
// shutdown path; one mutex guards the deque and the counters, two condition variables wake
// waiting producers and consumers. close() wakes every waiter.

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <vector>

#include "agent/pipeline/ack.h"
#include "base/record.h"
#include "config/config.h"

namespace logcapture::agent {

// Records read together from one source, with the claim that finishes them at their source.
// IMPORTANT: the chunk owns what its records view (their messages' bytes and their source); records
// are valid as long as the chunk, or the Delivery it moves into, lives.
struct Chunk {
  std::vector<base::Record> records;
  base::RecordBytes storage;                   // the bytes of the records' messages
  std::shared_ptr<const base::Source> source;  // the records' source; null when the records' sources live elsewhere
  std::uint64_t bytes = 0;                     // message bytes of the records
  Ack ack;
};

struct QueueStats {
  std::uint64_t records = 0;
  std::uint64_t bytes = 0;
  std::uint64_t droppedNewest = 0;  // records dropped by when_full: drop_newest
  std::uint64_t droppedOldest = 0;  // records dropped by when_full: drop_oldest
  std::uint64_t blockedPushes = 0;  // pushes that waited for room (when_full: block)
};

class RecordQueue {
 public:
  explicit RecordQueue(const config::QueueConfig& cfg);

  enum class PushResult { Accepted, Dropped, Closed };
  // Applies when_full when there is no room: block waits (until room or close), drop_newest drops
  // this chunk, drop_oldest drops the oldest chunks until it fits. A chunk larger than the bounds is
  // admitted when the queue is empty, so it never waits forever. Dropped chunks are finished (their
  // records are dropped by an explicit policy) and counted. A chunk refused because the queue is
  // closed is not finished: it is read again after a restart. `abandon`: block stops waiting once it
  // is true and wakeProducers() was called, and the chunk is refused as if the queue were closed (an
  // input stopping while the sinks hold it back: what it read is read again from its checkpoints).
  PushResult push(Chunk&& chunk, const std::atomic<bool>* abandon = nullptr);
  // Wakes the producers waiting for room, to look at their `abandon` flag.
  void wakeProducers();
  // Takes the oldest chunk; waits up to `timeout`. False when none came or the queue is closed and empty.
  bool pop(Chunk& out, std::chrono::milliseconds timeout);
  // Takes the oldest chunk, waiting as long as it takes. False once the queue is closed and empty, or
  // when wakeConsumer() was called since the last pop that returned false (no wake-up is lost: one
  // that comes while no pop waits, or while a chunk is taken, makes the next empty pop return at once).
  bool pop(Chunk& out);
  // Makes the waiting pop() return false, or the next one when none waits: the consumer has something
  // else to look at (a reload's new routes).
  void wakeConsumer();
  // No more pushes; pops drain what is left. Wakes every waiter.
  void close();
  // True while a producer waits for room (the queue is blocking its inputs).
  bool blocked() const { return waitingProducers_.load(std::memory_order_relaxed) > 0; }
  QueueStats stats() const;
  // The bounds (queue.max_records, queue.max_bytes), fixed at construction.
  std::uint64_t maxRecords() const { return maxRecords_; }
  std::uint64_t maxBytes() const { return maxBytes_; }

 private:
  bool fits(const Chunk& c) const;
  void take(Chunk& out);  // requires mutex_ and a chunk

  const std::uint64_t maxRecords_;
  const std::uint64_t maxBytes_;
  const config::WhenFull whenFull_;
  mutable std::mutex mutex_;
  std::condition_variable notEmpty_;
  std::condition_variable notFull_;
  std::deque<Chunk> chunks_;
  QueueStats stats_;
  bool closed_ = false;
  bool consumerWoken_ = false;  // wakeConsumer() not yet seen by a pop
  std::atomic<int> waitingProducers_{0};
};

}  // namespace logcapture::agent
