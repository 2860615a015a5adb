#pragma once

// The per-sink runner: intake -> batcher -> buffer -> workers -> sender -> breaker -> sink. It owns the
// pieces and their threads; each piece is in a file of its own:
//   batcher.h      records into batches by count, size and linger
//   sink_buffer.h  the batches waiting, per lane, and the when_full policy
//   send_verdict.h decide(): what becomes of a batch after a send (pure, tested without threads)
//   send_limit.h   how many batches may be in flight and how often one may start (ramp, workers: auto)
//   sender.h       the executor: permit, probe, send, decide, then finish, dead-letter, drop, split or retry
//   handover.h     a reload's hand-over of the batches held (halt, release, adopt)
//   sink_report.h  the counters, and the warnings of failures and drops
//   pauses.h       where workers wait, and the stop's hard deadline
// While the breaker is open, batches wait in the buffer (on_open: buffer) or are dropped and counted
// (on_open: drop); with breaker.mode: metrics_only only an operator's force-open holds them back, and
// an open breaker is only reported. Permanent failures go to the dead letter. Every record handed to the runner ends
// delivered, dead-lettered, or dropped with a counted reason; only a shutdown deadline leaves records
// unfinished, and those are read again after a restart. When a file's checkpoint moves is told in
// agent/pipeline/ack.h.
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
// - buffer_ has its own mutex; the breaker, the report and the pauses are thread-safe; the stats are
//   relaxed atomics for any reader.
// - start() and stop(), release() or retire() are called once each by the pipeline's thread.
// - inputsMutex_ guards the routed inputs, read by the fan-out and changed by a reload.
// - fallBackTo() is called by the pipeline's thread; takeOver() by the workers of the sinks that fall back
//   to this one (agent/runner/fallback.h), under takeOverMutex_, which orders it with the start of a stop.

#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "agent/pipeline/delivery.h"
#include "agent/runner/batcher.h"
#include "agent/runner/breaker_record.h"
#include "agent/runner/dead_letter.h"
#include "agent/runner/disk_buffer.h"
#include "agent/runner/fallback.h"
#include "agent/runner/pauses.h"
#include "agent/runner/send_limit.h"
#include "agent/runner/send_verdict.h"
#include "agent/runner/sender.h"
#include "agent/runner/sink_buffer.h"
#include "agent/runner/sink_report.h"
#include "base/deadline.h"
#include "base/log.h"
#include "circuit/breaker.h"
#include "config/config.h"
#include "sinks/sink.h"

namespace logcapture::agent {

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
  // While this sink's breaker is open, its batches go to `to` (null: none). agent/runner/fallback.h.
  void fallBackTo(std::shared_ptr<SinkRunner> to) { fallback_.link(std::move(to)); }
  // The sink this one falls back to; empty when none.
  std::string fallbackName() const { return fallback_.target(); }
  // Takes a batch of a sink that falls back to this one, re-encoded for this sink, into the back of its
  // lane's share here (a lane of the other sink stays one lane here, in order). True when taken (`pb`
  // moved from). When this sink's breaker is open too, passes it on to this sink's own fallback (`hops`
  // bounds a chain). Refuses (false, `pb` untouched) when the batch would not fit in the buffer, once a
  // stop has begun, or a batch read from another disk buffer when this one is on disk too (it would be
  // written again under a frame of its own, and the other's never finished).
  bool takeOver(PendingBatch& pb, std::uint32_t hops);
  // How long the oldest batch not yet finished (waiting in the buffer, or being sent) has been formed:
  // a batch stuck behind a failing destination shows here. Zero when there is none.
  std::chrono::nanoseconds oldestBatchAge(std::chrono::steady_clock::time_point now) const;

  circuit::Breaker& breaker() { return *breaker_; }
  // The send limit's figures now: its limit, the sends in flight, a ramp's pace.
  SendLimit::Figures sendLimit() const { return gate_.figures(); }
  const SinkStats& stats() const { return report_.stats(); }
  SinkBufferStats bufferStats() const { return buffer_.stats(); }
  // The disk buffer's figures; empty for a memory buffer.
  std::optional<DiskBufferStats> diskBufferStats() const { return buffer_.diskStats(); }
  const DeadLetter& deadLetter() const { return deadLetter_; }
  const sinks::Sink& sink() const { return *sink_; }
  const config::SinkConfig& config() const { return cfg_; }

 private:
  // Stops the threads, sending until the deadline; returns what is left in the buffer.
  std::vector<PendingBatch> halt(base::Deadline deadline, bool handOver = false);
  void runBatcher();
  // Puts a batch the batcher closed into the buffer, or drops it by the buffer's when_full policy.
  void store(PendingBatch&& pb);
  void runWorker(std::uint32_t lane);

  const config::SinkConfig cfg_;
  mutable std::mutex inputsMutex_;
  std::optional<std::vector<std::string>> inputs_;  // guarded by inputsMutex_
  std::unique_ptr<sinks::Sink> sink_;
  circuit::Clock& clock_;
  DeadLetter deadLetter_;
  BreakerRecord breakerRecord_;  // before breaker_: its listener
  Pauses pauses_;
  SendGate gate_;                                    // before breaker_: its listener starts a ramp
  const std::unique_ptr<circuit::Breaker> breaker_;  // wakes pauses_ on each transition
  SinkReport report_;
  const std::uint32_t lanes_;
  SinkBuffer buffer_;
  Sender sender_;
  FallbackLink fallback_;
  std::mutex takeOverMutex_;
  std::atomic<bool> accepting_{false};  // takeOver() takes batches: started, and no stop begun

  std::mutex intakeMutex_;
  std::condition_variable intakeChanged_;
  std::deque<Claim> intake_;
  std::uint64_t intakeRecords_ = 0;
  const std::uint64_t intakeMaxRecords_;
  bool intakeClosed_ = false;
  bool intakeBounded_ = true;
  std::atomic<bool> othersWaitOnIntake_{false};  // offer() waits for room while other sinks wait on it

  Batcher batcher_;  // batcher thread only

  std::atomic<bool> batcherDone_{false};
  std::atomic<bool> held_{false};  // workers wait for adopt()
  // Per lane: steady ns at which the batch being sent was formed, 0 when none is out of the buffer.
  std::unique_ptr<std::atomic<std::int64_t>[]> sendingFormedNs_;

  std::thread batcherThread_;
  std::vector<std::thread> workers_;
  bool started_ = false;
};

}  // namespace logcapture::agent
