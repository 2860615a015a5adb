// When does a file's checkpoint move?
//
// 1. A file input reads a chunk of lines and opens a ticket for it in the file's SourceCursor
//    (agent/inputs/input.cc: pushRecords); the chunk carries the ticket as its Ack.
// 2. The fan-out wraps the chunk in a Delivery (agent/pipeline/delivery.h) and gives each sink routed to its
//    input a Claim on it. A sink's batcher gives each batch that holds some of its records a claim
//    of its own, then releases the sink's.
// 3. A sink's worker releases a batch's claims once every record of it is finished with: delivered,
//    dead-lettered, or dropped by a counted policy (on_open: drop, a full buffer's drop policy, a full
//    or unwritable dead letter, a sink a reload removed). Later also: durably written to a disk buffer.
//    It does so on its own thread, so nothing waits for the batcher.
// 4. The release of a delivery's last claim finishes its Ack, and the cursor commits the end offset of
//    the longest run of finished tickets from the start: a chunk finished early waits for the ones
//    before it, so the offset never passes a record some sink still holds.
// 5. The commit updates the file's entry in the CheckpointStore (agent/inputs/checkpoint/checkpoint.h), which
//    the CheckpointSaver writes to state_dir (atomic rename + fsync) every second and at shutdown.
//
// The queue's drop policies and an input routed to no sink finish a chunk at once, counted.
// What never moves it: a claim or Ack destroyed unreleased (a shutdown deadline, records left unsent,
// an intake abandoned) is abandoned, so those records are read again after a restart (at-least-once).
// A truncated file restarts its cursor (restart()).

#include "agent/pipeline/ack.h"

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
