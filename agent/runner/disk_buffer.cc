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
#include "agent/runner/sink_runner.h"
#include "base/log.h"
#include "sinks/encoding.h"

namespace logcapture::agent {

// The frame a batch in memory comes from; the last batch to drop it finishes the frame.
struct DiskFrameHold {
  DiskBuffer* buffer = nullptr;
  std::atomic<std::uint64_t> id{UINT64_MAX};  // UINT64_MAX: disarmed (the frame was finished otherwise)
  DiskFrameHold(DiskBuffer* b, std::uint64_t frame) : buffer(b), id(frame) {}
  ~DiskFrameHold() {
    const std::uint64_t frame = id.load();
    if (frame != UINT64_MAX) buffer->release(frame);
  }
};

namespace {

namespace fs = std::filesystem;
using SteadyClock = std::chrono::steady_clock;
using WallClock = std::chrono::system_clock;

constexpr std::uint64_t kMiB = std::uint64_t{1024} * 1024;

std::int64_t wallNanos(WallClock::time_point t) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
}

// When a batch formed at Unix ns `formed` was formed, on the steady clock (for its age).
SteadyClock::time_point steadyOf(std::int64_t formed) {
  const auto age =
      WallClock::now() -
      WallClock::time_point(std::chrono::duration_cast<WallClock::duration>(std::chrono::nanoseconds(formed)));
  return SteadyClock::now() - std::chrono::duration_cast<SteadyClock::duration>(age);
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

bool writeAll(int fd, const char* p, std::size_t n, int& error) {
  while (n > 0) {
    const ssize_t w = ::write(fd, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      error = errno;
      return false;
    }
    p += w;
    n -= std::size_t(w);
  }
  return true;
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
      // A few batches per lane stay in memory as formed, so a healthy sink never reads the disk back.
      memoryBytes_(std::min<std::uint64_t>(
          cfg.buffer.maxBytes.value,
          std::uint64_t(4) * std::max<std::uint32_t>(cfg.workers, 1) * cfg.batch.maxBytes.value)),
      whenFull_(cfg.buffer.whenFull),
      syncAlways_(cfg.buffer.sync == config::BufferSync::Always),
      syncInterval_(cfg.buffer.syncInterval),
      lanes_(std::max<std::uint32_t>(cfg.workers, 1)),
      lanesQueue_(lanes_) {}

DiskBuffer::~DiskBuffer() {
  if (!shutDown_.load()) drain();
}

void DiskBuffer::open() {
  {
    std::unique_lock lock(mutex_);
    if (opened_) return;
    opened_ = true;
    replayLocked();
    std::vector<PendingBatch> early = std::move(early_);
    early_.clear();
    for (auto& pb : early) {
      std::vector<PendingBatch> none;
      pushLocked(lock, pb, none, nullptr);
    }
  }
  changed_.notify_all();
  syncNow();
  if (!syncAlways_) {
    syncer_ = std::thread([this] { log::guardThread("sink", [this] { runSyncer(); }); });
  }
}

void DiskBuffer::replayLocked() {
  std::error_code ec;
  fs::create_directories(dir_, ec);
  std::vector<std::pair<std::uint64_t, std::string>> files;
  for (fs::directory_iterator it(dir_, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (const std::uint64_t id = segmentId(name); id != 0) files.emplace_back(id, it->path().string());
  }
  if (ec) noteWriteError("list " + dir_, ec.value());
  std::sort(files.begin(), files.end());
  std::uint64_t replayedSegments = 0;
  for (const auto& [id, path] : files) {
    nextSegment_ = std::max(nextSegment_, id + 1);
    disk::SegmentScan scan = disk::scanSegment(path);
    if (!scan.opened) {
      noteCorrupt(1, path + ": " + scan.error);
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
    if (scan.frames.empty()) {
      if (::unlink(path.c_str()) != 0) noteWriteError("unlink " + path, errno);
      continue;
    }
    Segment seg;
    seg.path = path;
    seg.size = scan.size;
    seg.live = scan.frames.size();
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
      frames_.push_back(frame);
      const std::uint64_t frameId = firstFrame_ + frames_.size() - 1;
      lanesQueue_[frame.lane].push_back(Entry{frameId, false, {}});
      queued_.batches += 1;
      queued_.records += frame.records;
      queued_.bytes += frame.length;
      disk_.records += frame.records;
      disk_.replayed += frame.records;
    }
  }
  if (disk_.replayed > 0) {
    log::event(*log::component("sink"), spdlog::level::info, "disk_buffer_replayed",
               {{"sink", sink_}, {"records", disk_.replayed}, {"segments", replayedSegments}, {"directory", dir_}});
  }
}

bool DiskBuffer::fitsLocked(std::uint64_t bytes) const {
  return disk_.records == 0 || disk_.bytes + bytes <= maxBytes_;
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
  int error = 0;
  if (!writeAll(fd, disk::kSegmentMagic.data(), disk::kSegmentMagic.size(), error)) {
    ::close(fd);
    ::unlink(path.c_str());
    noteWriteError("write " + path, error);
    return false;
  }
  // The new file's name must survive a power loss as well as its bytes.
  const int dirFd = ::open(dir_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dirFd < 0 || ::fsync(dirFd) != 0) noteWriteError("sync " + dir_, errno);
  if (dirFd >= 0) ::close(dirFd);
  if (!segments_.empty()) {
    auto last = std::prev(segments_.end());
    if (last->second.fd >= 0) {
      toClose_.push_back(last->second.fd);  // synced, then closed, by the next sync
      last->second.fd = -1;
    }
    if (last->second.live == 0) deleteSegmentLocked(last);
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
  int error = 0;
  if (!writeAll(seg.fd, scratch_.data(), bytes, error)) {
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

void DiskBuffer::acceptLocked(PendingBatch& pb, std::uint64_t id) {
  const Frame& frame = frames_[id - firstFrame_];
  // The claims are released once the frame is synced; until then, and while the batch waits in memory,
  // their records stay alive.
  auto kept = std::make_shared<std::vector<DeliveryRef>>();
  kept->reserve(pb.claims.size());
  for (const auto& c : pb.claims) kept->push_back(c.share());
  if (!pb.claims.empty()) unsynced_.push_back(std::move(pb.claims));
  pb.claims.clear();
  Entry e;
  e.frame = id;
  if (memoryUsed_ + pb.batch.bytes() <= memoryBytes_) {
    // Kept as formed: a sink that keeps up never reads its batches back.
    pb.retained = std::move(kept);
    pb.frame = std::make_shared<DiskFrameHold>(this, id);
    pb.sequence = id;
    pb.lane = frame.lane;
    memoryUsed_ += pb.batch.bytes();
    e.inMemory = true;
    e.pb = std::move(pb);
  }
  countLocked(e, +1);
  lanesQueue_[frame.lane].push_back(std::move(e));
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

bool DiskBuffer::evictOldestLocked(std::vector<PendingBatch>& evicted) {
  std::deque<Entry>* oldest = nullptr;
  for (auto& lane : lanesQueue_) {
    if (!lane.empty() && (oldest == nullptr || lane.front().frame < oldest->front().frame)) oldest = &lane;
  }
  if (oldest == nullptr) return false;
  Entry e = std::move(oldest->front());
  oldest->pop_front();
  countLocked(e, -1);
  if (e.inMemory) {
    memoryUsed_ -= std::min(memoryUsed_, e.pb.batch.bytes());
    // Finished here, so that its segment's room counts at once; the runner drops and counts the batch.
    if (e.pb.frame) e.pb.frame->id.store(UINT64_MAX);
    finishFrameLocked(e.frame);
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
  if (!opened_) {
    early_.push_back(std::move(pb));
    return SinkBuffer::PushResult::Accepted;
  }
  scratch_.clear();
  const auto formed =
      WallClock::now() - std::chrono::duration_cast<WallClock::duration>(SteadyClock::now() - pb.formedAt);
  disk::appendFrame(scratch_, pb.batch.records, formed);
  const std::uint64_t bytes = scratch_.size();
  if (bounded && whenFull_ != config::WhenFull::Block) {
    // As in memory: a sink only slow, holding back no one, waits rather than drops. mayDrop() turns true
    // without a notification (a breaker opening, the fan-out starting to wait).
    while (!fitsLocked(bytes) && !(*mayDrop)()) {
      changed_.wait_for(lock, std::chrono::milliseconds(20));
      if (closed_) return SinkBuffer::PushResult::Closed;
    }
  }
  if (bounded && !fitsLocked(bytes)) {
    switch (whenFull_) {
      case config::WhenFull::Block:
        changed_.wait(lock, [&] { return closed_ || fitsLocked(bytes); });
        if (closed_) return SinkBuffer::PushResult::Closed;
        break;
      case config::WhenFull::DropNewest:
        return SinkBuffer::PushResult::Dropped;
      case config::WhenFull::DropOldest:
        while (!fitsLocked(bytes) && evictOldestLocked(evicted)) {
        }
        if (!fitsLocked(bytes) && !segments_.empty() && std::prev(segments_.end())->second.live == 0) {
          forceRotate_ = true;  // the active segment holds only finished batches: start anew and delete it
        }
        if (!fitsLocked(bytes) && !forceRotate_) return SinkBuffer::PushResult::Dropped;
        break;
    }
  }
  std::uint64_t id = 0;
  while (!writeLocked(static_cast<std::uint32_t>(pb.batch.size()), pb.lane, wallNanos(formed), id)) {
    if (!bounded) return SinkBuffer::PushResult::Closed;  // left unfinished: read again after a restart
    switch (whenFull_) {
      case config::WhenFull::Block:
        // The disk refuses (full, read-only, gone): wait for room or for an operator, and try again.
        changed_.wait_for(lock, std::chrono::seconds(1));
        if (closed_) return SinkBuffer::PushResult::Closed;
        break;
      case config::WhenFull::DropNewest:
        return SinkBuffer::PushResult::Dropped;
      case config::WhenFull::DropOldest:
        if (!evictOldestLocked(evicted)) return SinkBuffer::PushResult::Dropped;
        break;
    }
  }
  acceptLocked(pb, id);
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
  SinkBuffer::PushResult result;
  {
    std::unique_lock lock(mutex_);
    std::vector<PendingBatch> none;
    result = pushLocked(lock, batch, none, nullptr);
  }
  changed_.notify_all();
  if (syncAlways_ && result == SinkBuffer::PushResult::Accepted) syncNow();
}

void DiskBuffer::pushFront(PendingBatch&& batch) {
  {
    std::lock_guard lock(mutex_);
    Entry e;
    // UINT64_MAX: its frame was finished under it (drop_oldest); it waits in memory only.
    e.frame = batch.frame ? batch.frame->id.load() : UINT64_MAX;
    const std::uint32_t lane = batch.lane % lanes_;
    memoryUsed_ += batch.batch.bytes();
    e.inMemory = true;
    e.pb = std::move(batch);
    countLocked(e, +1);
    lanesQueue_[lane].push_front(std::move(e));
  }
  changed_.notify_all();
}

bool DiskBuffer::loadLocked(Entry& e) {
  const Frame& frame = frames_[e.frame - firstFrame_];
  auto seg = segments_.find(frame.segment);
  std::string where = seg == segments_.end() ? dir_ : seg->second.path;
  // One buffer for every read back: a fresh one per batch would be mapped and faulted in each time.
  std::string& data = readBuffer_;
  data.resize(disk::kFrameHeaderBytes + frame.length);
  bool read = false;
  if (seg != segments_.end()) {
    const int fd = ::open(seg->second.path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
      std::size_t got = 0;
      while (got < data.size()) {
        const ssize_t n = ::pread(fd, data.data() + got, data.size() - got, off_t(frame.offset + got));
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        got += std::size_t(n);
      }
      read = got == data.size();
      ::close(fd);
    }
  }
  std::unique_ptr<disk::StoredBatch> stored;
  if (read) {
    const std::string_view all(data);
    if (disk::frameIntact(all.substr(0, disk::kFrameHeaderBytes), all.substr(disk::kFrameHeaderBytes))) {
      stored = disk::decodePayload(all.substr(disk::kFrameHeaderBytes));
    }
  }
  if (!stored) {
    noteCorrupt(1, where);
    return false;
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
  pb.frame = std::make_shared<DiskFrameHold>(this, e.frame);
  e.pb = std::move(pb);
  e.inMemory = true;
  return true;
}

bool DiskBuffer::pop(std::uint32_t lane, PendingBatch& out, std::chrono::steady_clock::time_point until) {
  std::unique_lock lock(mutex_);
  lane %= lanes_;
  auto& queue = lanesQueue_[lane];
  if (!changed_.wait_until(lock, until, [&] { return closed_ || !queue.empty(); })) return false;
  while (!queue.empty()) {
    Entry& e = queue.front();
    countLocked(e, -1);
    const bool wasInMemory = e.inMemory;
    const bool loaded = e.inMemory || loadLocked(e);
    if (!loaded) {
      const std::uint64_t id = e.frame;
      queue.pop_front();
      finishFrameLocked(id);  // unreadable: counted, skipped
      continue;
    }
    if (wasInMemory) memoryUsed_ -= std::min(memoryUsed_, e.pb.batch.bytes());
    PendingBatch taken = std::move(e.pb);
    queue.pop_front();
    lock.unlock();
    changed_.notify_all();
    out = std::move(taken);
    return true;
  }
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

void DiskBuffer::finishFrameLocked(std::uint64_t id) {
  if (id < firstFrame_ || id - firstFrame_ >= frames_.size()) return;
  Frame& frame = frames_[id - firstFrame_];
  if (frame.finished) return;
  frame.finished = true;
  disk_.records -= std::min<std::uint64_t>(disk_.records, frame.records);
  auto seg = segments_.find(frame.segment);
  if (seg != segments_.end()) {
    seg->second.live -= std::min<std::uint64_t>(seg->second.live, 1);
    // The active segment goes when it is replaced; any other as soon as all of it is finished.
    if (seg->second.live == 0 && std::next(seg) != segments_.end()) deleteSegmentLocked(seg);
  }
  while (!frames_.empty() && frames_.front().finished) {
    frames_.pop_front();
    ++firstFrame_;
  }
}

void DiskBuffer::wake() { changed_.notify_all(); }

void DiskBuffer::close() {
  {
    std::lock_guard lock(mutex_);
    closed_ = true;
  }
  changed_.notify_all();
}

std::vector<PendingBatch> DiskBuffer::drain() {
  if (syncer_.joinable()) {
    {
      std::lock_guard lock(syncerMutex_);
      syncerStop_ = true;
    }
    syncerWake_.notify_all();
    syncer_.join();
  }
  syncNow();
  std::vector<PendingBatch> early;
  std::vector<std::deque<Entry>> lanes;
  {
    std::lock_guard lock(mutex_);
    shutDown_.store(true);
    closed_ = true;
    early.swap(early_);  // never opened: not on disk, the caller's to leave unfinished
    lanes.swap(lanesQueue_);
    lanesQueue_.resize(lanes_);
    for (auto& [id, seg] : segments_) {
      if (seg.fd >= 0) ::close(seg.fd);
      seg.fd = -1;
    }
    for (int fd : toClose_) ::close(fd);
    toClose_.clear();
    const std::uint64_t left = disk_.records;
    if (left > 0) {
      log::event(*log::component("sink"), spdlog::level::info, "disk_buffer_closed",
                 {{"sink", sink_}, {"records", left}, {"directory", dir_}, {"hint", "sent after the next start"}});
    }
  }
  changed_.notify_all();
  return early;  // `lanes` goes here, its batches' frames left on disk
}

SinkBufferStats DiskBuffer::stats() const {
  std::lock_guard lock(mutex_);
  return queued_;
}

DiskBufferStats DiskBuffer::diskStats() const {
  std::lock_guard lock(mutex_);
  DiskBufferStats s = disk_;
  if (!frames_.empty()) {
    s.oldest = WallClock::time_point(
        std::chrono::duration_cast<WallClock::duration>(std::chrono::nanoseconds(frames_.front().formedNs)));
  }
  return s;
}

std::optional<std::chrono::steady_clock::time_point> DiskBuffer::oldestFormedAt() const {
  std::lock_guard lock(mutex_);
  std::optional<SteadyClock::time_point> oldest;
  for (const auto& lane : lanesQueue_) {
    if (lane.empty()) continue;
    const Entry& e = lane.front();
    SteadyClock::time_point t;
    if (e.inMemory) {
      t = e.pb.formedAt;
    } else {
      t = steadyOf(frames_[e.frame - firstFrame_].formedNs);
    }
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
              {"error", what + ": " + std::strerror(error)},
              {"when_full", config::enumName(whenFull_)},
              {"hint",
               "when_full applies while the disk refuses; further errors are counted in "
               "logcapture_sink_buffer_write_errors_total"}});
}

void DiskBuffer::noteCorrupt(std::uint64_t frames, const std::string& where) {
  disk_.corrupt += frames;
  if (corruptLogged_) return;
  corruptLogged_ = true;
  log::event(*log::component("sink"), spdlog::level::warn, "disk_buffer_corrupt",
             {{"sink", sink_},
              {"frames", frames},
              {"where", where},
              {"hint",
               "unreadable batches are skipped; further ones are counted in "
               "logcapture_sink_buffer_corrupt_records_total"}});
}

void DiskBuffer::syncNow() {
  std::lock_guard syncLock(syncMutex_);
  std::vector<int> fds;
  std::vector<int> closing;
  std::vector<std::vector<Claim>> claims;
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
  }
  if (fds.empty() && closing.empty() && claims.empty()) return;
  bool ok = true;
  int error = 0;
  for (const int fd : fds) {
    if (::fdatasync(fd) != 0) {
      ok = false;
      error = errno;
    }
  }
  for (const int fd : closing) {
    if (::fdatasync(fd) != 0 && errno != EINVAL) {
      ok = false;
      error = errno;
    }
    ::close(fd);
  }
  {
    std::lock_guard lock(mutex_);
    if (ok) {
      disk_.syncs += 1;
    } else {
      noteWriteError("fdatasync in " + dir_, error);
    }
  }
  // Not durable: left unfinished, so their records are read again after a restart.
  if (!ok) return;
  for (auto& list : claims) {
    for (auto& c : list) c.release();
  }
}

void DiskBuffer::runSyncer() {
  while (true) {
    {
      std::unique_lock lock(syncerMutex_);
      if (syncerWake_.wait_for(lock, syncInterval_, [&] { return syncerStop_; })) return;
    }
    syncNow();
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
