#include "agent/send_verdict.h"

#include <algorithm>

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

circuit::Outcome judgeProbe(const sinks::SendResult& probe) {
  return probe.outcome == Outcome::Success ? circuit::Outcome::Success : circuit::Outcome::Retriable;
}

std::chrono::nanoseconds retryDelay(std::chrono::nanoseconds backoff,
                                    std::optional<std::chrono::milliseconds> retryAfter, std::chrono::nanoseconds cap) {
  if (!retryAfter) return backoff;
  return std::max(backoff, std::min<std::chrono::nanoseconds>(*retryAfter, cap));
}

}  // namespace logcapture::agent
