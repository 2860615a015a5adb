#include "agent/runner/sink_buffer.h"

#include <algorithm>

#include "agent/runner/disk_buffer.h"

namespace logcapture::agent {

SinkBuffer::SinkBuffer(std::uint32_t lanes, std::uint64_t maxBytes, config::WhenFull whenFull,
                       std::unique_ptr<DiskBuffer> disk)
    : maxBytes_(maxBytes),
      whenFull_(whenFull),
      lanes_(std::max<std::uint32_t>(lanes, 1)),
      woken_(lanes_.size(), 0),
      laneReady_(std::make_unique<std::condition_variable[]>(lanes_.size())),
      disk_(std::move(disk)) {}

SinkBuffer::SinkBuffer(std::uint32_t lanes, std::uint64_t maxBytes, config::WhenFull whenFull)
    : SinkBuffer(lanes, maxBytes, whenFull, nullptr) {}

SinkBuffer::~SinkBuffer() = default;

void SinkBuffer::notifyAll() {
  room_.notify_all();
  for (std::size_t i = 0; i < lanes_.size(); ++i) laneReady_[i].notify_all();
}

std::uint64_t SinkBuffer::openDisk() {
  if (!disk_) return 0;
  disk_->open();
  return disk_->diskStats().replayed;
}

std::optional<DiskBufferStats> SinkBuffer::diskStats() const {
  if (!disk_) return std::nullopt;
  return disk_->diskStats();
}

void SinkBuffer::secureOnDisk(PendingBatch& batch) { disk_->secure(batch); }

void SinkBuffer::add(PendingBatch&& b, bool front) {
  stats_.batches += 1;
  stats_.records += b.batch.size();
  stats_.bytes += heldBytes(b);
  auto& lane = lanes_[laneOf(b)];
  if (front) {
    lane.push_front(std::move(b));
  } else {
    lane.push_back(std::move(b));
  }
}

PendingBatch SinkBuffer::takeFront(std::uint32_t lane) {
  PendingBatch b = std::move(lanes_[lane].front());
  lanes_[lane].pop_front();
  stats_.batches -= 1;
  stats_.records -= b.batch.size();
  stats_.bytes -= heldBytes(b);
  return b;
}

SinkBuffer::PushResult SinkBuffer::push(PendingBatch& batch, std::vector<PendingBatch>& evicted,
                                        const std::function<bool()>& mayDrop) {
  if (disk_) [[unlikely]]
    return disk_->push(batch, evicted, mayDrop);
  const std::uint32_t lane = laneOf(batch);
  const std::uint64_t held = heldBytes(batch);
  std::unique_lock lock(mutex_);
  auto fits = [&] { return stats_.batches == 0 || stats_.bytes + held <= maxBytes_; };
  if (closed_) return PushResult::Closed;
  if (whenFull_ != config::WhenFull::Block) {
    // mayDrop() turns true without a notification (a breaker opening, the fan-out starting to wait).
    while (!fits() && !mayDrop()) {
      room_.wait_for(lock, std::chrono::milliseconds(20));
      if (closed_) return PushResult::Closed;
    }
  }
  if (!fits()) {
    switch (whenFull_) {
      case config::WhenFull::Block:
        blockedPush_ = BlockedPush{held, lane};
        room_.wait(lock, [&] { return closed_ || fits(); });
        blockedPush_.reset();
        if (closed_) return PushResult::Closed;
        break;
      case config::WhenFull::DropNewest:
        return PushResult::Dropped;
      case config::WhenFull::DropOldest:
        while (!fits()) {
          std::uint32_t oldest = 0;
          std::uint64_t best = UINT64_MAX;
          for (std::uint32_t i = 0; i < lanes_.size(); ++i) {
            if (!lanes_[i].empty() && lanes_[i].front().sequence < best) {
              best = lanes_[i].front().sequence;
              oldest = i;
            }
          }
          evicted.push_back(takeFront(oldest));
        }
        break;
    }
  }
  add(std::move(batch), false);
  lock.unlock();
  laneReady_[lane].notify_all();
  return PushResult::Accepted;
}

void SinkBuffer::pushFront(PendingBatch&& batch) {
  if (disk_) [[unlikely]]
    return disk_->pushFront(std::move(batch));
  const std::uint32_t lane = laneOf(batch);
  {
    std::lock_guard lock(mutex_);
    add(std::move(batch), true);
  }
  laneReady_[lane].notify_all();
}

void SinkBuffer::admit(PendingBatch&& batch) {
  if (disk_) [[unlikely]]
    return disk_->admit(std::move(batch));
  const std::uint32_t lane = laneOf(batch);
  {
    std::lock_guard lock(mutex_);
    add(std::move(batch), false);
  }
  laneReady_[lane].notify_all();
}

bool SinkBuffer::pop(std::uint32_t lane, PendingBatch& out, std::chrono::steady_clock::time_point until) {
  if (disk_) [[unlikely]]
    return disk_->pop(lane, out, until);
  std::unique_lock lock(mutex_);
  lane %= lanes_.size();
  const auto ready = [&] { return closed_ || woken_[lane] != 0 || !lanes_[lane].empty(); };
  if (until == std::chrono::steady_clock::time_point::max()) {
    laneReady_[lane].wait(lock, ready);
  } else if (!laneReady_[lane].wait_until(lock, until, ready)) {
    return false;
  }
  if (lanes_[lane].empty()) {
    woken_[lane] = 0;  // seen; a pop that returns a batch leaves it for the next one
    return false;
  }
  out = takeFront(lane);
  // A push blocked on a full buffer is told once a quarter of it is free, not at every batch taken: woken
  // per batch, the batcher formed one batch per wake-up and the two threads took turns sleeping. Told as
  // soon as it fits when its lane is empty: that lane's worker is idle meanwhile.
  bool tell = stats_.batches == 0 || stats_.bytes <= maxBytes_ - maxBytes_ / 4;
  if (!tell && blockedPush_ && lanes_[blockedPush_->lane].empty()) {
    tell = stats_.bytes + blockedPush_->bytes <= maxBytes_;
  }
  lock.unlock();
  if (tell) room_.notify_all();
  return true;
}

void SinkBuffer::wake() {
  if (disk_) [[unlikely]] {
    disk_->wake();
    return;
  }
  {
    std::lock_guard lock(mutex_);
    std::fill(woken_.begin(), woken_.end(), 1);
  }
  notifyAll();
}

void SinkBuffer::close() {
  if (disk_) [[unlikely]]
    return disk_->close();
  {
    std::lock_guard lock(mutex_);
    closed_ = true;
  }
  notifyAll();
}

std::vector<PendingBatch> SinkBuffer::drain(bool keepOnDisk) {
  if (disk_) [[unlikely]]
    return disk_->drain(keepOnDisk);
  std::vector<PendingBatch> out;
  {
    std::lock_guard lock(mutex_);
    for (std::uint32_t i = 0; i < lanes_.size(); ++i) {
      while (!lanes_[i].empty()) out.push_back(takeFront(i));
    }
  }
  notifyAll();
  return out;
}

SinkBufferStats SinkBuffer::stats() const {
  if (disk_) [[unlikely]]
    return disk_->stats();
  std::lock_guard lock(mutex_);
  return stats_;
}

std::optional<std::chrono::steady_clock::time_point> SinkBuffer::oldestFormedAt() const {
  if (disk_) [[unlikely]]
    return disk_->oldestFormedAt();
  std::lock_guard lock(mutex_);
  std::optional<std::chrono::steady_clock::time_point> oldest;
  // A lane is in order of formation, so its head is its oldest batch.
  for (const auto& lane : lanes_) {
    if (!lane.empty() && (!oldest || lane.front().formedAt < *oldest)) oldest = lane.front().formedAt;
  }
  return oldest;
}

bool SinkBuffer::freshBatchBesides(std::uint32_t lane) const {
  if (disk_) [[unlikely]]
    return disk_->freshBatchBesides(lane);
  std::lock_guard lock(mutex_);
  for (std::uint32_t i = 0; i < lanes_.size(); ++i) {
    if (i != lane % lanes_.size() && !lanes_[i].empty() && lanes_[i].front().rounds == 0) return true;
  }
  return false;
}

}  // namespace logcapture::agent
