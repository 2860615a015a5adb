#include "agent/input.h"

#include <sys/eventfd.h>
#include <unistd.h>

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

Wakeup::Wakeup() : fd_(eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) {}

Wakeup::~Wakeup() {
  if (fd_ >= 0) ::close(fd_);
}

void Wakeup::signal() const {
  const std::uint64_t one = 1;
  [[maybe_unused]] auto n = ::write(fd_, &one, sizeof one);
}

void Wakeup::clear() const {
  std::uint64_t value = 0;
  [[maybe_unused]] auto n = ::read(fd_, &value, sizeof value);
}

}  // namespace logcapture::agent
