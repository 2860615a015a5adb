#pragma once

// A sink's buffer on disk (buffer.type: disk), under state_dir/buffers/<sink>/: memory first, then
// append-only segment files of frames, one frame per batch (agent/runner/buffer_segment.h).
//
// A batch waits in memory, holding its files' checkpoints, as in the memory buffer: a sink that keeps up
// never touches the disk. A batch that waits longer than `sync_interval` (a destination down, slow, or
// a backlog) is spilled: written to the active segment, synced, and then its claims are released, so
// the checkpoints move past it; its records are safe on disk, a file rotated or deleted meanwhile need
// not be held open, nor stdin's records kept. `sync: always` spills every batch as it arrives and syncs
// before accepting the next. A stop (or a reload) spills what still waits in memory.
//
// The memory part is bounded (a few batches per lane): a push waits for room there while the sink is
// only busy, and room is made by spilling once batches age. `max_bytes` bounds what waits in memory
// plus the segment files; `when_full` applies there, and to writes the disk refuses (full, read-only),
// which are counted and logged once.
//
// A segment is deleted once every batch in it is finished: delivered, dead-lettered, or dropped by
// policy. Batches finished while their segment stays are noted in a ledger file beside the segments
// (synced with them), so a restart sends none of them again. At open, what the segments hold and the
// ledger does not name is replayed first, oldest first, before any batch formed since. A frame that
// cannot be read (torn by a crash, corrupt, a segment of garbage) is skipped, counted, and logged once;
// a read the system refuses (out of file descriptors, an I/O error) is retried, never taken for damage.
//
// NOTE on threads: the same callers as SinkBuffer (it sits behind one): push() and admit() from the
// batcher, pop() and pushFront() from the workers, close()/wake()/drain() from the pipeline's thread.
// mutex_ guards everything below it; the syncer thread (sync: interval) spills and syncs. A batch's
// frame is released by whichever thread drops the last PendingBatch holding it (DiskFrameHold), which
// takes mutex_: never drop one while holding it. A hold may outlive its buffer (a fallback sink took the
// batch over): a frame finished after the buffer was drained or destroyed stays on disk, sent again after
// the next open.

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
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "agent/runner/sink_buffer.h"
#include "config/config.h"

namespace logcapture::agent {

struct DiskBufferStats {
  std::uint64_t bytes = 0;  // of the segment files
  std::uint64_t segments = 0;
  std::uint64_t records = 0;      // on disk, not yet finished
  std::uint64_t syncs = 0;        // fdatasync calls that succeeded
  std::uint64_t corrupt = 0;      // records skipped as unreadable (a stretch whose count is unknown: 1)
  std::uint64_t writeErrors = 0;  // writes, syncs and file creations the disk refused
  std::uint64_t readErrors = 0;   // reads back the system refused (retried)
  std::uint64_t replayed = 0;     // records found on disk at open
  std::uint64_t spilled = 0;      // records written to disk since open
  std::optional<std::chrono::system_clock::time_point> oldest;  // formation of the oldest batch on disk
};

struct DiskFrameRelease;  // disk_buffer.cc

class DiskBuffer {
 public:
  // Opens nothing yet (see open()). `dir` is state_dir/buffers/<sink>.
  DiskBuffer(const config::SinkConfig& cfg, std::string dir);
  ~DiskBuffer();
  DiskBuffer(const DiskBuffer&) = delete;
  DiskBuffer& operator=(const DiskBuffer&) = delete;

  // Reads the segments there (to be sent first) and starts the syncer. Once; later calls do nothing.
  // Until then batches wait in memory only: a replacement sink opens once its predecessor, writing the
  // same directory, has let go of it.
  void open();
  // As SinkBuffer::push. Drop policies hand back what they drop in `evicted` (a batch that was on disk
  // only comes back with its record count: null records). `mayDrop` as there.
  SinkBuffer::PushResult push(PendingBatch& batch, std::vector<PendingBatch>& evicted,
                              const std::function<bool()>& mayDrop);
  void pushFront(PendingBatch&& batch);
  void admit(PendingBatch&& batch);
  // Writes a batch taken from the buffer that is to wait outside it (a worker's retry) to disk, so that it
  // is safe there as if it had waited inside; nothing when it is on disk already or the disk refuses.
  void secure(PendingBatch& batch);
  // As SinkBuffer::pop (until == time_point::max(): no timeout; a wake() is seen once per lane).
  bool pop(std::uint32_t lane, PendingBatch& out, std::chrono::steady_clock::time_point until);
  void wake();
  void close();
  // Syncs, notes finished batches, closes the files. `spill` (a stop): what waits in memory is written
  // first, and what the disk refuses is returned; otherwise (a reload handing its batches over) what
  // waits in memory is returned as it is. What is on disk stays there, for the next open (SinkBuffer::
  // drain's contract: what is returned is the caller's).
  std::vector<PendingBatch> drain(bool spill = true);
  SinkBufferStats stats() const;
  DiskBufferStats diskStats() const;
  std::optional<std::chrono::steady_clock::time_point> oldestFormedAt() const;
  bool freshBatchBesides(std::uint32_t lane) const;
  const std::string& directory() const { return dir_; }

  // Called by DiskFrameHold when the last batch holding frame `id` lets go of it.
  void release(std::uint64_t id);

 private:
  static constexpr std::uint64_t kNoFrame = UINT64_MAX;
  struct Frame {
    std::uint64_t segment = 0;
    std::uint64_t offset = 0;  // of its header
    std::uint32_t length = 0;  // of its payload
    std::uint32_t records = 0;
    std::uint32_t lane = 0;
    std::int64_t formedNs = 0;  // Unix ns
    bool finished = false;
  };
  // A batch waiting in a lane: in memory only (frame kNoFrame, holding its claims), on disk and in
  // memory, or on disk only (`pb` empty).
  struct Entry {
    std::uint64_t frame = kNoFrame;
    bool inMemory = false;
    std::chrono::steady_clock::time_point since{};  // entered the buffer
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
  std::set<std::pair<std::uint64_t, std::uint64_t>> readLedgerLocked();
  // Rewrites the ledger with what `finished` names of segments that still exist (temp file + rename).
  void rewriteLedgerLocked(const std::set<std::pair<std::uint64_t, std::uint64_t>>& finished);
  // Writes the frame in `scratch_`; false when the disk refused it.
  bool writeLocked(std::uint32_t records, std::uint32_t lane, std::int64_t formedNs, std::uint64_t& id);
  bool rotateLocked();
  // `unreadable`: skipped as damaged, not sent; claims held for it are abandoned, not released.
  void finishFrameLocked(std::uint64_t id, bool unreadable = false);
  void deleteSegmentLocked(std::map<std::uint64_t, Segment>::iterator it);
  bool fitsLocked(std::uint64_t bytes) const;
  // Drops the oldest waiting batch; false when none waits.
  bool evictOldestLocked(std::vector<PendingBatch>& evicted);
  // Writes a batch to disk; its claims wait in unsynced_ until synced, its frame in `pb.frame`. False
  // when the disk refused.
  bool writeBatchLocked(PendingBatch& pb);
  // writeBatchLocked for a memory-only entry.
  bool spillLocked(Entry& e);
  // Spills memory-only entries older than `before` (all of them: time_point::max()); then, while memory
  // is over its part, forgets the memory copies of spilled ones. False when the disk refused one.
  bool spillAgedLocked(std::chrono::steady_clock::time_point before);
  // Forgets memory copies of spilled entries until `bytes` more fit in the memory part; true when they do.
  bool makeRoomLocked(std::uint64_t bytes);
  // `bounded`: a push (the bound and when_full apply); otherwise admit/pushFront-like, unbounded.
  SinkBuffer::PushResult pushLocked(std::unique_lock<std::mutex>& lock, PendingBatch& pb,
                                    std::vector<PendingBatch>& evicted, const std::function<bool()>* mayDrop);
  // Reads the batch of an entry on disk only back into memory. 1 read, 0 not now (the system refused:
  // retry later), -1 unreadable (counted).
  int loadLocked(Entry& e);
  void countLocked(const Entry& e, int sign);
  void forgetMemoryLocked(Entry& e);
  void noteWriteError(const std::string& what, int error);
  void noteReadError(const std::string& what, int error);
  void noteCorrupt(std::uint64_t records, const std::string& where);
  // Syncs what was written and the ledger; releases the claims that covered.
  void syncNow();
  // When the syncer has work next: the oldest memory-only batch's spill time, or a pending sync.
  std::chrono::steady_clock::time_point nextSyncerWorkLocked() const;
  void runSyncer();
  std::int64_t wallOf(std::chrono::steady_clock::time_point t) const;
  std::chrono::steady_clock::time_point steadyOf(std::int64_t formedNs) const;
  // Wakes the syncer when it sleeps past `due`.
  void wakeSyncerLocked(std::chrono::steady_clock::time_point due);

  const std::string dir_;
  const std::string sink_;
  const config::Encoding encoding_;
  const std::uint64_t maxBytes_;
  const std::uint64_t segmentBytes_;
  const std::uint64_t memoryBytes_;  // the memory part
  const config::WhenFull whenFull_;
  const bool syncAlways_;
  const std::chrono::nanoseconds syncInterval_;
  const std::uint32_t lanes_;
  // Unix ns minus steady ns, taken once: a batch's formation time on disk is exact and in the order the
  // batches formed (replay sorts by it), which two clock readings per batch would not keep.
  const std::int64_t wallOffsetNs_;

  std::mutex syncMutex_;  // one sync at a time; taken before mutex_
  mutable std::mutex mutex_;
  std::condition_variable changed_;
  std::condition_variable syncerWake_;  // with mutex_
  bool opened_ = false;
  bool closed_ = false;
  bool syncerStop_ = false;
  std::chrono::steady_clock::time_point syncerAt_ = std::chrono::steady_clock::time_point::min();  // it sleeps until
  std::atomic<bool> shutDown_{false};  // drained: frame releases are ignored (what is left stays on disk)
  std::deque<Frame> frames_;           // by id, from firstFrame_
  std::uint64_t firstFrame_ = 0;
  std::vector<std::deque<Entry>> lanesQueue_;
  std::vector<char> woken_;                    // per lane: wake() not yet seen by its pop
  std::map<std::uint64_t, Segment> segments_;  // by id, the last one active
  std::uint64_t nextSegment_ = 1;
  std::uint64_t memoryUsed_ = 0;  // bytes of the entries in memory
  std::uint64_t memoryOnly_ = 0;  // of those not on disk, the bytes they will take there (estimated)
  // By frame: released once what they cover is synced.
  std::vector<std::pair<std::uint64_t, std::vector<Claim>>> unsynced_;
  // Claims whose frame's sync failed: released when the frame is finished.
  std::map<std::uint64_t, std::vector<Claim>> heldUntilFinished_;
  std::vector<int> toClose_;         // rotated files the syncer closes after its sync
  std::string ledgerPending_;        // finished frames to append to the ledger
  std::uint64_t ledgerEntries_ = 0;  // in the ledger file
  int ledgerFd_ = -1;
  bool dirtySince_ = false;  // written (or finished) since the last sync
  std::chrono::steady_clock::time_point syncDue_{};
  bool diskRefusing_ = false;  // the last write failed: memory may not spill
  SinkBufferStats queued_;
  DiskBufferStats disk_;
  bool writeErrorLogged_ = false;
  bool readErrorLogged_ = false;
  bool corruptLogged_ = false;
  bool forceRotate_ = false;  // a failed write may have left a torn frame: the next goes to a new file
  std::string scratch_;       // the frame being written (under mutex_)
  std::string readBuffer_;    // the frame being read back (under mutex_)
  std::thread syncer_;
  // Shared with every frame hold, which may outlive this buffer (disk_buffer.cc).
  const std::shared_ptr<DiskFrameRelease> frameRelease_;
};

// Logs once, at warn, each buffer directory under state_dir/buffers/ that no sink in `sinks` uses and
// that still holds segments: a removed (or renamed) sink's records are left there, never deleted.
void warnUnclaimedBuffers(const std::string& stateDir, const std::vector<config::SinkConfig>& sinks);

}  // namespace logcapture::agent
