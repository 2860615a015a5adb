#pragma once

// A sink's buffer on disk (buffer.type: disk), under state_dir/buffers/<sink>/: append-only segment
// files of frames, one frame per batch (agent/buffer_segment.h). Every batch the batcher forms is written
// through; once the write is synced (sync: always at once, sync: interval by a syncer thread) the
// batch's claims are released, so its files' checkpoints move past it: the records are safe on disk,
// and a file rotated or deleted meanwhile need not be held open, nor stdin's records kept.
//
// Batches wait in lanes as in the memory buffer (agent/sink_buffer.h); the most recent ones stay in
// memory as formed (up to a memory front of a few batches per lane), the others are read back from
// disk when their lane's worker comes to them. A segment is deleted once every batch in it is finished:
// delivered, dead-lettered, or dropped by policy. max_bytes bounds the segments on disk; when_full
// applies there, and to a write the disk refuses (full, or read-only), which is counted and logged once.
// At open, what the segments hold is replayed first, oldest first, before any batch formed since.
// A frame that cannot be read (torn by a crash, corrupt, a segment of garbage) is skipped, counted,
// and logged once; the buffer goes on.
//
// NOTE on threads: the same callers as SinkBuffer (it sits behind one): push() and admit() from the
// batcher, pop() and pushFront() from the workers, close()/wake()/drain() from the pipeline's thread.
// mutex_ guards everything below it; the syncer thread (sync: interval) takes it to snapshot what to
// sync, then syncs and releases claims without it. A batch's frame is released by whichever thread
// drops the last PendingBatch holding it (DiskFrameHold), which takes mutex_: never drop one while
// holding it.

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "agent/runner/sink_buffer.h"
#include "config/config.h"

namespace logcapture::agent {

struct DiskBufferStats {
  std::uint64_t bytes = 0;  // of the segment files
  std::uint64_t segments = 0;
  std::uint64_t records = 0;                                    // not yet finished
  std::uint64_t syncs = 0;                                      // fdatasync calls that succeeded
  std::uint64_t corrupt = 0;                                    // frames skipped as unreadable
  std::uint64_t writeErrors = 0;                                // writes, syncs and file creations the disk refused
  std::uint64_t replayed = 0;                                   // records found on disk at open
  std::optional<std::chrono::system_clock::time_point> oldest;  // formation of the oldest unfinished batch
};

class DiskBuffer {
 public:
  // Opens nothing yet (see open()). `dir` is state_dir/buffers/<sink>.
  DiskBuffer(const config::SinkConfig& cfg, std::string dir);
  ~DiskBuffer();
  DiskBuffer(const DiskBuffer&) = delete;
  DiskBuffer& operator=(const DiskBuffer&) = delete;

  // Reads the segments there (to be sent first), writes what was pushed before, and starts the syncer.
  // Once; later calls do nothing. Until then pushes are held in memory: a replacement sink opens only
  // once its predecessor, writing the same directory, has let go of it.
  void open();
  // As SinkBuffer::push, the bound being the bytes on disk. Drop policies hand back what they drop in
  // `evicted` (a batch that was not in memory comes back with its record count only: null records).
  // `mayDrop` as there: a drop policy waits while it is false.
  SinkBuffer::PushResult push(PendingBatch& batch, std::vector<PendingBatch>& evicted,
                              const std::function<bool()>& mayDrop);
  void pushFront(PendingBatch&& batch);
  void admit(PendingBatch&& batch);
  bool pop(std::uint32_t lane, PendingBatch& out, std::chrono::steady_clock::time_point until);
  void wake();
  void close();
  // Syncs, finishes the deliveries of what was written, closes the files and forgets what waits in
  // memory: it is all on disk, for the next open. Returns nothing (SinkBuffer::drain's contract: what
  // is left is the caller's, and here it is the disk's).
  std::vector<PendingBatch> drain();
  SinkBufferStats stats() const;
  DiskBufferStats diskStats() const;
  std::optional<std::chrono::steady_clock::time_point> oldestFormedAt() const;
  bool freshBatchBesides(std::uint32_t lane) const;
  const std::string& directory() const { return dir_; }

  // Called by DiskFrameHold when the last batch holding frame `id` lets go of it.
  void release(std::uint64_t id);

 private:
  struct Frame {
    std::uint64_t segment = 0;
    std::uint64_t offset = 0;  // of its header
    std::uint32_t length = 0;  // of its payload
    std::uint32_t records = 0;
    std::uint32_t lane = 0;
    std::int64_t formedNs = 0;  // Unix ns
    bool finished = false;
  };
  struct Entry {  // a batch waiting in a lane; `pb` empty when it is on disk only
    std::uint64_t frame = 0;
    bool inMemory = false;
    PendingBatch pb;
  };
  struct Segment {
    std::string path;
    std::uint64_t size = 0;
    std::uint64_t live = 0;  // frames not finished
    int fd = -1;             // open for writing while active or not yet synced
    bool dirty = false;      // written since the last sync
  };

  void replayLocked();
  // Writes the frame in `scratch_` (holding `records`); false when the disk refused it.
  bool writeLocked(std::uint32_t records, std::uint32_t lane, std::int64_t formedNs, std::uint64_t& id);
  bool rotateLocked();
  void finishFrameLocked(std::uint64_t id);
  void deleteSegmentLocked(std::map<std::uint64_t, Segment>::iterator it);
  bool fitsLocked(std::uint64_t bytes) const;
  // Drops the oldest waiting batch; false when none waits.
  bool evictOldestLocked(std::vector<PendingBatch>& evicted);
  // Takes `pb`'s claims for releasing once synced, and files the batch under `id`.
  void acceptLocked(PendingBatch& pb, std::uint64_t id);
  // `mayDrop` null: unbounded (admit, and what was pushed before open).
  SinkBuffer::PushResult pushLocked(std::unique_lock<std::mutex>& lock, PendingBatch& pb,
                                    std::vector<PendingBatch>& evicted, const std::function<bool()>* mayDrop);
  // Reads the batch of a waiting entry back from disk; false when it cannot be read (counted).
  bool loadLocked(Entry& e);
  // Adds (+1) or removes (-1) a waiting entry in queued_.
  void countLocked(const Entry& e, int sign);
  void noteWriteError(const std::string& what, int error);
  void noteCorrupt(std::uint64_t frames, const std::string& where);
  // Syncs what was written; finishes the deliveries it covered. `final`: at drain, no syncer running.
  void syncNow();
  void runSyncer();

  const std::string dir_;
  const std::string sink_;
  const config::Encoding encoding_;
  const std::uint64_t maxBytes_;
  const std::uint64_t segmentBytes_;
  const std::uint64_t memoryBytes_;  // the memory front
  const config::WhenFull whenFull_;
  const bool syncAlways_;
  const std::chrono::nanoseconds syncInterval_;
  const std::uint32_t lanes_;

  std::mutex syncMutex_;  // one sync at a time; taken before mutex_
  mutable std::mutex mutex_;
  std::condition_variable changed_;
  bool opened_ = false;
  bool closed_ = false;
  std::atomic<bool> shutDown_{false};  // drained: frame releases are ignored (everything stays on disk)
  std::vector<PendingBatch> early_;    // pushed before open()
  std::deque<Frame> frames_;           // by id, from firstFrame_
  std::uint64_t firstFrame_ = 0;
  std::vector<std::deque<Entry>> lanesQueue_;
  std::map<std::uint64_t, Segment> segments_;  // by id, the last one active
  std::uint64_t nextSegment_ = 1;
  std::uint64_t memoryUsed_ = 0;
  std::vector<std::vector<Claim>> unsynced_;  // released once their frames are synced
  std::vector<int> toClose_;                  // rotated files the syncer closes after its sync
  SinkBufferStats queued_;
  DiskBufferStats disk_;
  bool writeErrorLogged_ = false;
  bool corruptLogged_ = false;
  bool forceRotate_ = false;  // a failed write may have left a torn frame: the next goes to a new file
  std::string scratch_;       // the frame being written (batcher thread, under mutex_)
  std::string readBuffer_;    // the frame being read back (under mutex_)

  std::mutex syncerMutex_;
  std::condition_variable syncerWake_;
  bool syncerStop_ = false;  // guarded by syncerMutex_
  std::thread syncer_;
};

// Logs once, at warn, each buffer directory under state_dir/buffers/ that no sink in `sinks` uses and
// that still holds segments: a removed (or renamed) sink's records are left there, never deleted.
void warnUnclaimedBuffers(const std::string& stateDir, const std::vector<config::SinkConfig>& sinks);

}  // namespace logcapture::agent
