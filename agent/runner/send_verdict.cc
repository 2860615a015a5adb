#include "agent/runner/send_verdict.h"

#include <algorithm>
#include <cmath>

namespace logcapture::agent {

using sinks::Outcome;

namespace {

// Some records failed while the others were delivered: the permanent ones go to the dead letter,
// the rest are sent again alone.
SendVerdict judgePartial(const sinks::SendResult& result, std::size_t size) {
  SendVerdict v;
  std::vector<bool> failed(size, false);
  bool retriable = false;
  bool throttled = false;
  for (const auto& f : result.failures) {
    if (f.index >= size || failed[f.index]) continue;  // not a record of this batch, or listed twice
    failed[f.index] = true;
    switch (f.outcome) {
      case Outcome::Permanent:
        v.deadLetter.emplace_back(f.index, f.error);
        continue;
      case Outcome::Retriable:
        retriable = true;
        break;
      case Outcome::Throttled:
        throttled = true;
        break;
      case Outcome::Success:  // a failure that says success: sent again rather than lost
        break;
    }
    v.retry.push_back(f.index);
  }
  std::sort(v.deadLetter.begin(), v.deadLetter.end());
  std::sort(v.retry.begin(), v.retry.end());
  v.delivered = size - v.deadLetter.size() - v.retry.size();
  Outcome call = result.outcome;
  if (call == Outcome::Success && v.delivered == 0) {
    if (retriable) {
      call = Outcome::Retriable;
    } else if (throttled) {
      call = Outcome::Throttled;
    }
  }
  v.breaker = breakerOutcome(call);
  return v;
}

}  // namespace

circuit::Outcome breakerOutcome(sinks::Outcome outcome) {
  // No default: a new sink outcome fails to compile until the breaker is told what it means.
  switch (outcome) {
    case Outcome::Success:
      return circuit::Outcome::Success;
    case Outcome::Retriable:
      return circuit::Outcome::Retriable;
    case Outcome::Throttled:
      return circuit::Outcome::Throttled;
    case Outcome::Permanent:
      return circuit::Outcome::Permanent;
  }
  return circuit::Outcome::Retriable;
}

SendVerdict judge(const sinks::SendResult& result, std::size_t size) {
  if (!result.failures.empty() && !result.tooLarge) return judgePartial(result, size);
  SendVerdict v;
  v.breaker = breakerOutcome(result.outcome);
  switch (result.outcome) {
    case Outcome::Success:
      v.delivered = size;
      return v;
    case Outcome::Retriable:
    case Outcome::Throttled:
      v.retryAll = size > 0;
      return v;
    case Outcome::Permanent:
      if (result.tooLarge && size > 1) {
        v.split = true;
        return v;
      }
      v.deadLetter.reserve(size);
      for (std::uint32_t i = 0; i < size; ++i) v.deadLetter.emplace_back(i, result.error);
      return v;
  }
  return v;
}

DeliveryRules DeliveryRules::of(const config::SinkConfig& cfg) {
  return DeliveryRules{.maxAttempts = cfg.retry.maxAttempts,
                       .initialBackoff = cfg.retry.initialBackoff,
                       .maxBackoff = cfg.retry.maxBackoff,
                       .maxRetryAfter = cfg.breaker.maxOpenTimeout,
                       .dropWhileOpen = cfg.buffer.onOpen == config::OnOpen::Drop};
}

Action decide(const sinks::SendResult& result, const PendingBatch& batch, const DeliveryRules& rules, double jitter) {
  Action a;
  a.verdict = judge(result, batch.batch.size());
  if (a.verdict.done()) return a;
  if (a.verdict.split) {
    a.then = Action::Then::Split;
    return a;
  }
  // Capped exponential backoff with full jitter: uniform in [0, min(max, initial * 2^(attempt-1))].
  // Once a batch has used up its attempts, it waits at the longest backoff between rounds.
  const std::uint32_t attempt = batch.rounds > 0 ? rules.maxAttempts + batch.attempts : batch.attempts;
  const double ceiling =
      std::min(double(rules.maxBackoff.count()),
               double(rules.initialBackoff.count()) * std::pow(2.0, double(std::min<std::uint32_t>(attempt, 62)) - 1));
  const auto backoff = std::chrono::nanoseconds(static_cast<std::int64_t>(jitter * ceiling));
  a.wait = retryDelay(backoff, result.retryAfter, rules.maxRetryAfter);
  // Its failures opened the breaker, or will: the breaker decides when it goes again.
  a.then = batch.attempts >= rules.maxAttempts ? Action::Then::WaitForBreaker : Action::Then::Retry;
  return a;
}

Action decideRefused(const PendingBatch&, const DeliveryRules& rules) {
  Action a;
  a.verdict.breaker = circuit::Outcome::Success;  // not heard: no call was made
  if (rules.dropWhileOpen) {
    a.then = Action::Then::Drop;
    a.dropReason = DropReason::BreakerOpen;
  } else {
    a.then = Action::Then::WaitForBreaker;
  }
  return a;
}

circuit::Outcome judgeProbe(const sinks::SendResult& probe) {
  return probe.outcome == Outcome::Success ? circuit::Outcome::Success : circuit::Outcome::Retriable;
}

std::chrono::nanoseconds retryDelay(std::chrono::nanoseconds backoff,
                                    std::optional<std::chrono::milliseconds> retryAfter, std::chrono::nanoseconds cap) {
  if (!retryAfter) return backoff;
  return std::max(backoff, std::min<std::chrono::nanoseconds>(*retryAfter, cap));
}

}  // namespace logcapture::agent
