#include "agent/ack.h"

namespace logcapture::agent {

SourceCursor::SourceCursor(std::uint64_t start, Commit commit) : committed_(start), commit_(std::move(commit)) {}

std::uint64_t SourceCursor::open(std::uint64_t endOffset) {
  std::lock_guard lock(mutex_);
  pending_.push_back({endOffset, false});
  return firstTicket_ + pending_.size() - 1;
}

void SourceCursor::finish(std::uint64_t ticket) {
  std::lock_guard commitLock(commitMutex_);
  std::uint64_t offset = 0;
  bool advanced = false;
  {
    std::lock_guard lock(mutex_);
    if (ticket < firstTicket_ || ticket - firstTicket_ >= pending_.size()) return;
    pending_[ticket - firstTicket_].finished = true;
    while (!pending_.empty() && pending_.front().finished) {
      committed_ = pending_.front().endOffset;
      pending_.pop_front();
      ++firstTicket_;
      advanced = true;
    }
    offset = committed_;
  }
  if (advanced && commit_) commit_(offset);
}

void SourceCursor::restart(std::uint64_t offset) {
  std::lock_guard commitLock(commitMutex_);
  {
    std::lock_guard lock(mutex_);
    // Open tickets refer to the old content; finishing them must not move the offset past `offset`.
    for (auto& p : pending_) p.endOffset = offset;
    committed_ = offset;
  }
  if (commit_) commit_(offset);
}

std::uint64_t SourceCursor::committed() const {
  std::lock_guard lock(mutex_);
  return committed_;
}

bool SourceCursor::idle() const {
  // After a commit in flight: idle means the checkpoint store has the offset too, so a file closed
  // once its cursor is idle and opened again resumes past everything it read.
  std::lock_guard commitLock(commitMutex_);
  std::lock_guard lock(mutex_);
  return pending_.empty();
}

}  // namespace logcapture::agent
