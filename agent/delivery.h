#pragma once

// A chunk on its way to every sink its input is routed to. Its ack finishes, and the source's
// checkpoint may move past it, only once every sink is done with every record: delivered, dead-lettered,
// or dropped by a counted policy. A delivery abandoned at shutdown never finishes, so its records are
// read again after a restart (at-least-once).
//
// Thread-safety: claim() and done() from any thread; the last done() finishes the ack.

#include <atomic>
#include <memory>

#include "agent/queue.h"

namespace logcapture::agent {

class Delivery {
 public:
  // `claims`: one per sink the chunk goes to.
  Delivery(Chunk&& chunk, int claims) : chunk_(std::move(chunk)), claims_(claims) {}
  Delivery(const Delivery&) = delete;
  Delivery& operator=(const Delivery&) = delete;

  // IMPORTANT: the records view bytes and a source the chunk owns: valid as long as this Delivery.
  const std::vector<base::Record>& records() const { return chunk_.records; }
  std::uint64_t bytes() const { return chunk_.bytes; }

  // One more holder must call done(): a sink split the chunk over several batches.
  void claim() { claims_.fetch_add(1, std::memory_order_relaxed); }
  void done() {
    if (claims_.fetch_sub(1, std::memory_order_acq_rel) == 1) chunk_.ack.finish();
  }

 private:
  Chunk chunk_;
  std::atomic<int> claims_;
};

using DeliveryRef = std::shared_ptr<Delivery>;

}  // namespace logcapture::agent
