#pragma once

// The batcher of one sink: deliveries in, batches out. Each record is encoded once, in the sink's
// encoding, into the open batch of its lane; all records of one source take the same lane (laneOf),
// and a lane is sent in order, so every file arrives in order. A batch closes when it holds
// batch.max_records records or batch.max_bytes encoded bytes, or once its first record has waited
// batch.linger. A batch holds a claim on every delivery it has records of.
//
// Not thread-safe: one thread calls everything (the sink runner's batcher thread). Time is passed in,
// so that linger is tested without a clock.

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <vector>

#include "agent/pipeline/delivery.h"
#include "agent/runner/sink_buffer.h"
#include "config/config.h"

namespace logcapture::agent {

class Batcher {
 public:
  using Clock = std::chrono::steady_clock;
  // Takes each batch as it closes, in order. It may block (a full buffer with when_full: block): the
  // batcher goes on once it returns.
  using Closed = std::function<void(PendingBatch&&)>;

  Batcher(const config::BatchConfig& batch, config::Encoding encoding, std::uint32_t lanes);

  // Adds every record of the claim's delivery, records that came at `now`, then releases the claim:
  // each record sits in a batch holding a claim of its own by then.
  void add(Claim& claim, Clock::time_point now, const Closed& closed);
  // Closes the batches whose first record came `linger` or longer before `now`; every open batch
  // with Clock::time_point::max().
  void closeDue(Clock::time_point now, const Closed& closed);
  // When the open batch that came first is due; empty when no batch is open.
  std::optional<Clock::time_point> nextDue() const;

 private:
  struct OpenBatch {
    PendingBatch pending;
    Clock::time_point firstAt{};
    const Delivery* lastDelivery = nullptr;  // holds a claim in this batch already
  };
  void close(OpenBatch& open, const Closed& closed);

  const config::BatchConfig cfg_;
  const config::Encoding encoding_;
  std::vector<OpenBatch> open_;  // one per lane
  std::uint64_t sequence_ = 0;
};

// The lane, of `lanes`, that records of `r`'s source take: always the same, so a file is sent in order.
std::uint32_t laneOf(const base::Record& r, std::uint32_t lanes);

}  // namespace logcapture::agent
