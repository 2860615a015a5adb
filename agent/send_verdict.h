#pragma once

// What the sink runner does with the answer to one send or probe, as pure functions of the answer and
// the batch: which records were delivered, which go to the dead letter, which are sent again (whole,
// in part or in halves), what the breaker hears, and how long to wait first. The runner
// (agent/sink_runner.cc) carries the verdict out; nothing here has side effects or takes a lock.

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "circuit/breaker.h"
#include "sinks/sink.h"

namespace logcapture::agent {

struct SendVerdict {
  // What the breaker hears about the call. A call in which the destination took no record and refused
  // some for a reason of its own (retriable, throttled) is a failure of that kind, whatever the call's
  // outcome said: otherwise a batch whose records all fail one by one could never open the breaker.
  circuit::Outcome breaker = circuit::Outcome::Success;
  std::uint64_t delivered = 0;  // records the destination accepted
  // Records refused for good, with why: they go to the dead letter.
  std::vector<std::pair<std::uint32_t, std::string>> deadLetter;
  bool retryAll = false;             // send the whole batch again
  std::vector<std::uint32_t> retry;  // or only these records, in batch order
  bool split = false;                // the request was too large: send each half on its own

  bool done() const { return !retryAll && retry.empty() && !split; }
};

// What the breaker hears of a sink's outcome: the one place the two vocabularies meet.
circuit::Outcome breakerOutcome(sinks::Outcome outcome);

// The verdict on `result`, the answer to a send of a batch of `size` records.
SendVerdict judge(const sinks::SendResult& result, std::size_t size);

// What the breaker hears about a probe: it carries no records, so any answer but a success says the
// destination is not ready for a batch, and the trial fails (the breaker opens again, for longer).
// Were a refusal (401, 404, ERR) or a throttle neutral, the trial slot would free at once and the
// worker probe again in a loop.
circuit::Outcome judgeProbe(const sinks::SendResult& probe);

// The wait before a batch is sent again: the backoff drawn for this attempt, or the destination's
// Retry-After when longer; Retry-After is capped at `cap` (breaker.max_open_timeout, as the breaker
// caps it), so one bogus header cannot park a worker for a day.
std::chrono::nanoseconds retryDelay(std::chrono::nanoseconds backoff,
                                    std::optional<std::chrono::milliseconds> retryAfter, std::chrono::nanoseconds cap);

}  // namespace logcapture::agent
