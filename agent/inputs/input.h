#pragma once

// An input reads records from somewhere (files, stdin) and pushes them into the queue.
//
// Thread-safety: start() and stop() are called by the pipeline's thread; an input runs its own
// thread(s) between them. finished() and stats() may be called from any thread.

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>

#include "agent/pipeline/ack.h"
#include "agent/pipeline/queue.h"
#include "base/deadline.h"
#include "config/config.h"

namespace logcapture::agent {

namespace decode {
struct DecodeStats;
}

// Counters of one input; relaxed atomics read by metrics and tests.
struct InputStats {
  std::atomic<std::uint64_t> records{0};
  std::atomic<std::uint64_t> bytes{0};      // bytes read, newlines included
  std::atomic<std::uint64_t> truncated{0};  // lines cut at max_line_bytes
  std::atomic<std::uint64_t> filesOpen{0};
  std::atomic<std::uint64_t> filesWaiting{0};  // matched but not opened because of max_open_files
  std::atomic<std::uint64_t> rotations{0};
  std::atomic<std::uint64_t> truncations{0};   // copytruncate: a file shrank below the read offset
  std::atomic<std::uint64_t> queueDropped{0};  // records the full queue dropped by its policy
  // Bytes of the files held that no checkpoint covers yet (size - committed offset, summed); 0 for stdin.
  std::atomic<std::uint64_t> lagBytes{0};
  std::atomic<std::uint64_t> partialLines{0};  // incomplete last lines sent without their newline (timeout, end)
  // stdin records the queue had no room for by stop()'s deadline: lost (stdin cannot be read again).
  std::atomic<std::uint64_t> unqueuedAtStop{0};
  // Failures, each logged once per path (or input) and state: a file that cannot be opened, a matched
  // path that is not a regular file (FIFO, directory, device, socket), a file whose reads fail, an inotify
  // watch refused (polling finds the changes instead), no eventfd (stop() is seen at the next poll).
  std::atomic<std::uint64_t> openFailures{0};
  std::atomic<std::uint64_t> notRegular{0};
  std::atomic<std::uint64_t> readErrors{0};
  std::atomic<std::uint64_t> watchFailures{0};
  std::atomic<std::uint64_t> wakeupFailures{0};
  std::atomic<std::uint64_t> filesUnreadable{0};  // matched paths not followed now for one of those reasons
};

class Input {
 public:
  virtual ~Input() = default;
  virtual const std::string& name() const = 0;
  virtual bool start() = 0;
  // Stops reading, flushes held lines into the queue, and returns by the deadline.
  virtual void stop(base::Deadline deadline) = 0;
  // Takes changed settings (same name and type) without stopping, so nothing held is cut or lost;
  // false when this input cannot, and the pipeline rebuilds it instead. Called by the pipeline's thread.
  virtual bool reconfigure(const config::InputConfig& /*next*/) { return false; }
  // True when the input has read everything it ever will (stdin at EOF).
  virtual bool finished() const { return false; }
  // After stop(): true once the sinks have finished with every record it read, so its checkpoints
  // are where it stopped reading (a replacement then resumes without reading anything twice).
  virtual bool settled() const { return true; }
  virtual const InputStats& stats() const = 0;
  // The decoder's counters; null for an input that decodes nothing.
  virtual const decode::DecodeStats* decodeStats() const { return nullptr; }
};

// Pushes records read together from one source (a chunk the decoder filled) into the queue, counting
// them and any the full queue dropped. `cursor` is the source's (null for stdin, which cannot be read again).
// `abandon`: see RecordQueue::push.
RecordQueue::PushResult pushRecords(RecordQueue& queue, InputStats& stats, Chunk&& chunk,
                                    const std::shared_ptr<SourceCursor>& cursor,
                                    const std::atomic<bool>* abandon = nullptr);

// An eventfd that interrupts an input thread's poll() when stop() is called. Not copyable.
// Without one (eventfd failed: error() says why, fd() is -1, which poll() ignores) the thread sees
// stop() at its next poll timeout instead; its owner logs and counts that once.
class Wakeup {
 public:
  Wakeup();
  ~Wakeup();
  Wakeup(const Wakeup&) = delete;
  Wakeup& operator=(const Wakeup&) = delete;
  int fd() const { return fd_; }
  int error() const { return error_; }  // errno of eventfd(), 0 when it worked
  void signal() const;
  void clear() const;  // after poll() reported it readable

 private:
  int fd_;
  int error_ = 0;
};

}  // namespace logcapture::agent
