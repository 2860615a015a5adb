#pragma once

// The batches of one sink waiting for a send: the backlog while its breaker is open, and the hand-off
// from its batcher to its workers the rest of the time. Bounded in the memory its batches hold
// (buffer.max_bytes, counted by heldBytes) with the sink's when_full policy, which applies whenever it is full: the
// sink's breaker is open, or the destination is healthy but slower than the inputs. Batches live in lanes, one per
// worker: records of one source always go to the same lane, and a lane is sent in order, so each file arrives in order
// at every sink.
//
// In memory, or on disk (buffer.type: disk): then every call goes to a DiskBuffer (disk_buffer.h), which
// keeps this interface: push() persists, pop() reads back, and a batch's claims are released once it is
// persisted. The memory path pays one test of a null pointer per call, nothing else.
//
// Thread-safety: push() from the sink's batcher thread, pop()/pushFront() from its workers, close()
// and wake() from the pipeline's thread; one mutex guards the lanes and the counters.

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <vector>

#include "agent/pipeline/delivery.h"
#include "config/config.h"
#include "sinks/sink.h"

namespace logcapture::agent {

class DiskBuffer;
struct DiskBufferStats;
struct DiskFrameHold;  // disk_buffer.cc: the frame on disk a batch comes from
// The batch holding `hold` is finished with (delivered, dead-lettered, dropped): once the last batch
// holding it lets go, its frame is finished. A hold dropped otherwise (a thread unwinding) leaves the
// frame on disk, sent again after a restart.
void finishFrame(DiskFrameHold& hold);
// A batch holding `hold` now holds only part of the frame's records (a split, a partial retry): its memory
// copy is kept, since reading the frame back would send the other records again.
void narrowFrame(DiskFrameHold& hold);
// One more batch holds `hold` (a split): the frame is finished only once each of them was.
void shareFrame(DiskFrameHold& hold);
// A batch that held `hold` was replaced by parts that hold it each (shareFrame).
void unshareFrame(DiskFrameHold& hold);

// A batch and a claim on each delivery its records belong to.
struct PendingBatch {
  sinks::Batch batch;
  std::vector<Claim> claims;
  std::uint32_t lane = 0;
  std::uint64_t sequence = 0;  // order of formation, for drop_oldest across lanes
  std::uint32_t attempts = 0;  // sends of this batch since it last left the buffer
  // Times it used up retry.max_attempts and went back to the head of its lane: it waits on the
  // breaker from then on, and lets fresher lanes take the trial calls.
  std::uint32_t rounds = 0;
  std::chrono::steady_clock::time_point formedAt{};  // when its batcher formed it
  // Disk buffer only. `retained` keeps the records alive once their claims were released (they are safe
  // on disk); `frame` is the batch's frame on disk, finished when the last batch holding it (a split
  // makes two) is dropped: copy both into a batch made from this one.
  std::shared_ptr<const void> retained;
  std::shared_ptr<DiskFrameHold> frame;

  // Releases every claim: the sink is done with these records.
  void finish() {
    for (auto& c : claims) c.release();
    claims.clear();
    if (frame) finishFrame(*frame);
    frame.reset();
    retained.reset();
  }
  // Now holds only part of the records it was made with (a split, a partial retry).
  void narrowed() {
    if (frame) narrowFrame(*frame);
  }
  // A batch made from part of this one, sharing its disk frame: both must be finished with for the
  // frame to be. `records`: the part's, sent in lane `inLane`; its claims and the rest are copied from this batch.
  PendingBatch part(sinks::Batch records, std::uint32_t inLane) const {
    PendingBatch p{std::move(records), {}, inLane, sequence, 0, rounds, formedAt, retained, frame};
    for (const auto& c : claims) p.claims.push_back(c.another());
    if (p.frame) shareFrame(*p.frame);
    p.narrowed();
    return p;
  }
  // Its parts hold every one of its records now: lets go of its claims and of its share of the frame,
  // neither finishing nor abandoning them.
  void replacedByParts() {
    for (auto& c : claims) c.release();
    claims.clear();
    if (frame) unshareFrame(*frame);
    frame.reset();
    retained.reset();
  }
};

// The memory a batch keeps while it waits: its encoding, the lines it was encoded from (counted as
// its encoding again: an encoding is seldom shorter than its line) and, per record, its fields (48
// bytes) and its place in the batch (12). A memory buffer counts this against buffer.max_bytes, so
// the bound is one on memory, not on encoded bytes alone, which were about half of it.
inline std::uint64_t heldBytes(const PendingBatch& b) {
  return 2 * b.batch.bytes() + 60 * std::uint64_t(b.batch.size());
}

struct SinkBufferStats {
  std::uint64_t batches = 0;
  std::uint64_t records = 0;
  std::uint64_t bytes = 0;  // memory: heldBytes of the batches waiting; disk: their encoded bytes
};

class SinkBuffer {
 public:
  SinkBuffer(std::uint32_t lanes, std::uint64_t maxBytes, config::WhenFull whenFull);
  // On disk: `disk` takes every call (null: in memory).
  SinkBuffer(std::uint32_t lanes, std::uint64_t maxBytes, config::WhenFull whenFull, std::unique_ptr<DiskBuffer> disk);
  ~SinkBuffer();

  enum class PushResult { Accepted, Dropped, Closed };
  // Adds the batch at the back of its lane. Without room: block waits for room or close(); the drop
  // policies wait too while `mayDrop()` is false (a slow sink that holds back no other sink: waiting
  // holds back the inputs, which lose nothing, where a drop would lose lines for no one's benefit), then
  // drop_newest refuses this batch (Dropped, left in `batch`) and drop_oldest moves the oldest batches
  // of any lane into `evicted`. The caller counts and finishes what was dropped. A batch larger than
  // the bound is admitted into an empty buffer, so nothing waits forever. `mayDrop` is polled (every
  // 20 ms) under the buffer's lock: it must be cheap and must not take this buffer's lock.
  PushResult push(PendingBatch& batch, std::vector<PendingBatch>& evicted, const std::function<bool()>& mayDrop);
  // Returns a batch that could not be sent to the front of its lane, ahead of newer batches. It was
  // admitted before, so it is never refused.
  void pushFront(PendingBatch&& batch);
  // Adds the batch at the back of its lane whatever the bound and even when closed: a runner being
  // released collects everything it holds here to hand it over.
  void admit(PendingBatch&& batch);
  // A batch taken from the buffer that waits outside it (a worker's retry): a disk buffer writes it to
  // disk, as if it had waited inside; a memory buffer does nothing.
  void secure(PendingBatch& batch) {
    if (disk_) [[unlikely]]
      secureOnDisk(batch);
  }
  // Takes the oldest batch of `lane`, waiting until `until` (time_point::max(): no timeout). False when
  // none came, when closed and empty, or when wake() was called since this lane's last pop that
  // returned false (a pop that returns a batch leaves the wake for the next one).
  bool pop(std::uint32_t lane, PendingBatch& out, std::chrono::steady_clock::time_point until);
  // Wakes every waiter (the agent is stopping, the batcher is done, a warning waits for its summary):
  // each lane's pop returns, the one under way or else the next, so a worker that looked at its state
  // just before cannot miss this.
  void wake();
  // Pushes fail from now on; waiters wake. pop() still drains.
  void close();
  // Takes everything left (shutdown after the deadline).
  // `keepOnDisk`: a disk buffer writes what waits in memory before (a stop); otherwise (a reload's
  // hand-over) it returns it as it is.
  std::vector<PendingBatch> drain(bool keepOnDisk = true);
  SinkBufferStats stats() const;
  // When the oldest batch waiting was formed; empty when none waits.
  std::optional<std::chrono::steady_clock::time_point> oldestFormedAt() const;
  // True when a lane other than `lane` has a batch at its head that never used up its attempts.
  bool freshBatchBesides(std::uint32_t lane) const;
  // A disk buffer reads what its directory holds and starts writing (DiskBuffer::open); a memory one
  // does nothing. Returns the records found on disk, to be sent first.
  std::uint64_t openDisk();
  // The disk buffer's figures; empty for a memory buffer.
  std::optional<DiskBufferStats> diskStats() const;

 private:
  std::uint32_t laneOf(const PendingBatch& b) const { return b.lane % static_cast<std::uint32_t>(lanes_.size()); }
  void add(PendingBatch&& b, bool front);
  void notifyAll();  // every waiting push and pop, to look again (a wake, a close)
  void secureOnDisk(PendingBatch& batch);
  PendingBatch takeFront(std::uint32_t lane);

  const std::uint64_t maxBytes_;
  const config::WhenFull whenFull_;
  mutable std::mutex mutex_;
  // A push waits on room_ (told when a batch leaves), each lane's pop on its own laneReady_ (told when a
  // batch enters that lane): a batch wakes the one worker that can take it, not every thread.
  std::condition_variable room_;
  std::vector<std::deque<PendingBatch>> lanes_;
  std::vector<char> woken_;                               // per lane: wake() not yet seen by its pop
  std::unique_ptr<std::condition_variable[]> laneReady_;  // one per lane
  // The batch a push waits to fit (when_full: block), for pop() to judge when to tell it.
  struct BlockedPush {
    std::uint64_t bytes = 0;
    std::uint32_t lane = 0;
  };
  std::optional<BlockedPush> blockedPush_;
  SinkBufferStats stats_;
  bool closed_ = false;
  const std::unique_ptr<DiskBuffer> disk_;
};

}  // namespace logcapture::agent
