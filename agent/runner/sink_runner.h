#pragma once

// The per-sink runner: batcher -> buffer -> workers -> breaker -> sink. It is the one place where
// retry, breaker and timeout are layered around Sink::send, in a fixed order:
//   breaker permit -> send with `timeout` -> classify -> retry with capped exponential backoff and full
//   jitter -> report to the breaker.
// While the breaker is open, batches wait in the buffer (on_open: buffer) or are dropped and counted
// (on_open: drop). Permanent failures go to the dead letter. Every record handed to the runner ends
// delivered, dead-lettered, or dropped with a counted reason; only a shutdown deadline leaves records
// unfinished, and those are read again after a restart.
//
// NOTE on threads:
// - offer() is called by the fan-out thread; it appends to intake_ under intakeMutex_ and waits while
//   intake_ is full (the batcher is behind, or when_full: block holds it), unless holdBackIntake(false)
//   (a reload retiring this runner) lets everything through.
// - One batcher thread takes deliveries from intake_, forms batches of them (batcher_, its thread's
//   alone, no lock) and pushes full or lingering batches into buffer_.
// - A worker releases the claims of a batch it finished itself, so a file's checkpoint never waits for
//   the batcher, which may be blocked on a full buffer (when_full: block).
// - `workers` threads, one per lane, pop batches from buffer_ and run deliver(). A lane is sent in
//   order, and all records of one source go to one lane, so every file arrives in order.
// - The batcher and the workers run under log::guardThread: an exception escaping them stops the
//   agent (its records are read again after a restart). An exception from Sink::send or probe is a
//   retriable failure of that call, reported to the breaker and counted in sendExceptions.
// - buffer_ has its own mutex; the breaker is thread-safe; stats_ are relaxed atomics for any reader.
// - start() and stop(), release() or retire() are called once each by the pipeline's thread.
// - inputsMutex_ guards the routed inputs, read by the fan-out and changed by a reload.

#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "agent/pipeline/delivery.h"
#include "agent/runner/batcher.h"
#include "agent/runner/dead_letter.h"
#include "agent/runner/send_verdict.h"
#include "agent/runner/sink_buffer.h"
#include "base/deadline.h"
#include "base/log.h"
#include "circuit/breaker.h"
#include "config/config.h"
#include "sinks/sink.h"

namespace logcapture::agent {

// Counters of one sink, relaxed atomics read by metrics and tests.
// received = delivered + dead_lettered + dropped (all reasons) + buffered + in flight + unsent at shutdown.
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

  std::uint64_t droppedFor(DropReason r) const { return dropped[std::size_t(r)].load(std::memory_order_relaxed); }
};

class SinkRunner {
 public:
  // `clock` drives the breaker and must outlive the runner.
  SinkRunner(const config::SinkConfig& cfg, std::unique_ptr<sinks::Sink> sink, const std::string& stateDir,
             circuit::Clock& clock);
  ~SinkRunner();
  SinkRunner(const SinkRunner&) = delete;
  SinkRunner& operator=(const SinkRunner&) = delete;

  const std::string& name() const { return cfg_.name; }
  // True when records of `input` go to this sink.
  bool routes(const std::string& input) const;
  // The inputs routed to this sink (absent: every input). A reload may change them in place; config()
  // keeps the ones it was built with.
  std::optional<std::vector<std::string>> inputs() const;
  void reroute(std::optional<std::vector<std::string>> inputs);

  // Starts the sink and the threads; returns the sink's error when it cannot start. `held`: the
  // workers send nothing until adopt() (a replacement waiting for its predecessor's batches).
  std::optional<std::string> start(bool held = false);
  // Takes the sink's claim on a delivery. Waits while the intake is full; returns at once, the claim
  // abandoned (the delivery left unfinished), once abandonIntake() was called. `othersWait`: other sinks
  // are held back while this call waits (the fan-out feeds more than this one), which lets a full buffer
  // apply its drop policy although the breaker is closed; a sink that is only slow and holds back no one
  // waits instead, so its inputs slow down and lose nothing.
  void offer(Claim claim, bool othersWait = false);
  // Sends what is buffered until the deadline, then stops the sink. Records still unsent are left
  // unfinished (read again after a restart) and counted in unsentAtShutdown.
  void stop(base::Deadline deadline);
  // Stops at once, for a replacement (agent/runner/handover.h): the send in flight ends (within `timeout`),
  // nothing else is sent, and every batch still held is handed back in order, its claims intact,
  // instead of being left unfinished. Then stops the sink.
  std::vector<PendingBatch> release();
  // Takes a predecessor's released batches ahead of everything received since start(true), re-encoded
  // for this sink, and lets the workers send. Called once, by the thread that called start().
  void adopt(std::vector<PendingBatch> batches);
  // Sends what is buffered until the deadline, then stops the sink, like stop(); but a reload removed
  // this sink and the agent runs on, so what is still unsent is dropped and counted (sink_removed)
  // rather than left unfinished, which would hold its files' checkpoints back until a restart.
  void retire(base::Deadline deadline);
  // Makes offer() return at once without taking the delivery (left unfinished): the fan-out calls it
  // when the shutdown deadline passes while it waits on this sink.
  void abandonIntake();
  // false: offer() takes every delivery at once, whatever the intake's bound. A reload that retires or
  // replaces this runner calls it when the fan-out waits on it, so that the reload need not wait for
  // the sink; what the runner takes is handed over or dropped with a counted reason. true (the default)
  // restores the bound (a reload refused after all).
  void holdBackIntake(bool hold);
  // How long the oldest batch not yet finished (waiting in the buffer, or being sent) has been formed:
  // a batch stuck behind a failing destination shows here. Zero when there is none.
  std::chrono::nanoseconds oldestBatchAge(std::chrono::steady_clock::time_point now) const;

  circuit::Breaker& breaker() { return *breaker_; }
  const SinkStats& stats() const { return stats_; }
  SinkBufferStats bufferStats() const { return buffer_.stats(); }
  const DeadLetter& deadLetter() const { return deadLetter_; }
  const sinks::Sink& sink() const { return *sink_; }
  const config::SinkConfig& config() const { return cfg_; }

 private:
  // Stops the threads, sending until the deadline; returns what is left in the buffer.
  std::vector<PendingBatch> halt(base::Deadline deadline);
  // The send or probe, an exception turned into a retriable failure.
  sinks::SendResult sendGuarded(const sinks::Batch* batch, base::Deadline deadline);
  // True when this exhausted batch should leave the breaker's trial calls to a fresher lane.
  bool yieldsTrial(const PendingBatch& pb) const;
  // Waits for the breaker's next trial time, at most 200 ms (or a transition, or the deadline).
  void pauseForBreaker();
  void runBatcher();
  // Puts a batch the batcher closed into the buffer, or drops it by the buffer's when_full policy.
  void store(PendingBatch&& pb);
  void runWorker(std::uint32_t lane);
  void deliver(PendingBatch&& pb);
  void deadLetterRecords(PendingBatch& pb, const std::vector<std::pair<std::uint32_t, std::string>>& failed);
  void countDropped(std::uint64_t records, DropReason reason);
  void drop(PendingBatch& pb, DropReason reason);
  void reportFailure(const sinks::SendResult& result, const PendingBatch& pb);
  // Uniform in [0, 1), for the backoff's jitter.
  double jitter();
  // Logs the failures and drops the throttles held back, once their interval has passed (`final`: now).
  void logSummaries(bool final);
  // Waits up to `delay`, cut short by the hard deadline; false when the deadline has passed.
  bool pause(std::chrono::nanoseconds delay);
  std::chrono::steady_clock::time_point hardDeadline() const;  // the shutdown deadline; far away while running
  bool pastHardDeadline() const;
  void wakePaused();

  const config::SinkConfig cfg_;
  const DeliveryRules rules_;
  mutable std::mutex inputsMutex_;
  std::optional<std::vector<std::string>> inputs_;  // guarded by inputsMutex_
  std::unique_ptr<sinks::Sink> sink_;
  circuit::Clock& clock_;
  DeadLetter deadLetter_;
  std::unique_ptr<circuit::Breaker> breaker_;
  const std::uint32_t lanes_;
  SinkBuffer buffer_;
  SinkStats stats_;
  // Failures and drops are logged first in full, then summarised per interval (log::Throttle).
  log::Throttle sendFailures_;
  std::array<log::Throttle, kDropReasons> drops_;
  std::atomic<bool> summariesHeld_{false};  // a throttle holds something back: workers check cheaply

  std::mutex intakeMutex_;
  std::condition_variable intakeChanged_;
  std::deque<Claim> intake_;
  std::uint64_t intakeRecords_ = 0;
  const std::uint64_t intakeMaxRecords_;
  bool intakeClosed_ = false;
  bool intakeBounded_ = true;
  std::atomic<bool> othersWaitOnIntake_{false};  // offer() waits for room while other sinks wait on it

  Batcher batcher_;  // batcher thread only

  std::mutex pauseMutex_;
  std::condition_variable pauseChanged_;  // woken by breaker transitions and shutdown
  std::uint64_t pauseEpoch_ = 0;          // guarded by pauseMutex_; bumped on each wake-up
  std::atomic<bool> batcherDone_{false};
  std::atomic<bool> held_{false};                        // workers wait for adopt()
  std::atomic<std::int64_t> hardDeadlineNs_{INT64_MAX};  // steady ns; workers give up past it
  // Per lane: steady ns at which the batch being sent was formed, 0 when none is out of the buffer.
  std::unique_ptr<std::atomic<std::int64_t>[]> sendingFormedNs_;

  std::mutex randomMutex_;
  std::minstd_rand random_;

  std::thread batcherThread_;
  std::vector<std::thread> workers_;
  bool started_ = false;
};

// A batch of the records `indexes` of `batch`, their encodings copied.
sinks::Batch subBatch(const sinks::Batch& batch, const std::vector<std::uint32_t>& indexes);

}  // namespace logcapture::agent
