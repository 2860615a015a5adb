#include "agent/runner/disk_buffer.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include "agent/runner/buffer_segment.h"
#include "agent/runner/crc32c.h"
#include "agent/runner/sink_runner.h"
#include "base/durable_file.h"
#include "base/log.h"
#include "sinks/encoding.h"

namespace logcapture::agent {

// Where finished frames are reported: the buffer, while it lives. A batch may outlive the buffer it was
// read from (another sink took it over as its fallback, agent/runner/fallback.h); a frame finished after
// the buffer is gone stays on disk and is sent again after the next open, as after a stop.
struct DiskFrameRelease {
  std::mutex mutex;
  DiskBuffer* buffer = nullptr;  // guarded by mutex; null once the buffer is destroyed
};

// The frame a batch in memory comes from; the last batch to drop it finishes the frame, if every batch
// that held it was finished with.
struct DiskFrameHold {
  std::shared_ptr<DiskFrameRelease> to;
  std::atomic<std::uint64_t> id{UINT64_MAX};  // UINT64_MAX: disarmed (the frame was finished otherwise)
  std::atomic<bool> done{false};              // a batch holding it was finished with
  std::atomic<bool> partial{false};           // a batch holding it holds only part of the frame
  std::atomic<std::uint32_t> holders{1};      // batches made holding it (a split makes two)
  std::atomic<std::uint32_t> finished{0};     // of those, finished with
  DiskFrameHold(std::shared_ptr<DiskFrameRelease> release, std::uint64_t frame) : to(std::move(release)), id(frame) {}
  ~DiskFrameHold() {
    const std::uint64_t frame = id.load();
    // A batch holding it never finished (a thread unwinding with it, one part of a split left unsent at
    // a stop): the frame stays on disk, for the next start.
    if (frame == UINT64_MAX || !done.load() || finished.load() < holders.load()) return;
    std::lock_guard lock(to->mutex);
    if (to->buffer != nullptr) to->buffer->release(frame);
  }
};

void finishFrame(DiskFrameHold& hold) {
  hold.finished.fetch_add(1);
  hold.done.store(true);
}
void shareFrame(DiskFrameHold& hold) { hold.holders.fetch_add(1); }
void unshareFrame(DiskFrameHold& hold) { hold.holders.fetch_sub(1); }
void narrowFrame(DiskFrameHold& hold) { hold.partial.store(true); }

namespace {

namespace fs = std::filesystem;
using SteadyClock = std::chrono::steady_clock;
using WallClock = std::chrono::system_clock;

constexpr std::uint64_t kMiB = std::uint64_t{1024} * 1024;

std::int64_t wallNanos(WallClock::time_point t) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
}

// The bytes a batch takes once written: its records' encoding stands for their messages, plus each
// record's fixed fields and its batch's sources (counted high: the bound must hold on disk).
std::uint64_t frameEstimate(const PendingBatch& pb) {
  return pb.batch.bytes() + 48 * std::uint64_t(pb.batch.size()) + 2048;
}

std::string segmentName(std::uint64_t id) {
  char name[32];
  std::snprintf(name, sizeof name, "%020" PRIu64 ".seg", id);
  return name;
}

// The id of a segment file name, or 0 when it is not one.
std::uint64_t segmentId(const std::string& name) {
  if (name.size() != 24 || !name.ends_with(".seg")) return 0;
  std::uint64_t id = 0;
  for (std::size_t i = 0; i < 20; ++i) {
    if (name[i] < '0' || name[i] > '9') return 0;
    id = id * 10 + std::uint64_t(name[i] - '0');
  }
  return id;
}

}  // namespace

DiskBuffer::DiskBuffer(const config::SinkConfig& cfg, std::string dir)
    : dir_(std::move(dir)),
      sink_(cfg.name),
      encoding_(cfg.encoding),
      maxBytes_(cfg.buffer.maxBytes.value),
      // A segment is deleted only when all of it is finished: small enough that little waits on its last
      // batch and that drop_oldest frees room in steps of an eighth of the bound, large enough that files
      // stay few.
      segmentBytes_(std::clamp<std::uint64_t>(cfg.buffer.maxBytes.value / 8, 4096, 16 * kMiB)),
      // A few batches per lane wait in memory, as formed: enough to keep every worker busy.
      memoryBytes_(std::min<std::uint64_t>(
          cfg.buffer.maxBytes.value,
          std::uint64_t(4) * std::max<std::uint32_t>(cfg.workers, 1) * cfg.batch.maxBytes.value)),
      whenFull_(cfg.buffer.whenFull),
      syncAlways_(cfg.buffer.sync == config::BufferSync::Always),
      syncInterval_(cfg.buffer.syncInterval),
      lanes_(std::max<std::uint32_t>(cfg.workers, 1)),
      wallOffsetNs_(
          wallNanos(WallClock::now()) -
          std::chrono::duration_cast<std::chrono::nanoseconds>(SteadyClock::now().time_since_epoch()).count()),
      lanesQueue_(lanes_),
      woken_(lanes_, 0),
      frameRelease_(std::make_shared<DiskFrameRelease>()) {
  frameRelease_->buffer = this;
}

DiskBuffer::~DiskBuffer() {
  if (!shutDown_.load()) drain(true);
  std::lock_guard lock(frameRelease_->mutex);
  frameRelease_->buffer = nullptr;
}

void DiskBuffer::open() {
  {
    std::unique_lock lock(mutex_);
    if (opened_) return;
    opened_ = true;
    replayLocked();
  }
  changed_.notify_all();
  if (syncAlways_) {
    {
      std::lock_guard lock(mutex_);
      spillAgedLocked(SteadyClock::time_point::max());
    }
    syncNow();
  } else {
    syncer_ = std::thread([this] { log::guardThread("sink", [this] { runSyncer(); }); });
  }
}

namespace {

constexpr std::string_view kLedgerName = "finished.ledger";
constexpr std::size_t kLedgerEntryBytes = 20;  // u64 segment, u64 frame offset, u32 CRC32C of the 16 bytes

void appendLedgerEntry(std::string& out, std::uint64_t segment, std::uint64_t offset) {
  char entry[kLedgerEntryBytes];
  std::memcpy(entry, &segment, 8);
  std::memcpy(entry + 8, &offset, 8);
  const std::uint32_t crc = crc32c(std::string_view(entry, 16));
  std::memcpy(entry + 16, &crc, 4);
  out.append(entry, sizeof entry);
}

}  // namespace

std::set<std::pair<std::uint64_t, std::uint64_t>> DiskBuffer::readLedgerLocked() {
  std::set<std::pair<std::uint64_t, std::uint64_t>> finished;
  const std::string path = (fs::path(dir_) / kLedgerName).string();
  std::string data;
  if (const int error = base::readFile(path, data); error != 0) {
    // Read in part (or not at all): what it names is still finished; what it misses is sent again.
    if (error != ENOENT) noteReadError("read " + path, error);
    if (error == ENOENT) return finished;
  }
  std::uint64_t damaged = 0;
  for (std::size_t at = 0; at + kLedgerEntryBytes <= data.size(); at += kLedgerEntryBytes) {
    std::uint64_t segment = 0;
    std::uint64_t offset = 0;
    std::uint32_t crc = 0;
    std::memcpy(&segment, data.data() + at, 8);
    std::memcpy(&offset, data.data() + at + 8, 8);
    std::memcpy(&crc, data.data() + at + 16, 4);
    if (crc32c(std::string_view(data.data() + at, 16)) != crc) {
      ++damaged;  // its frame is sent again: a duplicate, never a loss
      continue;
    }
    finished.emplace(segment, offset);
    nextSegment_ = std::max(nextSegment_, segment + 1);
  }
  if (damaged > 0)
    noteCorrupt(0, path + ": " + std::to_string(damaged) + " damaged entries (their batches are sent again)");
  return finished;
}

void DiskBuffer::rewriteLedgerLocked(const std::set<std::pair<std::uint64_t, std::uint64_t>>& finished) {
  if (ledgerFd_ >= 0) ::close(ledgerFd_);
  ledgerFd_ = -1;
  std::string data;
  for (const auto& [segment, offset] : finished) {
    if (segments_.contains(segment)) appendLedgerEntry(data, segment, offset);
  }
  const std::string path = (fs::path(dir_) / kLedgerName).string();
  if (const std::string error = base::replaceFile(path, path + ".tmp", data); !error.empty()) {
    // The old ledger stays: what it names is still finished; at worst batches are sent twice.
    noteWriteError("write " + path + ": " + error, 0);
  }
  ledgerFd_ = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
  if (ledgerFd_ < 0) noteWriteError("open " + path, errno);
  ledgerEntries_ = data.size() / kLedgerEntryBytes;
}

void DiskBuffer::replayLocked() {
  std::error_code ec;
  fs::create_directories(dir_, ec);
  if (ec) noteWriteError("create " + dir_, ec.value());
  std::vector<std::pair<std::uint64_t, std::string>> files;
  for (fs::directory_iterator it(dir_, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (const std::uint64_t id = segmentId(name); id != 0) files.emplace_back(id, it->path().string());
  }
  if (ec) noteReadError("list " + dir_, ec.value());
  std::sort(files.begin(), files.end());
  const auto finished = readLedgerLocked();
  // New segments are numbered past anything an earlier run used, even one whose ledger could not be
  // read: an entry left there must never name a segment written later.
  nextSegment_ = std::max<std::uint64_t>(
      nextSegment_,
      std::uint64_t(
          std::chrono::duration_cast<std::chrono::milliseconds>(WallClock::now().time_since_epoch()).count()));
  std::uint64_t replayedSegments = 0;
  std::vector<std::deque<Entry>> replayed(lanes_);
  const auto now = SteadyClock::now();
  for (const auto& [id, path] : files) {
    nextSegment_ = std::max(nextSegment_, id + 1);
    disk::SegmentScan scan = disk::scanSegment(path);
    if (!scan.opened) {
      // Not readable now (permissions, out of descriptors): left in place for the next start.
      noteReadError("read " + path + ": " + scan.error, EIO);
      continue;
    }
    if (scan.badMagic) {
      if (scan.size == 0) {
        ::unlink(path.c_str());  // created, then the agent died before its first byte: holds nothing
        continue;
      }
      // Not ours to read, and not ours to delete: set aside, out of the bound.
      noteCorrupt(1, path + ": not a buffer segment, renamed to " + path + ".corrupt");
      if (::rename(path.c_str(), (path + ".corrupt").c_str()) != 0) noteWriteError("rename " + path, errno);
      continue;
    }
    if (scan.corrupt > 0) noteCorrupt(scan.corrupt, path);
    const auto live = std::count_if(scan.frames.begin(), scan.frames.end(), [&](const disk::ScannedFrame& f) {
      return !finished.contains({id, f.offset});
    });
    if (live == 0) {
      if (::unlink(path.c_str()) != 0) noteWriteError("unlink " + path, errno);
      continue;
    }
    Segment seg;
    seg.path = path;
    seg.size = scan.size;
    seg.live = std::uint64_t(live);
    segments_[id] = seg;
    disk_.bytes += scan.size;
    disk_.segments += 1;
    replayedSegments += 1;
    for (auto& f : scan.frames) {
      const auto& records = f.batch->chunk.records;
      Frame frame;
      frame.segment = id;
      frame.offset = f.offset;
      frame.length = f.length;
      frame.records = static_cast<std::uint32_t>(records.size());
      frame.lane = records.empty() ? 0 : laneOf(records.front(), lanes_);
      frame.formedNs = wallNanos(f.batch->formedAt);
      frame.finished = finished.contains({id, f.offset});
      frames_.push_back(frame);
      if (frame.finished) continue;
      Entry e;
      e.frame = firstFrame_ + frames_.size() - 1;
      e.since = now;
      countLocked(e, +1);
      replayed[frame.lane].push_back(std::move(e));
      disk_.records += frame.records;
      disk_.replayed += frame.records;
    }
  }
  // In the order the batches formed (a batch sent back to its lane's head may have been written after
  // younger ones), ahead of anything that waited in memory for the open: it is older.
  for (std::uint32_t lane = 0; lane < lanes_; ++lane) {
    std::stable_sort(replayed[lane].begin(), replayed[lane].end(), [&](const Entry& a, const Entry& b) {
      return frames_[a.frame - firstFrame_].formedNs < frames_[b.frame - firstFrame_].formedNs;
    });
    auto& queue = lanesQueue_[lane];
    queue.insert(queue.begin(), std::make_move_iterator(replayed[lane].begin()),
                 std::make_move_iterator(replayed[lane].end()));
  }
  rewriteLedgerLocked(finished);
  if (disk_.replayed > 0) {
    log::event(*log::component("sink"), spdlog::level::info, "disk_buffer_replayed",
               {{"sink", sink_}, {"records", disk_.replayed}, {"segments", replayedSegments}, {"directory", dir_}});
  }
}

bool DiskBuffer::fitsLocked(std::uint64_t bytes) const {
  if (queued_.batches == 0) return true;
  if (disk_.bytes + memoryOnly_ + bytes > maxBytes_) return false;
  // While the disk refuses, memory holds what it would have taken, up to its part.
  return !(diskRefusing_ && memoryOnly_ + bytes > memoryBytes_);
}

bool DiskBuffer::rotateLocked() {
  std::error_code ec;
  fs::create_directories(dir_, ec);  // it may have been removed under us
  const std::uint64_t id = nextSegment_++;
  const std::string path = (fs::path(dir_) / segmentName(id)).string();
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_APPEND | O_CLOEXEC, 0640);
  if (fd < 0) {
    noteWriteError("create " + path, errno);
    return false;
  }
  if (!base::writeAll(fd, disk::kSegmentMagic)) {
    const int error = errno;
    ::close(fd);
    ::unlink(path.c_str());
    noteWriteError("write " + path, error);
    return false;
  }
  // The new file's name must survive a power loss as well as its bytes.
  const int dirFd = ::open(dir_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  const bool named = dirFd >= 0 && ::fsync(dirFd) == 0;
  const int dirError = errno;
  if (dirFd >= 0) ::close(dirFd);
  if (!named) {
    ::close(fd);
    ::unlink(path.c_str());
    noteWriteError("sync " + dir_, dirError);
    return false;
  }
  if (!segments_.empty()) {
    auto last = std::prev(segments_.end());
    if (last->second.fd >= 0) {
      toClose_.push_back(last->second.fd);  // synced, then closed, by the next sync
      last->second.fd = -1;
    }
  }
  Segment seg;
  seg.path = path;
  seg.size = disk::kSegmentMagic.size();
  seg.fd = fd;
  seg.dirty = true;
  segments_[id] = seg;
  disk_.bytes += seg.size;
  disk_.segments += 1;
  forceRotate_ = false;
  return true;
}

void DiskBuffer::deleteSegmentLocked(std::map<std::uint64_t, Segment>::iterator it) {
  if (::unlink(it->second.path.c_str()) != 0 && errno != ENOENT) noteWriteError("unlink " + it->second.path, errno);
  if (it->second.fd >= 0) toClose_.push_back(it->second.fd);
  disk_.bytes -= std::min(disk_.bytes, it->second.size);
  disk_.segments -= 1;
  segments_.erase(it);
  if (segments_.empty() && ledgerFd_ >= 0) {
    // Nothing on disk: no entry of the ledger names a segment that exists.
    ledgerPending_.clear();
    if (ledgerEntries_ > 0 && ::ftruncate(ledgerFd_, 0) == 0) ledgerEntries_ = 0;
  }
}

bool DiskBuffer::writeLocked(std::uint32_t records, std::uint32_t lane, std::int64_t formedNs, std::uint64_t& id) {
  const std::uint64_t bytes = scratch_.size();
  const bool full = !segments_.empty() && std::prev(segments_.end())->second.size + bytes > segmentBytes_ &&
                    std::prev(segments_.end())->second.size > disk::kSegmentMagic.size();
  if (segments_.empty() || std::prev(segments_.end())->second.fd < 0 || full || forceRotate_) {
    if (!rotateLocked()) return false;
  }
  auto active = std::prev(segments_.end());
  Segment& seg = active->second;
  if (!base::writeAll(seg.fd, scratch_)) {
    const int error = errno;
    // A short write leaves part of a frame: cut it off, or at least write no more after it.
    if (::ftruncate(seg.fd, off_t(seg.size)) != 0) forceRotate_ = true;
    noteWriteError("write " + seg.path, error);
    return false;
  }
  Frame frame;
  frame.segment = active->first;
  frame.offset = seg.size;
  frame.length = static_cast<std::uint32_t>(bytes - disk::kFrameHeaderBytes);
  frame.records = records;
  frame.lane = lane % lanes_;
  frame.formedNs = formedNs;
  seg.size += bytes;
  seg.dirty = true;
  seg.live += 1;
  disk_.bytes += bytes;
  disk_.records += records;
  frames_.push_back(frame);
  id = firstFrame_ + frames_.size() - 1;
  return true;
}

void DiskBuffer::countLocked(const Entry& e, int sign) {
  std::uint64_t records = 0;
  std::uint64_t bytes = 0;
  if (e.inMemory) {
    records = e.pb.batch.size();
    bytes = e.pb.batch.bytes();
  } else {
    const Frame& frame = frames_[e.frame - firstFrame_];
    records = frame.records;
    bytes = frame.length;
  }
  if (sign > 0) {
    queued_.batches += 1;
    queued_.records += records;
    queued_.bytes += bytes;
  } else {
    queued_.batches -= std::min<std::uint64_t>(queued_.batches, 1);
    queued_.records -= std::min(queued_.records, records);
    queued_.bytes -= std::min(queued_.bytes, bytes);
  }
}

std::int64_t DiskBuffer::wallOf(SteadyClock::time_point t) const {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count() + wallOffsetNs_;
}

SteadyClock::time_point DiskBuffer::steadyOf(std::int64_t formedNs) const {
  return SteadyClock::time_point(
      std::chrono::duration_cast<SteadyClock::duration>(std::chrono::nanoseconds(formedNs - wallOffsetNs_)));
}

bool DiskBuffer::writeBatchLocked(PendingBatch& pb) {
  scratch_.clear();
  const std::int64_t formedNs = wallOf(pb.formedAt);
  disk::appendFrame(
      scratch_, pb.batch.records,
      WallClock::time_point(std::chrono::duration_cast<WallClock::duration>(std::chrono::nanoseconds(formedNs))));
  std::uint64_t id = 0;
  if (!writeLocked(static_cast<std::uint32_t>(pb.batch.size()), pb.lane, formedNs, id)) {
    diskRefusing_ = true;
    return false;
  }
  diskRefusing_ = false;
  // The claims are released once the frame is synced; while the batch waits in memory its records stay
  // alive through `retained`.
  if (!pb.claims.empty()) {
    auto kept = std::make_shared<std::vector<DeliveryRef>>();
    kept->reserve(pb.claims.size());
    for (const auto& c : pb.claims) kept->push_back(c.share());
    pb.retained = std::move(kept);
    unsynced_.emplace_back(id, std::move(pb.claims));
    pb.claims.clear();
  }
  pb.frame = std::make_shared<DiskFrameHold>(frameRelease_, id);
  disk_.spilled += pb.batch.size();
  if (!dirtySince_) {
    dirtySince_ = true;
    syncDue_ = SteadyClock::now();  // synced by whoever wrote it: the syncer, a stop, or sync: always
  }
  return true;
}

bool DiskBuffer::spillLocked(Entry& e) {
  if (!writeBatchLocked(e.pb)) return false;
  e.frame = e.pb.frame->id.load();
  memoryOnly_ -= std::min(memoryOnly_, frameEstimate(e.pb));
  return true;
}

void DiskBuffer::secure(PendingBatch& pb) {
  {
    std::lock_guard lock(mutex_);
    if (!opened_ || pb.frame || pb.claims.empty() || !writeBatchLocked(pb)) return;
    if (!syncAlways_) wakeSyncerLocked(SteadyClock::now());
  }
  if (syncAlways_) syncNow();
}

void DiskBuffer::forgetMemoryLocked(Entry& e) {
  countLocked(e, -1);
  memoryUsed_ -= std::min(memoryUsed_, e.pb.batch.bytes());
  if (e.pb.frame) e.pb.frame->id.store(UINT64_MAX);  // the entry still waits on its frame
  {
    // Moved out and destroyed: assigning an empty batch would keep the encoding's allocation (a string
    // assigned a short one keeps its capacity), and every forgotten batch would stay in memory.
    const PendingBatch forgotten = std::move(e.pb);
  }
  e.pb = PendingBatch{};
  e.inMemory = false;
  countLocked(e, +1);
}

bool DiskBuffer::spillAgedLocked(SteadyClock::time_point before) {
  bool ok = true;
  for (auto& lane : lanesQueue_) {
    // In the lane's order, up to its last aged batch: a batch sent back to the head is younger than those
    // behind it, yet goes first.
    std::size_t end = 0;
    for (std::size_t i = 0; i < lane.size(); ++i) {
      if (lane[i].inMemory && lane[i].frame == kNoFrame && lane[i].since <= before) end = i + 1;
    }
    for (std::size_t i = 0; i < end && ok; ++i) {
      if (lane[i].inMemory && lane[i].frame == kNoFrame) ok = spillLocked(lane[i]);
    }
    if (!ok) break;
  }
  makeRoomLocked(0);
  return ok;
}

bool DiskBuffer::makeRoomLocked(std::uint64_t bytes) {
  // The copies farthest from being sent go first (the disk has them).
  for (auto& lane : lanesQueue_) {
    for (auto it = lane.rbegin(); it != lane.rend() && memoryUsed_ + bytes > memoryBytes_; ++it) {
      // A split batch's half shares its frame with the other half, in flight: kept.
      if (it->inMemory && it->frame != kNoFrame &&
          (!it->pb.frame || (it->pb.frame.use_count() == 1 && !it->pb.frame->partial.load()))) {
        forgetMemoryLocked(*it);
      }
    }
  }
  return memoryUsed_ + bytes <= memoryBytes_;
}

bool DiskBuffer::evictOldestLocked(std::vector<PendingBatch>& evicted) {
  std::deque<Entry>* oldest = nullptr;
  const auto order = [&](const Entry& e) { return e.frame == kNoFrame ? e.pb.sequence : e.frame; };
  for (auto& lane : lanesQueue_) {
    // On disk before in memory only: a frame id is older than any batch not yet written.
    if (lane.empty()) continue;
    if (oldest == nullptr) {
      oldest = &lane;
      continue;
    }
    const Entry& a = lane.front();
    const Entry& b = oldest->front();
    const bool aDisk = a.frame != kNoFrame;
    const bool bDisk = b.frame != kNoFrame;
    if ((aDisk && !bDisk) || (aDisk == bDisk && order(a) < order(b))) oldest = &lane;
  }
  if (oldest == nullptr) return false;
  Entry e = std::move(oldest->front());
  oldest->pop_front();
  countLocked(e, -1);
  if (e.inMemory) {
    memoryUsed_ -= std::min(memoryUsed_, e.pb.batch.bytes());
    if (e.frame == kNoFrame) {
      memoryOnly_ -= std::min(memoryOnly_, frameEstimate(e.pb));
    } else if (e.pb.frame && e.pb.frame.use_count() == 1) {
      // Finished here, so that its segment's room counts at once; the runner drops and counts the batch.
      e.pb.frame->id.store(UINT64_MAX);
      finishFrameLocked(e.frame);
    }
    // A half of a split batch: its frame stays until the other half, in flight, is done with it. If the
    // agent stops first, the frame is read again whole: this half is then sent, though counted as dropped.
    evicted.push_back(std::move(e.pb));
  } else {
    // Only its count is known without reading it back: null records, for the caller to count.
    PendingBatch placeholder;
    placeholder.batch.records.assign(frames_[e.frame - firstFrame_].records, nullptr);
    finishFrameLocked(e.frame);
    evicted.push_back(std::move(placeholder));
  }
  return true;
}

SinkBuffer::PushResult DiskBuffer::pushLocked(std::unique_lock<std::mutex>& lock, PendingBatch& pb,
                                              std::vector<PendingBatch>& evicted,
                                              const std::function<bool()>* mayDrop) {
  const bool bounded = mayDrop != nullptr;
  const std::uint64_t bytes = pb.batch.bytes();
  const std::uint64_t need = frameEstimate(pb);
  if (bounded && !opened_) {
    // Held for a predecessor that still writes the directory: a memory buffer of max_bytes meanwhile.
    changed_.wait(lock, [&] { return closed_ || opened_ || queued_.batches == 0 || memoryOnly_ + need <= maxBytes_; });
    if (closed_) return SinkBuffer::PushResult::Closed;
  }
  if (bounded && opened_) {
    if (whenFull_ != config::WhenFull::Block) {
      // As in memory: a sink only slow, holding back no one, waits rather than drops. mayDrop() turns true
      // without a notification (a breaker opening, the fan-out starting to wait).
      while (!fitsLocked(need) && !(*mayDrop)()) {
        changed_.wait_for(lock, std::chrono::milliseconds(20));
        if (closed_) return SinkBuffer::PushResult::Closed;
      }
    }
    if (!fitsLocked(need)) {
      switch (whenFull_) {
        case config::WhenFull::Block:
          // Room comes from sends; while the disk refuses, from a write it takes again (tried each second).
          while (!closed_ && !fitsLocked(need)) {
            if (changed_.wait_for(lock, std::chrono::seconds(1)) == std::cv_status::timeout && diskRefusing_) {
              spillAgedLocked(SteadyClock::time_point::max());
            }
          }
          if (closed_) return SinkBuffer::PushResult::Closed;
          break;
        case config::WhenFull::DropNewest:
          return SinkBuffer::PushResult::Dropped;
        case config::WhenFull::DropOldest:
          while (!fitsLocked(need) && evictOldestLocked(evicted)) {
          }
          if (!fitsLocked(need)) return SinkBuffer::PushResult::Dropped;
          break;
      }
    }
    // The memory part: a busy sink holds its batcher back here; one that stopped taking batches lets
    // them age, and the syncer spills them to make room.
    while (!closed_ && !diskRefusing_ && memoryUsed_ > 0 && !makeRoomLocked(bytes)) {
      // With sync: always nothing else spills; with interval the syncer does, a wait later at most.
      if (syncAlways_ && (!spillAgedLocked(SteadyClock::time_point::max()) || makeRoomLocked(bytes))) break;
      changed_.wait_for(lock, syncInterval_ + std::chrono::seconds(1));
    }
    if (closed_) return SinkBuffer::PushResult::Closed;
  }
  Entry e;
  e.inMemory = true;
  e.since = SteadyClock::now();
  pb.lane %= lanes_;
  const std::uint32_t lane = pb.lane;
  e.pb = std::move(pb);
  memoryUsed_ += bytes;
  memoryOnly_ += frameEstimate(e.pb);
  countLocked(e, +1);
  lanesQueue_[lane].push_back(std::move(e));
  if (opened_ && syncAlways_) {
    spillAgedLocked(SteadyClock::time_point::max());  // this one, and any the disk refused before
  } else {
    wakeSyncerLocked(lanesQueue_[lane].back().since + syncInterval_);
  }
  return SinkBuffer::PushResult::Accepted;
}

SinkBuffer::PushResult DiskBuffer::push(PendingBatch& batch, std::vector<PendingBatch>& evicted,
                                        const std::function<bool()>& mayDrop) {
  SinkBuffer::PushResult result;
  {
    std::unique_lock lock(mutex_);
    if (closed_) return SinkBuffer::PushResult::Closed;
    result = pushLocked(lock, batch, evicted, &mayDrop);
  }
  changed_.notify_all();
  if (syncAlways_ && result == SinkBuffer::PushResult::Accepted) syncNow();
  return result;
}

void DiskBuffer::admit(PendingBatch&& batch) {
  {
    std::unique_lock lock(mutex_);
    std::vector<PendingBatch> none;
    pushLocked(lock, batch, none, nullptr);
  }
  changed_.notify_all();
  if (syncAlways_) syncNow();
}

void DiskBuffer::pushFront(PendingBatch&& batch) {
  bool spill = false;
  {
    std::lock_guard lock(mutex_);
    Entry e;
    const std::uint64_t frame = batch.frame ? batch.frame->id.load() : UINT64_MAX;
    e.frame = frame == UINT64_MAX ? kNoFrame : frame;
    e.inMemory = true;
    e.since = SteadyClock::now();
    batch.lane %= lanes_;
    const std::uint32_t lane = batch.lane;
    memoryUsed_ += batch.batch.bytes();
    if (e.frame == kNoFrame) memoryOnly_ += frameEstimate(batch);
    e.pb = std::move(batch);
    countLocked(e, +1);
    lanesQueue_[lane].push_front(std::move(e));
    Entry& front = lanesQueue_[lane].front();
    spill = opened_ && syncAlways_ && front.frame == kNoFrame;
    if (spill) {
      spillLocked(front);
    } else if (front.frame == kNoFrame) {
      wakeSyncerLocked(front.since + syncInterval_);
    }
  }
  changed_.notify_all();
  if (spill) syncNow();
}

int DiskBuffer::loadLocked(Entry& e) {
  const Frame& frame = frames_[e.frame - firstFrame_];
  auto seg = segments_.find(frame.segment);
  if (seg == segments_.end()) {
    noteCorrupt(frame.records, dir_ + ": segment " + std::to_string(frame.segment) + " is gone");
    return -1;
  }
  // One buffer for every read back: a fresh one per batch would be mapped and faulted in each time.
  std::string& data = readBuffer_;
  data.resize(disk::kFrameHeaderBytes + frame.length);
  const int fd = ::open(seg->second.path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) {
      noteCorrupt(frame.records, seg->second.path + ": removed from under the agent");
      return -1;
    }
    noteReadError("open " + seg->second.path, errno);  // out of descriptors, a failing disk: try again
    return 0;
  }
  std::size_t got = 0;
  int error = 0;
  while (got < data.size()) {
    const ssize_t n = ::pread(fd, data.data() + got, data.size() - got, off_t(frame.offset + got));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) error = errno;
    if (n <= 0) break;
    got += std::size_t(n);
  }
  ::close(fd);
  if (error != 0) {
    noteReadError("read " + seg->second.path, error);
    return 0;
  }
  std::unique_ptr<disk::StoredBatch> stored;
  if (got == data.size()) {
    const std::string_view all(data);
    if (disk::frameIntact(all.substr(0, disk::kFrameHeaderBytes), all.substr(disk::kFrameHeaderBytes))) {
      stored = disk::decodePayload(all.substr(disk::kFrameHeaderBytes));
    }
  }
  if (!stored) {
    noteCorrupt(frame.records, seg->second.path);  // cut short or changed under us
    return -1;
  }
  PendingBatch pb;
  // Sized once: grown by doubling, a batch would be copied again at each step.
  pb.batch.encoded.reserve(std::size_t(frame.length) + frame.length / 2 + 1024);
  pb.batch.records.reserve(stored->chunk.records.size());
  pb.batch.ends.reserve(stored->chunk.records.size());
  for (const base::Record& r : stored->chunk.records) {
    sinks::appendRecord(pb.batch.encoded, r, encoding_);
    pb.batch.seal(&r);
  }
  pb.lane = frame.lane;
  pb.sequence = e.frame;
  pb.formedAt = steadyOf(frame.formedNs);
  pb.retained = std::shared_ptr<const disk::StoredBatch>(std::move(stored));
  pb.frame = std::make_shared<DiskFrameHold>(frameRelease_, e.frame);
  e.pb = std::move(pb);
  e.inMemory = true;
  return 1;
}

bool DiskBuffer::pop(std::uint32_t lane, PendingBatch& out, std::chrono::steady_clock::time_point until) {
  std::unique_lock lock(mutex_);
  lane %= lanes_;
  auto& queue = lanesQueue_[lane];
  const auto ready = [&] { return closed_ || woken_[lane] != 0 || !queue.empty(); };
  if (until == SteadyClock::time_point::max()) {
    changed_.wait(lock, ready);
  } else if (!changed_.wait_until(lock, until, ready)) {
    return false;
  }
  while (!queue.empty()) {
    Entry& e = queue.front();
    if (!e.inMemory) {
      countLocked(e, -1);
      const int loaded = loadLocked(e);
      if (loaded < 0) {
        const std::uint64_t id = e.frame;
        queue.pop_front();
        finishFrameLocked(id, /*unreadable=*/true);  // counted, skipped
        continue;
      }
      countLocked(e, +1);
      if (loaded == 0) {
        // The system refused the read: the batch stays at the head; the worker comes back shortly.
        changed_.wait_until(lock, std::min(until, SteadyClock::now() + std::chrono::milliseconds(200)));
        return false;
      }
      memoryUsed_ += e.pb.batch.bytes();
    }
    countLocked(e, -1);
    memoryUsed_ -= std::min(memoryUsed_, e.pb.batch.bytes());
    if (e.frame == kNoFrame) memoryOnly_ -= std::min(memoryOnly_, frameEstimate(e.pb));
    out = std::move(e.pb);
    queue.pop_front();
    lock.unlock();
    changed_.notify_all();  // a blocked push may fit now
    return true;
  }
  woken_[lane] = 0;  // seen; a pop that returns a batch leaves it for the next one
  return false;
}

void DiskBuffer::release(std::uint64_t id) {
  if (shutDown_.load()) return;  // drained: everything left stays on disk for the next open
  {
    std::lock_guard lock(mutex_);
    finishFrameLocked(id);
  }
  changed_.notify_all();
}

void DiskBuffer::finishFrameLocked(std::uint64_t id, bool unreadable) {
  if (id < firstFrame_ || id - firstFrame_ >= frames_.size()) return;
  Frame& frame = frames_[id - firstFrame_];
  if (frame.finished) return;
  frame.finished = true;
  if (const auto held = heldUntilFinished_.find(id); held != heldUntilFinished_.end()) {
    // Claims whose sync failed: released now that the records are done with; abandoned when the frame
    // cannot be read (the checkpoint stays before them, their files are read again after a restart).
    if (!unreadable) {
      for (auto& c : held->second) c.release();
    }
    heldUntilFinished_.erase(held);
  }
  disk_.records -= std::min<std::uint64_t>(disk_.records, frame.records);
  auto seg = segments_.find(frame.segment);
  if (seg != segments_.end()) {
    seg->second.live -= std::min<std::uint64_t>(seg->second.live, 1);
    if (seg->second.live == 0) {
      deleteSegmentLocked(seg);
    } else {
      // Its segment stays: the ledger says this frame is not to be sent again.
      appendLedgerEntry(ledgerPending_, frame.segment, frame.offset);
      if (!dirtySince_) {
        dirtySince_ = true;
        syncDue_ = SteadyClock::now() + syncInterval_;
        wakeSyncerLocked(syncDue_);
      }
    }
  }
  while (!frames_.empty() && frames_.front().finished && !segments_.contains(frames_.front().segment)) {
    frames_.pop_front();
    ++firstFrame_;
  }
}

void DiskBuffer::wake() {
  {
    std::lock_guard lock(mutex_);
    std::fill(woken_.begin(), woken_.end(), 1);
  }
  changed_.notify_all();
}

void DiskBuffer::close() {
  {
    std::lock_guard lock(mutex_);
    closed_ = true;
  }
  changed_.notify_all();
}

std::vector<PendingBatch> DiskBuffer::drain(bool spill) {
  {
    std::lock_guard lock(mutex_);
    syncerStop_ = true;
  }
  syncerWake_.notify_all();
  if (syncer_.joinable()) syncer_.join();
  std::vector<PendingBatch> refused;
  {
    std::lock_guard lock(mutex_);
    // What still waits in memory goes to disk, for the next open; what the disk refuses is the caller's.
    if (opened_ && spill) spillAgedLocked(SteadyClock::time_point::max());
  }
  syncNow();
  std::vector<std::deque<Entry>> lanes;
  {
    std::lock_guard lock(mutex_);
    shutDown_.store(true);
    closed_ = true;
    for (auto& lane : lanesQueue_) {
      for (auto& e : lane) {
        if (e.inMemory && e.frame == kNoFrame) refused.push_back(std::move(e.pb));
      }
    }
    lanes.swap(lanesQueue_);
    lanesQueue_.resize(lanes_);
    queued_ = {};
    memoryUsed_ = 0;
    memoryOnly_ = 0;
    for (auto& [id, seg] : segments_) {
      if (seg.fd >= 0) ::close(seg.fd);
      seg.fd = -1;
    }
    for (int fd : toClose_) ::close(fd);
    toClose_.clear();
    if (ledgerFd_ >= 0) ::close(ledgerFd_);
    ledgerFd_ = -1;
    if (disk_.records > 0) {
      log::event(
          *log::component("sink"), spdlog::level::info, "disk_buffer_closed",
          {{"sink", sink_}, {"records", disk_.records}, {"directory", dir_}, {"hint", "sent after the next start"}});
    }
  }
  changed_.notify_all();
  return refused;  // `lanes` goes here, the frames of its batches left on disk
}

SinkBufferStats DiskBuffer::stats() const {
  std::lock_guard lock(mutex_);
  return queued_;
}

DiskBufferStats DiskBuffer::diskStats() const {
  std::lock_guard lock(mutex_);
  DiskBufferStats s = disk_;
  for (const Frame& f : frames_) {
    if (!f.finished) {
      s.oldest =
          WallClock::time_point(std::chrono::duration_cast<WallClock::duration>(std::chrono::nanoseconds(f.formedNs)));
      break;
    }
  }
  return s;
}

std::optional<std::chrono::steady_clock::time_point> DiskBuffer::oldestFormedAt() const {
  std::lock_guard lock(mutex_);
  std::optional<SteadyClock::time_point> oldest;
  for (const auto& lane : lanesQueue_) {
    if (lane.empty()) continue;
    const Entry& e = lane.front();
    const SteadyClock::time_point t = e.inMemory ? e.pb.formedAt : steadyOf(frames_[e.frame - firstFrame_].formedNs);
    if (!oldest || t < *oldest) oldest = t;
  }
  return oldest;
}

bool DiskBuffer::freshBatchBesides(std::uint32_t lane) const {
  std::lock_guard lock(mutex_);
  for (std::uint32_t i = 0; i < lanesQueue_.size(); ++i) {
    if (i == lane % lanes_ || lanesQueue_[i].empty()) continue;
    const Entry& e = lanesQueue_[i].front();
    if (!e.inMemory || e.pb.rounds == 0) return true;
  }
  return false;
}

void DiskBuffer::noteWriteError(const std::string& what, int error) {
  disk_.writeErrors += 1;
  if (writeErrorLogged_) return;
  writeErrorLogged_ = true;
  log::event(*log::component("sink"), spdlog::level::warn, "disk_buffer_write_failed",
             {{"sink", sink_},
              {"error", error != 0 ? what + ": " + std::strerror(error) : what},
              {"when_full", config::enumName(whenFull_)},
              {"hint",
               "batches wait in memory (holding their files' checkpoints) and when_full applies while the disk "
               "refuses; further errors are counted in logcapture_sink_buffer_write_errors_total"}});
}

void DiskBuffer::noteReadError(const std::string& what, int error) {
  disk_.readErrors += 1;
  if (readErrorLogged_) return;
  readErrorLogged_ = true;
  log::event(*log::component("sink"), spdlog::level::warn, "disk_buffer_read_failed",
             {{"sink", sink_},
              {"error", what + ": " + std::strerror(error)},
              {"hint",
               "the read is tried again (nothing is skipped); check the open-file limit and the disk; further "
               "errors are counted in logcapture_sink_buffer_read_errors_total"}});
}

void DiskBuffer::noteCorrupt(std::uint64_t records, const std::string& where) {
  disk_.corrupt += records;
  if (corruptLogged_) return;
  corruptLogged_ = true;
  log::event(*log::component("sink"), spdlog::level::warn, "disk_buffer_corrupt",
             {{"sink", sink_},
              {"records", records},
              {"where", where},
              {"hint",
               "unreadable batches are skipped; further ones are counted in "
               "logcapture_sink_buffer_corrupt_records_total"}});
}

void DiskBuffer::syncNow() {
  std::lock_guard syncLock(syncMutex_);
  std::vector<int> fds;
  std::vector<int> closing;
  std::vector<std::pair<std::uint64_t, std::vector<Claim>>> claims;
  std::string ledger;
  int ledgerFd = -1;
  {
    std::lock_guard lock(mutex_);
    for (auto& [id, seg] : segments_) {
      if (seg.fd >= 0 && seg.dirty) {
        fds.push_back(seg.fd);
        seg.dirty = false;
      }
    }
    closing.swap(toClose_);
    claims.swap(unsynced_);
    ledger.swap(ledgerPending_);
    ledgerFd = ledgerFd_;
    dirtySince_ = false;
  }
  if (fds.empty() && closing.empty() && claims.empty() && ledger.empty()) return;
  bool ok = true;
  int error = 0;
  std::string failed;
  const auto check = [&](bool done, const char* what) {
    if (done) return;
    ok = false;
    error = errno;
    failed = what;
  };
  for (const int fd : fds) check(::fdatasync(fd) == 0, "fdatasync");
  std::vector<int> stillOpen;
  for (const int fd : closing) {
    if (::fdatasync(fd) != 0 && errno != EINVAL) {
      check(false, "fdatasync");
      stillOpen.push_back(fd);
      continue;
    }
    ::close(fd);
  }
  bool ledgerWritten = true;
  int ledgerError = 0;
  if (!ledger.empty() && ledgerFd >= 0) {
    // A ledger not written only means batches sent again after a restart: kept for the next sync.
    ledgerWritten = base::writeAll(ledgerFd, ledger) && ::fdatasync(ledgerFd) == 0;
    if (!ledgerWritten) ledgerError = errno;
  }
  {
    std::lock_guard lock(mutex_);
    if (ledgerWritten) {
      ledgerEntries_ += ledger.size() / kLedgerEntryBytes;
    } else {
      ledgerPending_.insert(0, ledger);
      noteWriteError("ledger write in " + dir_, ledgerError);
    }
    if (ok) {
      disk_.syncs += 1;
    } else {
      noteWriteError(failed + " in " + dir_, error);
      // Not durable, and never to be trusted: after a failed fdatasync the kernel may have dropped the
      // pages, and a second one would report success. Writes go to a new segment; the claims wait for
      // their batches to be finished (delivered, dead-lettered, dropped), and are abandoned if a frame
      // reads back damaged, so that its records are read from their files again after a restart.
      forceRotate_ = true;
      for (auto& [frame, list] : claims) {
        auto& held = heldUntilFinished_[frame];
        for (auto& c : list) held.push_back(std::move(c));
      }
      for (const int fd : stillOpen) ::close(fd);
    }
  }
  if (!ok) return;
  for (auto& [frame, list] : claims) {
    for (auto& c : list) c.release();
  }
}

void DiskBuffer::wakeSyncerLocked(SteadyClock::time_point due) {
  if (syncAlways_ || due >= syncerAt_) return;
  syncerAt_ = due;
  syncerWake_.notify_one();
}

SteadyClock::time_point DiskBuffer::nextSyncerWorkLocked() const {
  SteadyClock::time_point next = SteadyClock::time_point::max();
  if (dirtySince_ || !unsynced_.empty() || !ledgerPending_.empty() || !toClose_.empty()) next = syncDue_;
  if (memoryOnly_ == 0) return next;
  for (const auto& lane : lanesQueue_) {
    for (const auto& e : lane) {
      if (e.inMemory && e.frame == kNoFrame) next = std::min(next, e.since + syncInterval_);
    }
  }
  // While the disk refuses, a write is tried again each second, not at each batch's age.
  if (diskRefusing_) next = std::max(next, SteadyClock::now() + std::chrono::seconds(1));
  return next;
}

void DiskBuffer::runSyncer() {
  std::unique_lock lock(mutex_);
  while (!syncerStop_) {
    const auto next = nextSyncerWorkLocked();
    const auto now = SteadyClock::now();
    if (next > now) {
      syncerAt_ = next;
      if (next == SteadyClock::time_point::max()) {
        syncerWake_.wait(lock);
      } else {
        syncerWake_.wait_until(lock, next);
      }
      continue;
    }
    syncerAt_ = SteadyClock::time_point::min();  // at work: it looks again before it sleeps
    spillAgedLocked(now - syncInterval_);
    lock.unlock();
    syncNow();
    changed_.notify_all();  // room in memory for a waiting push
    lock.lock();
  }
}

void warnUnclaimedBuffers(const std::string& stateDir, const std::vector<config::SinkConfig>& sinks) {
  std::error_code ec;
  const fs::path root = fs::path(stateDir) / "buffers";
  for (fs::directory_iterator it(root, ec), end; !ec && it != end; it.increment(ec)) {
    if (!it->is_directory(ec)) continue;
    const std::string name = it->path().filename().string();
    const bool claimed = std::any_of(sinks.begin(), sinks.end(), [&](const config::SinkConfig& s) {
      return s.name == name && s.buffer.type == config::BufferType::Disk;
    });
    if (claimed) continue;
    std::uint64_t segments = 0;
    std::uint64_t bytes = 0;
    std::error_code inner;
    for (fs::directory_iterator f(it->path(), inner), fend; !inner && f != fend; f.increment(inner)) {
      if (segmentId(f->path().filename().string()) == 0) continue;
      segments += 1;
      bytes += f->file_size(inner);
    }
    if (segments == 0) continue;
    log::event(*log::component("sink"), spdlog::level::warn, "disk_buffer_unclaimed",
               {{"sink", name},
                {"directory", it->path().string()},
                {"segments", segments},
                {"bytes", bytes},
                {"hint",
                 "no sink with buffer.type: disk has this name; its records stay there until a sink of "
                 "that name takes them, or it is removed by hand"}});
  }
}

}  // namespace logcapture::agent
