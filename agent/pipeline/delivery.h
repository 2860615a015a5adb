#pragma once

// A chunk on its way to every sink its input is routed to, and the claims that hold its ack back.
// When a file's checkpoint moves is told in agent/pipeline/ack.h.
//
// Thread-safety: claims are taken and released from any thread; the release of the last claim held
// finishes the chunk's ack, on the releasing thread.

#include <atomic>
#include <memory>

#include "agent/pipeline/queue.h"

namespace logcapture::agent {

class Delivery {
 public:
  explicit Delivery(Chunk&& chunk) : chunk_(std::move(chunk)) {}
  Delivery(const Delivery&) = delete;
  Delivery& operator=(const Delivery&) = delete;

  // IMPORTANT: the records view bytes and a source the chunk owns: valid as long as this Delivery.
  const std::vector<base::Record>& records() const { return chunk_.records; }
  std::uint64_t bytes() const { return chunk_.bytes; }

 private:
  friend class Claim;
  Chunk chunk_;
  std::atomic<int> claims_{0};
};

using DeliveryRef = std::shared_ptr<Delivery>;

// One holder's hold on a delivery: the fan-out's while it hands the chunk out, a sink's until its batcher
// has put every record in a batch, each batch's until a worker is done with the batch. Move-only.
// release() says the holder is done with its records: delivered, dead-lettered, dropped by a counted
// policy (or, later, durably buffered). A claim destroyed unreleased is abandoned: the ack never
// finishes, and the records are read again after a restart (at-least-once).
class Claim {
 public:
  Claim() = default;
  // A new claim on `delivery`. Whoever hands a delivery to several holders holds a claim of its own
  // meanwhile, so that the first holder done does not finish the ack before the last one has its claim.
  explicit Claim(DeliveryRef delivery) : delivery_(std::move(delivery)) {
    if (delivery_) delivery_->claims_.fetch_add(1, std::memory_order_relaxed);
  }
  Claim(Claim&& other) noexcept = default;
  Claim& operator=(Claim&& other) noexcept = default;
  Claim(const Claim&) = delete;
  Claim& operator=(const Claim&) = delete;
  ~Claim() = default;  // abandons an unreleased claim

  // Another claim on the same delivery (a batch split in two).
  Claim another() const { return Claim(delivery_); }
  void release() {
    if (delivery_ && delivery_->claims_.fetch_sub(1, std::memory_order_acq_rel) == 1) delivery_->chunk_.ack.finish();
    delivery_.reset();
  }
  // Null once released or moved from.
  const Delivery* delivery() const { return delivery_.get(); }
  // The delivery itself, which keeps its records alive with no claim on it (a disk buffer keeps the
  // records of a batch it wrote, and released the claims once the write was synced).
  DeliveryRef share() const { return delivery_; }

 private:
  DeliveryRef delivery_;
};

}  // namespace logcapture::agent
