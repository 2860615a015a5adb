#include "agent/runner/sink_runner.h"

#include <algorithm>
#include <functional>

#include "agent/runner/breaker_events.h"
#include "agent/runner/breaker_options.h"
#include "agent/runner/handover.h"
#include "agent/runner/send_verdict.h"
#include "base/log.h"

namespace logcapture::agent {
namespace {

using Clock = std::chrono::steady_clock;
using circuit::Outcome;

std::int64_t nanos(Clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
}

}  // namespace

sinks::Batch subBatch(const sinks::Batch& batch, const std::vector<std::uint32_t>& indexes) {
  sinks::Batch out;
  out.records.reserve(indexes.size());
  out.ends.reserve(indexes.size());
  for (std::uint32_t i : indexes) {
    out.encoded += batch.encodedRecord(i);
    out.seal(batch.records[i]);
  }
  return out;
}

SinkRunner::SinkRunner(const config::SinkConfig& cfg, std::unique_ptr<sinks::Sink> sink, const std::string& stateDir,
                       circuit::Clock& clock)
    : cfg_(cfg),
      rules_(DeliveryRules::of(cfg)),
      inputs_(cfg.inputs),
      sink_(std::move(sink)),
      clock_(clock),
      deadLetter_(stateDir, cfg),
      lanes_(cfg.workers),
      buffer_(cfg.workers, cfg.buffer.maxBytes.value, cfg.buffer.whenFull),
      // Enough for the batcher to fill every lane's batch while the fan-out goes on; no more, since
      // records waiting here hold memory that no buffer bound counts.
      intakeMaxRecords_(std::max<std::uint64_t>(std::uint64_t(cfg.batch.maxRecords) * cfg.workers, 4096)),
      batcher_(cfg.batch, cfg.encoding, cfg.workers),
      sendingFormedNs_(std::make_unique<std::atomic<std::int64_t>[]>(cfg.workers)),
      random_(std::random_device{}()) {
  std::vector<circuit::Breaker::Listener> listeners{transitionLogger(cfg.name),
                                                    // Workers waiting on an open breaker look again.
                                                    [this](const circuit::Transition&) { wakePaused(); }};
  breaker_ = std::make_unique<circuit::Breaker>(optionsFrom(cfg.breaker), clock_, std::move(listeners));
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
  batcherThread_ = std::thread([this] {
    log::guardThread("sink", [this] { runBatcher(); });
    // Also after a failure, so that stop() and the workers do not wait for it until the deadline.
    batcherDone_ = true;
    buffer_.wake();
    wakePaused();
  });
  for (std::uint32_t lane = 0; lane < lanes_; ++lane) {
    workers_.emplace_back([this, lane] { log::guardThread("sink", [this, lane] { runWorker(lane); }); });
  }
  return std::nullopt;
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
  stats_.received.fetch_add(n, std::memory_order_relaxed);
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

void SinkRunner::wakePaused() {
  {
    std::lock_guard lock(pauseMutex_);
    ++pauseEpoch_;
  }
  pauseChanged_.notify_all();
}

void SinkRunner::store(PendingBatch&& pb) {
  std::vector<PendingBatch> evicted;
  // A drop policy drops when dropping lets something go on: the breaker refuses sends (the sink is
  // down), or other sinks wait behind this one. A sink only slow, holding back no one, waits instead.
  const auto mayDrop = [this] {
    const auto state = breaker_->state();
    return state == circuit::State::Open || state == circuit::State::ForcedOpen ||
           othersWaitOnIntake_.load(std::memory_order_relaxed);
  };
  switch (buffer_.push(pb, evicted, mayDrop)) {
    case SinkBuffer::PushResult::Accepted:
      break;
    case SinkBuffer::PushResult::Dropped:
      drop(pb, DropReason::BufferFull);
      break;
    case SinkBuffer::PushResult::Closed:
      // Stopping past the deadline while when_full: block held the batcher: kept with the rest, for
      // whoever stops the runner to hand over, drop or leave unfinished.
      buffer_.admit(std::move(pb));
      break;
  }
  for (auto& e : evicted) drop(e, DropReason::BufferFull);
}

void SinkRunner::countDropped(std::uint64_t records, DropReason reason) {
  if (records == 0) return;
  stats_.dropped[std::size_t(reason)].fetch_add(records, std::memory_order_relaxed);
  if (drops_[std::size_t(reason)].note(Clock::now(), records, {})) {
    log::event(*log::component("sink"), spdlog::level::warn, "sink_records_dropped",
               {{"sink", cfg_.name},
                {"reason", dropReasonName(reason)},
                {"records", records},
                {"breaker", circuit::stateName(breaker_->state())},
                {"hint", "further drops are summarised every 10s and counted in the metrics"}});
  } else {
    summariesHeld_.store(true, std::memory_order_relaxed);
  }
}

void SinkRunner::drop(PendingBatch& pb, DropReason reason) {
  countDropped(pb.batch.size(), reason);
  pb.finish();
}

void SinkRunner::reportFailure(const sinks::SendResult& result, const PendingBatch& pb) {
  const std::string& error =
      result.error.empty() && !result.failures.empty() ? result.failures.front().error : result.error;
  const bool partial = !result.failures.empty() && !result.tooLarge;
  if (!sendFailures_.note(Clock::now(), partial ? result.failures.size() : pb.batch.size(), error)) {
    summariesHeld_.store(true, std::memory_order_relaxed);
    return;
  }
  log::event(*log::component("sink"), spdlog::level::warn, "sink_send_failed",
             {{"sink", cfg_.name},
              {"outcome", partial ? std::string_view("partial") : sinks::outcomeName(result.outcome)},
              {"error", error},
              {"records", partial ? result.failures.size() : pb.batch.size()},
              {"attempt", pb.attempts},
              {"breaker", circuit::stateName(breaker_->state())},
              {"hint", "further failures are summarised every 10s"}});
}

void SinkRunner::logSummaries(bool final) {
  if (!summariesHeld_.exchange(false, std::memory_order_relaxed)) return;
  // At the end, whatever is held back is due.
  const auto now = final ? Clock::time_point::max() : Clock::now();
  bool held = false;
  if (auto s = sendFailures_.takeDue(now); s.occurrences > 0) {
    log::event(*log::component("sink"), spdlog::level::warn, "sink_send_failures",
               {{"sink", cfg_.name},
                {"failures", s.occurrences},
                {"records", s.count},
                {"last_error", s.lastDetail},
                {"breaker", circuit::stateName(breaker_->state())}});
  }
  held = held || sendFailures_.holding();
  for (std::size_t r = 0; r < kDropReasons; ++r) {
    if (auto s = drops_[r].takeDue(now); s.occurrences > 0) {
      log::event(*log::component("sink"), spdlog::level::warn, "sink_records_dropped",
                 {{"sink", cfg_.name},
                  {"reason", dropReasonName(DropReason(r))},
                  {"records", s.count},
                  {"batches", s.occurrences},
                  {"breaker", circuit::stateName(breaker_->state())}});
    }
    held = held || drops_[r].holding();
  }
  if (held) summariesHeld_.store(true, std::memory_order_relaxed);
}

Clock::time_point SinkRunner::hardDeadline() const {
  return Clock::time_point(std::chrono::nanoseconds(hardDeadlineNs_.load()));
}

bool SinkRunner::pastHardDeadline() const { return Clock::now() >= hardDeadline(); }

bool SinkRunner::pause(std::chrono::nanoseconds delay) {
  const auto until = std::min(Clock::now() + delay, hardDeadline());
  std::unique_lock lock(pauseMutex_);
  const std::uint64_t epoch = pauseEpoch_;
  pauseChanged_.wait_until(lock, until, [&] { return pastHardDeadline() || pauseEpoch_ != epoch; });
  return !pastHardDeadline();
}

double SinkRunner::jitter() {
  std::lock_guard lock(randomMutex_);
  return std::uniform_real_distribution<double>(0, 1)(random_);
}

void SinkRunner::runWorker(std::uint32_t lane) {
  const auto deliverTracked = [&](PendingBatch&& pb) {
    sendingFormedNs_[lane].store(nanos(pb.formedAt), std::memory_order_relaxed);
    deliver(std::move(pb));
    sendingFormedNs_[lane].store(0, std::memory_order_relaxed);
  };
  while (true) {
    if (pastHardDeadline()) return;  // what is left stays in the buffer, unfinished
    if (held_.load()) {
      // A replacement waits for its predecessor's batches, which go out before anything newer.
      std::unique_lock lock(pauseMutex_);
      pauseChanged_.wait_for(lock, std::chrono::milliseconds(100), [&] { return !held_.load() || pastHardDeadline(); });
      continue;
    }
    logSummaries(false);
    PendingBatch pb;
    if (buffer_.pop(lane, pb, Clock::now() + std::chrono::milliseconds(100))) {
      deliverTracked(std::move(pb));
      continue;
    }
    // Draining at shutdown: done once the batcher has flushed and this lane is empty.
    if (batcherDone_.load() && !buffer_.pop(lane, pb, Clock::now())) return;
    if (!pb.batch.empty()) deliverTracked(std::move(pb));
  }
}

void SinkRunner::deadLetterRecords(PendingBatch& pb, const std::vector<std::pair<std::uint32_t, std::string>>& failed) {
  const DeadLetter::Appended appended = deadLetter_.append(pb.batch, failed);
  stats_.deadLettered.fetch_add(appended.written, std::memory_order_relaxed);
  countDropped(appended.overCap, DropReason::DeadLetterFull);
  countDropped(appended.unwritable, DropReason::DeadLetterFailed);
}

sinks::SendResult SinkRunner::sendGuarded(const sinks::Batch* batch, base::Deadline deadline) {
  // A sink is not to throw; one that does must not take the worker, and the trial slot its permit
  // holds, with it: the call failed, and the breaker hears so.
  std::string what;
  try {
    return batch != nullptr ? sink_->send(*batch, deadline) : sink_->probe(deadline);
  } catch (const std::exception& e) {
    what = e.what();
  } catch (...) {
    what = "an exception of unknown type";
  }
  stats_.sendExceptions.fetch_add(1, std::memory_order_relaxed);
  return sinks::SendResult::failure(sinks::Outcome::Retriable,
                                    std::string(batch != nullptr ? "send" : "probe") + " threw: " + what);
}

bool SinkRunner::yieldsTrial(const PendingBatch& pb) const {
  if (pb.rounds == 0) return false;
  const auto state = breaker_->state();
  if (state != circuit::State::Open && state != circuit::State::HalfOpen) return false;
  // A batch that keeps failing would fail the trial again and keep the breaker open for every lane;
  // fresher batches try first, and once they close the breaker this one tries again.
  return buffer_.freshBatchBesides(pb.lane);
}

void SinkRunner::pauseForBreaker() {
  const auto retryAt = breaker_->nextRetryAt();
  auto wait = std::chrono::nanoseconds(std::chrono::milliseconds(200));
  if (retryAt) wait = std::clamp(*retryAt - clock_.now(), std::chrono::nanoseconds(1000000), wait);
  pause(wait);
}

void SinkRunner::deliver(PendingBatch&& pb) {
  while (true) {
    if (pastHardDeadline()) {
      buffer_.pushFront(std::move(pb));
      return;
    }
    if (yieldsTrial(pb)) {
      buffer_.pushFront(std::move(pb));
      pauseForBreaker();
      return;
    }
    const circuit::Permit permit = breaker_->tryAcquire();
    if (!permit) {
      const Action action = decideRefused(pb, rules_);
      if (action.then == Action::Then::Drop) {
        drop(pb, action.dropReason);
        return;
      }
      // Keep the batch at the head of its lane and wait for the trial time (or an operator's change).
      buffer_.pushFront(std::move(pb));
      pauseForBreaker();
      return;
    }
    const auto sendDeadline = std::min(Clock::now() + cfg_.timeout, hardDeadline());
    if (permit.state == circuit::State::HalfOpen && breaker_->options().probe) {
      stats_.probes.fetch_add(1, std::memory_order_relaxed);
      const auto started = clock_.now();
      const sinks::SendResult probed = sendGuarded(nullptr, sendDeadline);
      const Outcome outcome = judgeProbe(probed);
      if (outcome != Outcome::Success) {
        breaker_->onResult(permit, outcome, clock_.now() - started, probed.retryAfter);
        reportFailure(probed, pb);
        buffer_.pushFront(std::move(pb));
        return;
      }
    }
    if (pb.attempts > 0) stats_.retries.fetch_add(1, std::memory_order_relaxed);
    pb.attempts += 1;
    stats_.sends.fetch_add(1, std::memory_order_relaxed);
    stats_.batchesInFlight.fetch_add(1, std::memory_order_relaxed);
    const auto started = clock_.now();
    const sinks::SendResult result = sendGuarded(&pb.batch, sendDeadline);
    const auto took = clock_.now() - started;
    stats_.batchesInFlight.fetch_sub(1, std::memory_order_relaxed);
    const Action action = decide(result, pb, rules_, jitter());
    const SendVerdict& verdict = action.verdict;
    breaker_->onResult(permit, verdict.breaker, took, result.retryAfter);
    if (result.outcome != sinks::Outcome::Success || !result.failures.empty()) reportFailure(result, pb);

    stats_.delivered.fetch_add(verdict.delivered, std::memory_order_relaxed);
    if (!verdict.deadLetter.empty()) deadLetterRecords(pb, verdict.deadLetter);
    switch (action.then) {
      case Action::Then::Finish:
        pb.finish();
        return;
      case Action::Then::Drop:
        drop(pb, action.dropReason);
        return;
      case Action::Then::Split: {
        stats_.splits.fetch_add(1, std::memory_order_relaxed);
        std::vector<std::uint32_t> first, second;
        for (std::uint32_t i = 0; i < pb.batch.size(); ++i) (i < pb.batch.size() / 2 ? first : second).push_back(i);
        PendingBatch tail{subBatch(pb.batch, second), {}, pb.lane, pb.sequence, 0, pb.rounds, pb.formedAt};
        for (const auto& c : pb.claims) tail.claims.push_back(c.another());
        pb.batch = subBatch(pb.batch, first);
        pb.attempts = 0;
        buffer_.pushFront(std::move(tail));
        buffer_.pushFront(std::move(pb));
        return;
      }
      case Action::Then::WaitForBreaker:
        if (!verdict.retryAll) pb.batch = subBatch(pb.batch, verdict.retry);
        pb.attempts = 0;
        pb.rounds += 1;
        buffer_.pushFront(std::move(pb));
        pause(action.wait);
        return;
      case Action::Then::Retry:
        if (!verdict.retryAll) pb.batch = subBatch(pb.batch, verdict.retry);
        if (!pause(action.wait)) {
          buffer_.pushFront(std::move(pb));
          return;
        }
        break;
    }
  }
}

std::vector<PendingBatch> SinkRunner::halt(base::Deadline deadline) {
  started_ = false;
  held_ = false;  // stopping drains what it holds, replacement or not
  // Workers drain the buffer until the deadline; a worker waiting on an open breaker gives up then.
  hardDeadlineNs_ = nanos(deadline);
  abandonIntake();
  wakePaused();
  buffer_.wake();
  // The batcher flushes its open batches; with when_full: block it may wait for room that never
  // comes (breaker open), so the buffer is closed at the deadline to release it.
  while (!batcherDone_.load() && !pastHardDeadline()) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  if (!batcherDone_.load()) buffer_.close();
  batcherThread_.join();
  for (auto& w : workers_) w.join();
  workers_.clear();
  buffer_.close();
  return buffer_.drain();
}

void SinkRunner::stop(base::Deadline deadline) {
  if (!started_) return;
  std::uint64_t unsent = 0;
  for (auto& pb : halt(deadline)) unsent += pb.batch.size();  // unfinished: read again after a restart
  stats_.unsentAtShutdown.fetch_add(unsent, std::memory_order_relaxed);
  if (unsent > 0) {
    log::event(*log::component("sink"), spdlog::level::warn, "sink_unsent_at_shutdown",
               {{"sink", cfg_.name},
                {"records", unsent},
                {"breaker", circuit::stateName(breaker_->state())},
                {"hint", "file records are read again after a restart; raise agent.shutdown_timeout to wait longer"}});
  }
  logSummaries(true);
  sink_->stop(deadline);
}

void SinkRunner::retire(base::Deadline deadline) {
  if (!started_) return;
  std::uint64_t unsent = 0;
  for (auto& pb : halt(deadline)) {
    unsent += pb.batch.size();
    drop(pb, DropReason::SinkRemoved);
  }
  if (unsent > 0) {
    log::event(*log::component("sink"), spdlog::level::warn, "sink_removed_with_backlog",
               {{"sink", cfg_.name},
                {"records", unsent},
                {"breaker", circuit::stateName(breaker_->state())},
                {"hint", "a reload removed this sink; what it had not sent by the reload's deadline is dropped"}});
  }
  logSummaries(true);
  sink_->stop(deadline);
}

std::vector<PendingBatch> SinkRunner::release() {
  if (!started_) return {};
  // Nothing new is sent: the send in flight ends (within `timeout`) and comes back to the buffer
  // unless it succeeded; the batcher's open batches are admitted whatever the buffer's bound.
  std::vector<PendingBatch> held = halt(Clock::now());
  logSummaries(true);
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
  stats_.received.fetch_add(records, std::memory_order_relaxed);
  held_ = false;
  wakePaused();
}

}  // namespace logcapture::agent
