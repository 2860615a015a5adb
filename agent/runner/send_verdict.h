#pragma once

// What becomes of a batch after a send, or after the breaker refused one, as pure functions of the
// answer, the batch and the sink's rules: which records were delivered, which go to the dead letter,
// which are sent again (whole, in part or in halves) and after how long, which are dropped and why,
// and what the breaker hears. The sender (agent/runner/sender.h) carries the action out; nothing here
// has side effects or takes a lock.

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "agent/runner/sink_buffer.h"
#include "circuit/breaker.h"
#include "config/config.h"
#include "sinks/sink.h"

namespace logcapture::agent {

// Why records were dropped; each has its own counter and metric label.
enum class DropReason : std::uint8_t {
  BreakerOpen,       // on_open: drop, while the breaker refuses sends
  BufferFull,        // when_full: drop_newest / drop_oldest, the buffer full (breaker open or sink slow)
  DeadLetterFull,    // refused for good, and the dead letter is at dead_letter.max_bytes
  DeadLetterFailed,  // refused for good, and the dead letter could not be written (disk full, EACCES)
  SinkRemoved,       // held by a sink a reload removed, unsent by the reload's deadline
};
inline constexpr std::size_t kDropReasons = 5;
constexpr std::string_view dropReasonName(DropReason r) {
  switch (r) {
    case DropReason::BreakerOpen:
      return "breaker_open";
    case DropReason::BufferFull:
      return "buffer_full";
    case DropReason::DeadLetterFull:
      return "dead_letter_full";
    case DropReason::DeadLetterFailed:
      return "dead_letter_failed";
    case DropReason::SinkRemoved:
      return "sink_removed";
  }
  return "?";
}

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

// The rules of a sink's config that decide what becomes of its batches.
struct DeliveryRules {
  std::uint32_t maxAttempts = 3;              // retry.max_attempts
  std::chrono::nanoseconds initialBackoff{};  // retry.initial_backoff
  std::chrono::nanoseconds maxBackoff{};      // retry.max_backoff
  std::chrono::nanoseconds maxRetryAfter{};   // breaker.max_open_timeout: the cap on a Retry-After
  bool dropWhileOpen = false;                 // buffer.on_open: drop

  static DeliveryRules of(const config::SinkConfig& cfg);
};

// What becomes of a batch.
struct Action {
  enum class Then : std::uint8_t {
    Finish,          // every record is delivered, dead-lettered or dropped: release the batch's claims
    Retry,           // send the records left again after `wait`, on this worker
    WaitForBreaker,  // attempts used up: back to the head of its lane, where the breaker decides when it
                     // goes again; the worker waits `wait` first
    Split,           // the request was too large: send each half on its own, the first half first
    Drop,            // drop every record left, counted under `dropReason`
  };
  SendVerdict verdict;  // what the answer says of the records, and what the breaker hears
  Then then = Then::Finish;
  std::chrono::nanoseconds wait{0};
  DropReason dropReason = DropReason::BreakerOpen;
};

// The action after a send of `batch` answered with `result`. `batch` is as it was sent: its attempts
// count this send. `jitter`, uniform in [0, 1), draws the backoff: capped exponential with full jitter.
Action decide(const sinks::SendResult& result, const PendingBatch& batch, const DeliveryRules& rules, double jitter);
// The action when the breaker refused to send `batch`: dropped (on_open: drop) or kept at the head of
// its lane until the breaker lets a call through.
Action decideRefused(const PendingBatch& batch, const DeliveryRules& rules);

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
