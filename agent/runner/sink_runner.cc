#include "agent/runner/sink_runner.h"

#include <algorithm>
#include <filesystem>
#include <functional>

#include "agent/runner/breaker_events.h"
#include "agent/runner/breaker_options.h"
#include "agent/runner/disk_buffer.h"
#include "agent/runner/handover.h"
#include "base/log.h"

namespace logcapture::agent {
namespace {

using Clock = std::chrono::steady_clock;

std::int64_t nanos(Clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
}

SendLimitOptions sendLimitOptions(const config::SinkConfig& cfg) {
  SendLimitOptions o;
  o.maxLimit = cfg.workers;
  o.adaptive = cfg.workers.adaptive;
  o.ramp = cfg.breaker.ramp;
  return o;
}

}  // namespace

SinkRunner::SinkRunner(const config::SinkConfig& cfg, std::unique_ptr<sinks::Sink> sink, const std::string& stateDir,
                       circuit::Clock& clock)
    : cfg_(cfg),
      inputs_(cfg.inputs),
      sink_(std::move(sink)),
      clock_(clock),
      deadLetter_(stateDir, cfg),
      breakerRecord_(stateDir, cfg.name),
      gate_(sendLimitOptions(cfg)),
      breaker_(std::make_unique<circuit::Breaker>(
          optionsFrom(cfg.breaker), clock_,
          std::vector<circuit::Breaker::Listener>{transitionLogger(cfg.name), breakerRecord_.listener(),
                                                  [this](const circuit::Transition& t) {
                                                    // A destination shown healthy again gets its backlog
                                                    // in a ramp, not all at once.
                                                    if (t.from == circuit::State::HalfOpen &&
                                                        t.to == circuit::State::Closed &&
                                                        cfg_.breaker.mode == config::BreakerMode::Enforce) {
                                                      gate_.startRamp();
                                                    }
                                                    // Workers waiting on an open breaker look again.
                                                    pauses_.wake();
                                                  }})),
      // A warning held back for its summary: idle workers wake to wait for its due time instead.
      report_(cfg.name, *breaker_, [this] { buffer_.wake(); }),
      lanes_(cfg.workers),
      buffer_(cfg.workers, cfg.buffer.maxBytes.value, cfg.buffer.whenFull,
              cfg.buffer.type == config::BufferType::Disk
                  ? std::make_unique<DiskBuffer>(cfg, (std::filesystem::path(stateDir) / "buffers" / cfg.name).string())
                  : nullptr),
      sender_({*sink_, *breaker_, clock_, buffer_, deadLetter_, report_, pauses_, gate_}, DeliveryRules::of(cfg),
              cfg.timeout),
      fallback_(cfg.name, report_.stats()),
      // Enough for the batcher to fill every lane's batch while the fan-out goes on; no more, since
      // records waiting here hold memory that no buffer bound counts.
      intakeMaxRecords_(std::max<std::uint64_t>(std::uint64_t(cfg.batch.maxRecords) * cfg.workers, 4096)),
      batcher_(cfg.batch, cfg.encoding, cfg.workers),
      sendingFormedNs_(std::make_unique<std::atomic<std::int64_t>[]>(cfg.workers)) {
  sender_.failOverTo(fallback_);
}

SinkRunner::~SinkRunner() {
  if (started_) stop(Clock::now());
}

std::optional<std::vector<std::string>> SinkRunner::inputs() const {
  std::lock_guard lock(inputsMutex_);
  return inputs_;
}

void SinkRunner::reroute(std::optional<std::vector<std::string>> inputs) {
  std::lock_guard lock(inputsMutex_);
  inputs_ = std::move(inputs);
}

bool SinkRunner::routes(const std::string& input) const {
  std::lock_guard lock(inputsMutex_);
  if (!inputs_) return true;
  return std::find(inputs_->begin(), inputs_->end(), input) != inputs_->end();
}

std::optional<std::string> SinkRunner::start(bool held) {
  if (auto error = sink_->start()) return error;
  started_ = true;
  held_ = held;
  // Open when the agent stopped: it stays open for its time. Not for a reload's replacement: the reload
  // may have fixed the sink's settings.
  if (!held) breakerRecord_.restore(*breaker_);
  // A replacement's disk buffer opens in adopt(), once its predecessor has let go of the directory.
  if (!held) report_.stats().received.fetch_add(buffer_.openDisk(), std::memory_order_relaxed);
  batcherThread_ = std::thread([this] {
    log::guardThread("sink", [this] { runBatcher(); });
    // Also after a failure, so that stop() and the workers do not wait for it until the deadline.
    batcherDone_ = true;
    buffer_.wake();
    pauses_.wake();
  });
  for (std::uint32_t lane = 0; lane < lanes_; ++lane) {
    workers_.emplace_back([this, lane] { log::guardThread("sink", [this, lane] { runWorker(lane); }); });
  }
  accepting_ = true;
  return std::nullopt;
}

bool SinkRunner::takeOver(PendingBatch& pb, std::uint32_t hops) {
  if (!accepting_.load()) return false;
  // Open too: to this sink's own fallback, if it has one that takes it. Once the open time has passed,
  // taken: the breaker moves to half-open only when a worker asks it for a permit.
  const auto state = breaker_->state();
  const bool open = state == circuit::State::ForcedOpen ||
                    (state == circuit::State::Open && breaker_->options().mode == circuit::Mode::Enforce &&
                     breaker_->nextRetryAt().value_or(clock_.now()) > clock_.now());
  if (open) return sender_.failOver(pb, hops + 1);
  if (pb.frame && cfg_.buffer.type == config::BufferType::Disk) return false;
  const std::uint64_t records = pb.batch.size();
  std::lock_guard lock(takeOverMutex_);
  if (!accepting_.load()) return false;
  // Within the bound, as a push would be, without waiting or dropping: refused, it waits where it is.
  const SinkBufferStats held = buffer_.stats();
  if (held.batches > 0 && held.bytes + heldBytes(pb) > cfg_.buffer.maxBytes.value) return false;
  PendingBatch taken = reencoded(std::move(pb), cfg_.encoding);
  report_.stats().received.fetch_add(records, std::memory_order_relaxed);
  // Into this sink's own lanes, as its batcher, a reload's adoption and a restart place a file's records:
  // the first sink's lane may hold records that are in several here, and a file's batches must share
  // one lane to arrive in order.
  std::vector<std::vector<std::uint32_t>> byLane(lanes_);
  for (std::uint32_t i = 0; i < taken.batch.size(); ++i) byLane[laneOf(taken.batch.record(i), lanes_)].push_back(i);
  std::vector<PendingBatch> parts;
  for (std::uint32_t lane = 0; lane < lanes_; ++lane) {
    if (byLane[lane].empty()) continue;
    if (byLane[lane].size() == taken.batch.size()) {
      taken.lane = lane;
      break;
    }
    parts.push_back(taken.part(subBatch(taken.batch, byLane[lane]), lane));
  }
  if (parts.empty()) {
    buffer_.admit(std::move(taken));
    return true;
  }
  for (auto& part : parts) buffer_.admit(std::move(part));
  taken.replacedByParts();
  return true;
}

void SinkRunner::offer(Claim claim, bool othersWait) {
  const std::uint64_t n = claim.delivery()->records().size();
  std::unique_lock lock(intakeMutex_);
  const auto room = [&] {
    return intakeClosed_ || !intakeBounded_ || intakeRecords_ == 0 || intakeRecords_ + n <= intakeMaxRecords_;
  };
  if (!room()) {
    if (othersWait) othersWaitOnIntake_.store(true, std::memory_order_relaxed);
    intakeChanged_.wait(lock, room);
    othersWaitOnIntake_.store(false, std::memory_order_relaxed);
  }
  if (intakeClosed_) return;  // stopping: unfinished, read again after a restart
  report_.stats().received.fetch_add(n, std::memory_order_relaxed);
  intakeRecords_ += n;
  intake_.push_back(std::move(claim));
  lock.unlock();
  intakeChanged_.notify_all();
}

void SinkRunner::abandonIntake() {
  {
    std::lock_guard lock(intakeMutex_);
    intakeClosed_ = true;
  }
  intakeChanged_.notify_all();
}

void SinkRunner::holdBackIntake(bool hold) {
  {
    std::lock_guard lock(intakeMutex_);
    intakeBounded_ = hold;
  }
  intakeChanged_.notify_all();
}

std::chrono::nanoseconds SinkRunner::oldestBatchAge(Clock::time_point now) const {
  auto oldest = buffer_.oldestFormedAt().value_or(Clock::time_point::max());
  for (std::uint32_t lane = 0; lane < lanes_; ++lane) {
    const std::int64_t formed = sendingFormedNs_[lane].load(std::memory_order_relaxed);
    if (formed != 0) oldest = std::min(oldest, Clock::time_point(std::chrono::nanoseconds(formed)));
  }
  if (oldest == Clock::time_point::max() || oldest > now) return std::chrono::nanoseconds::zero();
  return now - oldest;
}

void SinkRunner::runBatcher() {
  const Batcher::Closed store = [this](PendingBatch&& pb) { this->store(std::move(pb)); };
  std::deque<Claim> taken;
  while (true) {
    bool closed = false;
    {
      std::unique_lock lock(intakeMutex_);
      // Sleep until a delivery comes, or the oldest open batch has lingered long enough.
      const auto due = batcher_.nextDue();
      auto ready = [&] { return intakeClosed_ || !intake_.empty(); };
      if (!due) {
        intakeChanged_.wait(lock, ready);
      } else {
        intakeChanged_.wait_until(lock, *due, ready);
      }
      taken.swap(intake_);
      intakeRecords_ = 0;
      closed = intakeClosed_;
    }
    intakeChanged_.notify_all();
    for (auto& c : taken) batcher_.add(c, Clock::now(), store);
    taken.clear();
    batcher_.closeDue(closed ? Clock::time_point::max() : Clock::now(), store);
    if (closed) break;
  }
}

void SinkRunner::store(PendingBatch&& pb) {
  std::vector<PendingBatch> evicted;
  // A drop policy drops when dropping lets something go on: the breaker refuses sends (the sink is
  // down), or other sinks wait behind this one. A sink only slow, holding back no one, waits instead.
  // A metrics-only breaker's open state refuses nothing; only an operator's force-open does.
  const bool enforcing = breaker_->options().mode == circuit::Mode::Enforce;
  const auto mayDrop = [this, enforcing] {
    const auto state = breaker_->state();
    return (state == circuit::State::Open && enforcing) || state == circuit::State::ForcedOpen ||
           othersWaitOnIntake_.load(std::memory_order_relaxed);
  };
  switch (buffer_.push(pb, evicted, mayDrop)) {
    case SinkBuffer::PushResult::Accepted:
      break;
    case SinkBuffer::PushResult::Dropped:
      report_.drop(pb, DropReason::BufferFull);
      break;
    case SinkBuffer::PushResult::Closed:
      // Stopping past the deadline while when_full: block held the batcher: kept with the rest, for
      // whoever stops the runner to hand over, drop or leave unfinished.
      buffer_.admit(std::move(pb));
      break;
  }
  for (auto& e : evicted) report_.drop(e, DropReason::BufferFull);
}

void SinkRunner::runWorker(std::uint32_t lane) {
  const auto deliverTracked = [&](PendingBatch&& pb) {
    sendingFormedNs_[lane].store(nanos(pb.formedAt), std::memory_order_relaxed);
    sender_.run(std::move(pb));
    sendingFormedNs_[lane].store(0, std::memory_order_relaxed);
  };
  // Every wait here is for an event: a batch in this lane, or buffer_.wake() (the batcher done, a stop,
  // a warning held for its summary), or pauses_.wake() (an adoption). Only a summary due or the stop's
  // hard deadline bounds it in time, so an idle sink costs no wake-ups.
  while (true) {
    if (pauses_.pastHardDeadline()) return;  // what is left stays in the buffer, unfinished
    if (held_.load()) {
      // A replacement waits for its predecessor's batches, which go out before anything newer.
      pauses_.pauseWhile([this] { return held_.load(); });
      continue;
    }
    report_.summarise(false);
    const auto until = std::min(report_.nextSummaryAt().value_or(Clock::time_point::max()), pauses_.hardDeadline());
    PendingBatch pb;
    if (buffer_.pop(lane, pb, until)) {
      deliverTracked(std::move(pb));
      continue;
    }
    // Draining at shutdown: done once the batcher has flushed and this lane is empty.
    if (batcherDone_.load() && !buffer_.pop(lane, pb, Clock::now())) return;
    if (!pb.batch.empty()) deliverTracked(std::move(pb));
  }
}

std::vector<PendingBatch> SinkRunner::halt(base::Deadline deadline, bool handOver) {
  started_ = false;
  {
    // Taken over from now on, a batch would be left behind in the buffer drained below: the sinks that
    // fall back to this one keep theirs instead.
    std::lock_guard lock(takeOverMutex_);
    accepting_ = false;
  }
  held_ = false;  // stopping drains what it holds, replacement or not
  // Workers drain the buffer until the deadline; a worker waiting on an open breaker gives up then. A
  // disk buffer then writes what is left, and the checkpoints are saved: they get the last fifth of the
  // time (at most a second).
  if (cfg_.buffer.type == config::BufferType::Disk && !handOver) {
    const auto left = std::max<Clock::duration>(deadline - Clock::now(), Clock::duration::zero());
    deadline -= std::min<Clock::duration>(std::chrono::seconds(1), left / 5);
  }
  pauses_.setHardDeadline(deadline);
  gate_.wake();
  abandonIntake();
  buffer_.wake();
  // The batcher flushes its open batches; with when_full: block it may wait for room that never
  // comes (breaker open), so the buffer is closed at the deadline to release it.
  while (!batcherDone_.load() && !pauses_.pastHardDeadline()) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  if (!batcherDone_.load()) buffer_.close();
  batcherThread_.join();
  for (auto& w : workers_) w.join();
  workers_.clear();
  buffer_.close();
  // A disk buffer keeps what a stop leaves; a reload hands it over (its successor may buffer in memory).
  return buffer_.drain(/*keepOnDisk=*/!handOver);
}

void SinkRunner::stop(base::Deadline deadline) {
  if (!started_) return;
  std::uint64_t unsent = 0;
  for (auto& pb : halt(deadline)) unsent += pb.batch.size();  // unfinished: read again after a restart
  report_.stats().unsentAtShutdown.fetch_add(unsent, std::memory_order_relaxed);
  report_.leftAtStop("sink_unsent_at_shutdown", unsent,
                     "file records are read again after a restart; raise agent.shutdown_timeout to wait longer");
  report_.summarise(true);
  sink_->stop(deadline);
}

void SinkRunner::retire(base::Deadline deadline) {
  if (!started_) return;
  std::uint64_t unsent = 0;
  for (auto& pb : halt(deadline)) {
    unsent += pb.batch.size();
    report_.drop(pb, DropReason::SinkRemoved);
  }
  report_.leftAtStop("sink_removed_with_backlog", unsent,
                     "a reload removed this sink; what it had not sent by the reload's deadline is dropped");
  report_.summarise(true);
  sink_->stop(deadline);
}

std::vector<PendingBatch> SinkRunner::release() {
  if (!started_) return {};
  // Nothing new is sent: the send in flight ends (within `timeout`) and comes back to the buffer
  // unless it succeeded; the batcher's open batches are admitted whatever the buffer's bound.
  std::vector<PendingBatch> held = halt(Clock::now(), /*handOver=*/true);
  report_.summarise(true);
  sink_->stop(Clock::now() + std::chrono::seconds(5));
  return held;
}

void SinkRunner::adopt(std::vector<PendingBatch> batches) {
  // Re-encoded for this sink (its encoding may have changed) and re-laned for its workers.
  auto byLane = reformForAdoption(std::move(batches), cfg_.encoding, lanes_);
  std::uint64_t records = 0;
  // Ahead of what this runner received since it started: pushed to the front, last first.
  for (auto& lane : byLane) {
    for (auto it = lane.rbegin(); it != lane.rend(); ++it) {
      records += it->batch.size();
      buffer_.pushFront(std::move(*it));
    }
  }
  // What the predecessor left on disk is older still: it goes ahead of them.
  records += buffer_.openDisk();
  report_.stats().received.fetch_add(records, std::memory_order_relaxed);
  held_ = false;
  pauses_.wake();
}

}  // namespace logcapture::agent
