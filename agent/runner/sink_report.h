#pragma once

// What a sink's runner counts and says: the counters of its records (SinkStats), and the warnings of its
// failed sends and dropped records, each logged first in full, then summarised once per interval
// (log::Throttle), so that a destination failing every batch costs a log line per interval, not per batch.
//
// Thread-safety: every member may be called from any of the runner's threads; the counters are relaxed
// atomics and the throttles lock themselves. `held` is called on the thread that noted the warning.

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>

#include "agent/runner/send_verdict.h"
#include "agent/runner/sink_buffer.h"
#include "base/log.h"
#include "circuit/breaker.h"
#include "sinks/sink.h"

namespace logcapture::agent {

// Why a batch went to the sink's fallback (agent/runner/fallback.h); each has its own metric label.
enum class FailoverReason : std::uint8_t {
  BreakerOpen,  // the breaker opened on failures
  ForcedOpen,   // an operator forced it open
};
inline constexpr std::size_t kFailoverReasons = 2;
constexpr std::string_view failoverReasonName(FailoverReason r) {
  switch (r) {
    case FailoverReason::BreakerOpen:
      return "breaker_open";
    case FailoverReason::ForcedOpen:
      return "forced_open";
  }
  return "?";
}

// Counters of one sink, relaxed atomics read by metrics and tests.
// received = delivered + dead_lettered + dropped (all reasons) + failed over + buffered + in flight + unsent
// at shutdown.
struct SinkStats {
  std::atomic<std::uint64_t> received{0};      // records handed to the sink
  std::atomic<std::uint64_t> delivered{0};     // records the destination accepted
  std::atomic<std::uint64_t> deadLettered{0};  // records written to the dead letter
  std::array<std::atomic<std::uint64_t>, kDropReasons> dropped{};
  std::atomic<std::uint64_t> unsentAtShutdown{0};  // left in the buffer at the shutdown deadline
  std::atomic<std::uint64_t> sends{0};             // calls to Sink::send
  std::atomic<std::uint64_t> retries{0};           // sends of a batch after its first
  std::atomic<std::uint64_t> batchesInFlight{0};
  std::atomic<std::uint64_t> splits{0};          // batches halved after the destination refused their size
  std::atomic<std::uint64_t> probes{0};          // probes sent before a trial batch (breaker.probe)
  std::atomic<std::uint64_t> sendExceptions{0};  // sends and probes that threw: retriable failures
  // Records handed to the fallback sink, which counts them in its own received.
  std::array<std::atomic<std::uint64_t>, kFailoverReasons> failedOver{};

  std::uint64_t droppedFor(DropReason r) const { return dropped[std::size_t(r)].load(std::memory_order_relaxed); }
  std::uint64_t failedOverFor(FailoverReason r) const {
    return failedOver[std::size_t(r)].load(std::memory_order_relaxed);
  }
};

class SinkReport {
 public:
  // `breaker`'s state goes into every line; it must outlive the report. `held` is called when a warning
  // is held back for a summary while none was: whoever calls summarise() then looks at nextSummaryAt().
  SinkReport(std::string sink, const circuit::Breaker& breaker, std::function<void()> held = {})
      : sink_(std::move(sink)), breaker_(breaker), onHeld_(std::move(held)) {}

  SinkStats& stats() { return stats_; }
  const SinkStats& stats() const { return stats_; }

  // Counts `records` dropped for `reason`, and warns (or holds the warning for the summary).
  void dropped(std::uint64_t records, DropReason reason);
  // Drops every record of `pb`: counted under `reason`, its claims released (its records are finished).
  void drop(PendingBatch& pb, DropReason reason) {
    dropped(pb.batch.size(), reason);
    pb.finish();
  }
  // Warns of a send or probe of `records` records (its `attempt`) that did not deliver them all.
  void sendFailed(const sinks::SendResult& result, std::uint64_t records, std::uint32_t attempt);
  // Logs the summaries whose interval has passed (`final`: all of them, now). Cheap when none is held.
  void summarise(bool final);
  // When summarise() has something to log next; empty while nothing is held.
  std::optional<std::chrono::steady_clock::time_point> nextSummaryAt();
  // Warns once of records a stop left behind: `event` and `hint` say what became of them.
  void leftAtStop(std::string_view event, std::uint64_t records, std::string_view hint) const;

 private:
  // Marks a warning held back, and tells onHeld_ when none was.
  void hold();

  const std::string sink_;
  const circuit::Breaker& breaker_;
  const std::function<void()> onHeld_;
  SinkStats stats_;
  log::Throttle sendFailures_;
  std::array<log::Throttle, kDropReasons> drops_;
  std::atomic<bool> held_{false};  // a throttle holds something back: workers check cheaply
};

}  // namespace logcapture::agent
