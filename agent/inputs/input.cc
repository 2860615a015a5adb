#include "agent/inputs/input.h"

#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>

namespace logcapture::agent {

RecordQueue::PushResult pushRecords(RecordQueue& queue, InputStats& stats, Chunk&& chunk,
                                    const std::shared_ptr<SourceCursor>& cursor, const std::atomic<bool>* abandon) {
  if (chunk.records.empty()) return RecordQueue::PushResult::Accepted;
  chunk.bytes = 0;
  for (const auto& r : chunk.records) chunk.bytes += r.message.size();
  const std::size_t count = chunk.records.size();
  if (cursor) chunk.ack = Ack(cursor, cursor->open(chunk.records.back().offset));
  stats.records.fetch_add(count, std::memory_order_relaxed);
  const auto result = queue.push(std::move(chunk), abandon);
  if (result == RecordQueue::PushResult::Dropped) stats.queueDropped.fetch_add(count, std::memory_order_relaxed);
  return result;
}

Wakeup::Wakeup() : fd_(eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) {
  if (fd_ < 0) error_ = errno;
}

Wakeup::~Wakeup() {
  if (fd_ >= 0) ::close(fd_);
}

void Wakeup::signal() const {
  if (fd_ < 0) return;  // the thread sees the stop at its next poll timeout
  const std::uint64_t one = 1;
  // On a valid eventfd an 8-byte write fails only with EAGAIN: the counter is full, the thread woken already.
  [[maybe_unused]] const auto n = ::write(fd_, &one, sizeof one);
}

void Wakeup::clear() const {
  if (fd_ < 0) return;
  std::uint64_t value = 0;
  // On a valid eventfd an 8-byte read fails only with EAGAIN: the count was taken already.
  [[maybe_unused]] const auto n = ::read(fd_, &value, sizeof value);
}

}  // namespace logcapture::agent
