#pragma once

// A sink's fallback (`fallback: NAME`): while the sink's breaker refuses sends for being open (or forced
// open by an operator), its batches go to the runner of another sink instead of waiting or being dropped.
// That runner takes a batch into its buffer re-encoded for its own destination, the batch's claims and
// disk frame with it, so a file's checkpoint (and the frame in the first sink's disk buffer) moves only
// once the fallback has delivered, dead-lettered or dropped (counted) the records. When the fallback's
// breaker is open too it passes the batch on to its own fallback, or refuses it; a refused batch stays
// with the first sink, as without a fallback (buffered, or dropped by on_open: drop). Nothing is ever
// between the two: a batch is in one runner's hands at every moment.
//
// NOTE on threads and lifetime:
// - The pipeline owns the runners. link() is called by the pipeline's thread (after build, and at each
//   reload, which links every runner again from the new config); the link holds a shared_ptr to its
//   target, so a linked runner lives at least as long as the link.
// - handOver() is called by the linking sink's workers. It copies the target under mutex_ and calls it
//   with no lock of ours held: a reload may relink meanwhile, and a target that has begun to stop refuses
//   (SinkRunner::takeOver). Following a chain takes no two locks at once.
// - A batch read back from a disk buffer may outlive that buffer in its fallback's hands (disk_buffer.h
//   says what becomes of its frame then).

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>

#include "agent/runner/sink_buffer.h"
#include "agent/runner/sink_report.h"

namespace logcapture::agent {

class SinkRunner;

class FallbackLink {
 public:
  // Links from sink `sink`, whose counters are `stats` (they must outlive the link).
  FallbackLink(std::string sink, SinkStats& stats) : sink_(std::move(sink)), stats_(stats) {}

  // The runner that takes this sink's batches from now on; null: none.
  void link(std::shared_ptr<SinkRunner> to);
  // The name of the linked sink; empty when none is.
  std::string target() const;
  bool linked() const { return linked_.load(std::memory_order_relaxed); }

  // Hands `pb` to the linked runner: true when it took it (`pb` is then moved from), false when none is
  // linked or it refused (`pb` untouched). `hops`: links followed before this one, a bound on a chain.
  // The records are counted in `failedOver` once the runner took them, so the counter may trail the
  // fallback's own delivery of them by a moment.
  bool handOver(PendingBatch& pb, FailoverReason reason, std::uint32_t hops = 0);
  // The sink delivered a batch itself: a failover under way has ended (logged once). Cheap otherwise.
  void delivered() {
    if (failingOver_.load(std::memory_order_relaxed)) ended();
  }

 private:
  void ended();

  const std::string sink_;
  SinkStats& stats_;
  mutable std::mutex mutex_;
  std::shared_ptr<SinkRunner> to_;  // guarded by mutex_
  std::atomic<bool> linked_{false};
  std::atomic<bool> failingOver_{false};  // a batch went over since the sink last delivered one itself
  std::atomic<bool> refusing_{false};     // the fallback refused the last batch offered
};

}  // namespace logcapture::agent
