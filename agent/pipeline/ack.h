#pragma once

// Acknowledgement of records back to their source: a file's checkpoint moves only past records every
// sink has finished with. When exactly it moves, step by step, is told at the top of agent/pipeline/ack.cc.
//
// Thread-safety: an input thread calls SourceCursor::open() in offset order; any thread may finish
// an Ack. The cursor's mutex guards its pending list; the commit callback runs under no lock of ours
// but may run on any thread, one call at a time per cursor, with increasing offsets.

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>

namespace logcapture::agent {

class SourceCursor {
 public:
  using Commit = std::function<void(std::uint64_t offset)>;

  // `start` is the offset reading starts from (everything before it is already finished with).
  SourceCursor(std::uint64_t start, Commit commit);

  // Registers records that end at `endOffset`; returns their ticket.
  std::uint64_t open(std::uint64_t endOffset);
  // Marks a ticket finished and commits the offset of the longest finished prefix.
  void finish(std::uint64_t ticket);
  // Restarts at `offset` (a truncated file): tickets still open keep counting but commit nothing
  // past the restart point until they are finished.
  void restart(std::uint64_t offset);
  std::uint64_t committed() const;
  // True when every ticket opened so far is finished.
  bool idle() const;

 private:
  struct Pending {
    std::uint64_t endOffset;
    bool finished;
  };
  mutable std::mutex mutex_;
  mutable std::mutex commitMutex_;  // serialises commit calls so offsets arrive in order; idle() waits for one
  std::deque<Pending> pending_;
  std::uint64_t firstTicket_ = 0;
  std::uint64_t committed_;
  Commit commit_;
};

// One chunk's claim on its cursor. Move-only; finish() once. Destroyed unfinished it is abandoned:
// nothing is committed, so the records are read again after a restart (at-least-once).
class Ack {
 public:
  Ack() = default;
  Ack(std::shared_ptr<SourceCursor> cursor, std::uint64_t ticket) : cursor_(std::move(cursor)), ticket_(ticket) {}
  Ack(Ack&& other) noexcept : cursor_(std::move(other.cursor_)), ticket_(other.ticket_) {}
  Ack& operator=(Ack&& other) noexcept {
    cursor_ = std::move(other.cursor_);
    ticket_ = other.ticket_;
    return *this;
  }
  Ack(const Ack&) = delete;
  Ack& operator=(const Ack&) = delete;

  void finish() {
    if (cursor_) cursor_->finish(ticket_);
    cursor_.reset();
  }

 private:
  std::shared_ptr<SourceCursor> cursor_;
  std::uint64_t ticket_ = 0;
};

}  // namespace logcapture::agent
