#include "agent/runner/sender.h"

#include <algorithm>

namespace logcapture::agent {
namespace {

using Clock = std::chrono::steady_clock;
using circuit::Outcome;

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

Sender::Sender(Parts parts, DeliveryRules rules, std::chrono::nanoseconds timeout)
    : parts_(parts), rules_(rules), timeout_(timeout), random_(std::random_device{}()) {}

void Sender::deadLetterRecords(PendingBatch& pb, const std::vector<std::pair<std::uint32_t, std::string>>& failed) {
  const DeadLetter::Appended appended = parts_.deadLetter.append(pb.batch, failed);
  parts_.report.stats().deadLettered.fetch_add(appended.written, std::memory_order_relaxed);
  parts_.report.dropped(appended.overCap, DropReason::DeadLetterFull);
  parts_.report.dropped(appended.unwritable, DropReason::DeadLetterFailed);
}

sinks::SendResult Sender::sendGuarded(const sinks::Batch* batch, base::Deadline deadline) {
  // A sink is not to throw; one that does must not take the worker, and the trial slot its permit
  // holds, with it: the call failed, and the breaker hears so.
  std::string what;
  try {
    return batch != nullptr ? parts_.sink.send(*batch, deadline) : parts_.sink.probe(deadline);
  } catch (const std::exception& e) {
    what = e.what();
  } catch (...) {
    what = "an exception of unknown type";
  }
  parts_.report.stats().sendExceptions.fetch_add(1, std::memory_order_relaxed);
  return sinks::SendResult::failure(sinks::Outcome::Retriable,
                                    std::string(batch != nullptr ? "send" : "probe") + " threw: " + what);
}

bool Sender::yieldsTrial(const PendingBatch& pb) const {
  // A metrics-only breaker holds nothing back: every batch goes, as with a closed one.
  if (pb.rounds == 0 || parts_.breaker.options().mode == circuit::Mode::MetricsOnly) return false;
  const auto state = parts_.breaker.state();
  if (state != circuit::State::Open && state != circuit::State::HalfOpen) return false;
  // A batch that keeps failing would fail the trial again and keep the breaker open for every lane;
  // fresher batches try first, and once they close the breaker this one tries again.
  return parts_.buffer.freshBatchBesides(pb.lane);
}

void Sender::pauseForBreaker() {
  const auto retryAt = parts_.breaker.nextRetryAt();
  auto wait = std::chrono::nanoseconds(std::chrono::milliseconds(200));
  if (retryAt) wait = std::clamp(*retryAt - parts_.clock.now(), std::chrono::nanoseconds(1000000), wait);
  parts_.pauses.pause(wait);
}

double Sender::jitter() {
  std::lock_guard lock(randomMutex_);
  return std::uniform_real_distribution<double>(0, 1)(random_);
}

bool Sender::failOver(PendingBatch& pb, std::uint32_t hops) {
  if (fallback_ == nullptr || !fallback_->linked()) return false;
  const auto state = parts_.breaker.state();
  if (state != circuit::State::Open && state != circuit::State::ForcedOpen) return false;
  // A disk buffer writes the batch first, as for a batch that waits outside it: the fallback holds it in
  // memory, and stdin lines or lines of a deleted file must survive a crash meanwhile.
  parts_.buffer.secure(pb);
  return fallback_->handOver(
      pb, state == circuit::State::ForcedOpen ? FailoverReason::ForcedOpen : FailoverReason::BreakerOpen, hops);
}

void Sender::run(PendingBatch&& pb) {
  SinkStats& stats = parts_.report.stats();
  circuit::Breaker& breaker = parts_.breaker;
  SinkBuffer& buffer = parts_.buffer;
  while (true) {
    if (parts_.pauses.pastHardDeadline()) {
      buffer.pushFront(std::move(pb));
      return;
    }
    if (yieldsTrial(pb)) {
      if (failOver(pb)) return;  // the fresher lanes still take the trials
      buffer.pushFront(std::move(pb));
      pauseForBreaker();
      return;
    }
    // A turn of the send limit first: a ramp or an adaptive limit may make the batch wait.
    const SendLimit::Ticket ticket = parts_.gate.pass(parts_.pauses);
    if (!ticket.valid) {  // past the stop's deadline
      buffer.pushFront(std::move(pb));
      return;
    }
    const circuit::Permit permit = breaker.tryAcquire();
    if (!permit) {
      parts_.gate.cancel(ticket);
      if (failOver(pb)) return;
      const Action action = decideRefused(pb, rules_);
      if (action.then == Action::Then::Drop) {
        parts_.report.drop(pb, action.dropReason);
        return;
      }
      // Keep the batch at the head of its lane and wait for the trial time (or an operator's change).
      buffer.pushFront(std::move(pb));
      pauseForBreaker();
      return;
    }
    const auto sendDeadline = std::min(Clock::now() + timeout_, parts_.pauses.hardDeadline());
    // A bypassed permit is no trial: the probe is for the calls that decide the breaker's state.
    if (permit.state == circuit::State::HalfOpen && !permit.bypassed && breaker.options().probe) {
      stats.probes.fetch_add(1, std::memory_order_relaxed);
      const auto started = parts_.clock.now();
      const sinks::SendResult probed = sendGuarded(nullptr, sendDeadline);
      const Outcome outcome = judgeProbe(probed);
      if (outcome != Outcome::Success) {
        parts_.gate.cancel(ticket);  // the trial's business: no batch went
        breaker.onResult(permit, outcome, parts_.clock.now() - started, probed.retryAfter);
        parts_.report.sendFailed(probed, pb.batch.size(), pb.attempts);
        buffer.pushFront(std::move(pb));
        return;
      }
    }
    if (pb.attempts > 0) stats.retries.fetch_add(1, std::memory_order_relaxed);
    pb.attempts += 1;
    stats.sends.fetch_add(1, std::memory_order_relaxed);
    stats.batchesInFlight.fetch_add(1, std::memory_order_relaxed);
    const auto started = parts_.clock.now();
    const sinks::SendResult result = sendGuarded(&pb.batch, sendDeadline);
    const auto took = parts_.clock.now() - started;
    stats.batchesInFlight.fetch_sub(1, std::memory_order_relaxed);
    const Action action = decide(result, pb, rules_, jitter());
    const SendVerdict& verdict = action.verdict;
    breaker.onResult(permit, verdict.breaker, took, result.retryAfter);
    parts_.gate.finish(ticket, verdict.breaker, took);
    if (result.outcome != sinks::Outcome::Success || !result.failures.empty()) {
      parts_.report.sendFailed(result, pb.batch.size(), pb.attempts);
    }

    stats.delivered.fetch_add(verdict.delivered, std::memory_order_relaxed);
    if (!verdict.deadLetter.empty()) deadLetterRecords(pb, verdict.deadLetter);
    switch (action.then) {
      case Action::Then::Finish:
        pb.finish();
        if (fallback_ != nullptr) fallback_->delivered();
        return;
      case Action::Then::Drop:
        parts_.report.drop(pb, action.dropReason);
        return;
      case Action::Then::Split: {
        stats.splits.fetch_add(1, std::memory_order_relaxed);
        std::vector<std::uint32_t> first, second;
        for (std::uint32_t i = 0; i < pb.batch.size(); ++i) (i < pb.batch.size() / 2 ? first : second).push_back(i);
        PendingBatch tail = pb.part(subBatch(pb.batch, second), pb.lane);
        pb.batch = subBatch(pb.batch, first);
        pb.attempts = 0;
        buffer.pushFront(std::move(tail));
        buffer.pushFront(std::move(pb));
        return;
      }
      case Action::Then::WaitForBreaker:
        if (!verdict.retryAll) {
          pb.batch = subBatch(pb.batch, verdict.retry);
          pb.narrowed();
        }
        pb.attempts = 0;
        pb.rounds += 1;
        buffer.pushFront(std::move(pb));
        parts_.pauses.pause(action.wait);
        return;
      case Action::Then::Retry:
        if (!verdict.retryAll) {
          pb.batch = subBatch(pb.batch, verdict.retry);
          pb.narrowed();
        }
        buffer.secure(pb);  // it waits here, out of the buffer: as safe as there
        if (!parts_.pauses.pause(action.wait)) {
          buffer.pushFront(std::move(pb));
          return;
        }
        break;
    }
  }
}

}  // namespace logcapture::agent
