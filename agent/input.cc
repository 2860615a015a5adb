#include "agent/input.h"

#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>

namespace logcapture::agent {

RecordQueue::PushResult pushRecords(RecordQueue& queue, InputStats& stats, Chunk&& chunk,
                                    const std::shared_ptr<SourceCursor>& cursor) {
  if (chunk.records.empty()) return RecordQueue::PushResult::Accepted;
  chunk.bytes = 0;
  for (const auto& r : chunk.records) chunk.bytes += r.message.size();
  const std::size_t count = chunk.records.size();
  if (cursor) chunk.ack = Ack(cursor, cursor->open(chunk.records.back().offset));
  stats.records.fetch_add(count, std::memory_order_relaxed);
  const auto result = queue.push(std::move(chunk));
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
  if (fd_ < 0) return;
  const std::uint64_t one = 1;
  // EAGAIN: the counter is full, so the thread is woken already. Nothing else can fail on a valid eventfd.
  if (::write(fd_, &one, sizeof one) < 0 && errno != EAGAIN) return;
}

void Wakeup::clear() const {
  if (fd_ < 0) return;
  std::uint64_t value = 0;
  // EAGAIN: another read took the count already; nothing else can fail on a valid eventfd.
  if (::read(fd_, &value, sizeof value) < 0 && errno != EAGAIN) return;
}

}  // namespace logcapture::agent
