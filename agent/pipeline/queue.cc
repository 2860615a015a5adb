#include "agent/pipeline/queue.h"

namespace logcapture::agent {

RecordQueue::RecordQueue(const config::QueueConfig& cfg)
    : maxRecords_(cfg.maxRecords), maxBytes_(cfg.maxBytes.value), whenFull_(cfg.whenFull) {}

bool RecordQueue::fits(const Chunk& c) const {
  if (chunks_.empty()) return true;  // an oversized chunk is admitted alone
  return stats_.records + c.records.size() <= maxRecords_ && stats_.bytes + c.bytes <= maxBytes_;
}

RecordQueue::PushResult RecordQueue::push(Chunk&& chunk, const std::atomic<bool>* abandon) {
  std::vector<Chunk> evicted;  // finished outside the lock: finishing may write a checkpoint
  {
    std::unique_lock lock(mutex_);
    if (closed_) return PushResult::Closed;
    if (!fits(chunk)) {
      switch (whenFull_) {
        case config::WhenFull::Block:
          ++stats_.blockedPushes;
          waitingProducers_.fetch_add(1, std::memory_order_relaxed);
          notFull_.wait(lock, [&] { return closed_ || fits(chunk) || (abandon && abandon->load()); });
          waitingProducers_.fetch_sub(1, std::memory_order_relaxed);
          if (closed_ || !fits(chunk)) return PushResult::Closed;
          break;
        case config::WhenFull::DropNewest:
          stats_.droppedNewest += chunk.records.size();
          lock.unlock();
          chunk.ack.finish();
          return PushResult::Dropped;
        case config::WhenFull::DropOldest:
          while (!fits(chunk)) {
            Chunk& oldest = chunks_.front();
            stats_.droppedOldest += oldest.records.size();
            stats_.records -= oldest.records.size();
            stats_.bytes -= oldest.bytes;
            evicted.push_back(std::move(oldest));
            chunks_.pop_front();
          }
          break;
      }
    }
    stats_.records += chunk.records.size();
    stats_.bytes += chunk.bytes;
    chunks_.push_back(std::move(chunk));
  }
  notEmpty_.notify_one();
  for (auto& c : evicted) c.ack.finish();
  return PushResult::Accepted;
}

void RecordQueue::wakeProducers() {
  // Under the lock: a producer between its look at `abandon` and its wait cannot miss this.
  { std::lock_guard lock(mutex_); }
  notFull_.notify_all();
}

bool RecordQueue::pop(Chunk& out, std::chrono::milliseconds timeout) {
  {
    std::unique_lock lock(mutex_);
    if (!notEmpty_.wait_for(lock, timeout, [&] { return closed_ || !chunks_.empty(); })) return false;
    if (chunks_.empty()) return false;
    take(out);
  }
  notFull_.notify_all();
  return true;
}

bool RecordQueue::pop(Chunk& out) {
  {
    std::unique_lock lock(mutex_);
    notEmpty_.wait(lock, [&] { return closed_ || consumerWoken_ || !chunks_.empty(); });
    if (chunks_.empty()) {
      consumerWoken_ = false;  // seen; a pop that returns a chunk leaves it for the next one
      return false;
    }
    take(out);
  }
  notFull_.notify_all();
  return true;
}

void RecordQueue::take(Chunk& out) {
  out = std::move(chunks_.front());
  chunks_.pop_front();
  stats_.records -= out.records.size();
  stats_.bytes -= out.bytes;
}

void RecordQueue::wakeConsumer() {
  {
    std::lock_guard lock(mutex_);
    consumerWoken_ = true;
  }
  notEmpty_.notify_all();
}

void RecordQueue::close() {
  {
    std::lock_guard lock(mutex_);
    closed_ = true;
  }
  notEmpty_.notify_all();
  notFull_.notify_all();
}

QueueStats RecordQueue::stats() const {
  std::lock_guard lock(mutex_);
  return stats_;
}

}  // namespace logcapture::agent
