#pragma once

// The executor of a sink's runner: it carries out, on a worker's thread, what send_verdict.h decides.
// One call to run() takes a batch through the send path in a fixed order:
//   send limit's turn (send_limit.h) -> breaker permit -> probe (half-open, breaker.probe) -> send within `timeout` ->
//   decide() -> the breaker hears the outcome -> the batch is finished, dead-lettered, dropped, split, or retried after
//   a capped exponential backoff with full jitter.
// A batch that must wait (the breaker refuses it, its attempts are used up, the stop's deadline passed)
// goes back to the head of its lane in the buffer, its claims intact. A metrics-only breaker refuses
// nothing but a force-open: its batches go, retry and wait as with a closed breaker. A sink with a
// fallback hands a refused batch to it while the breaker is open or forced open (not half-open: its
// trials are under way), and keeps it as above when the fallback refuses.
//
// Thread-safety: run() is called by every worker at once, one batch each. The sink, the breaker, the
// send gate, the buffer, the dead letter, the report and the pauses are thread-safe; the jitter's generator has a lock.

#include <chrono>
#include <cstdint>
#include <mutex>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "agent/runner/dead_letter.h"
#include "agent/runner/fallback.h"
#include "agent/runner/pauses.h"
#include "agent/runner/send_limit.h"
#include "agent/runner/send_verdict.h"
#include "agent/runner/sink_buffer.h"
#include "agent/runner/sink_report.h"
#include "base/deadline.h"
#include "circuit/breaker.h"
#include "sinks/sink.h"

namespace logcapture::agent {

class Sender {
 public:
  // What the executor acts on: the runner's, which outlive it.
  struct Parts {
    sinks::Sink& sink;
    circuit::Breaker& breaker;
    circuit::Clock& clock;  // the breaker's: a call's duration is measured on it
    SinkBuffer& buffer;
    DeadLetter& deadLetter;
    SinkReport& report;
    Pauses& pauses;
    SendGate& gate;  // every send passes it, and tells it the outcome
  };
  Sender(Parts parts, DeliveryRules rules, std::chrono::nanoseconds timeout);

  // While the breaker refuses sends for being open, batches go to `link`'s sink (agent/runner/fallback.h)
  // rather than wait or drop. Called before the workers start; `link` must outlive the sender.
  void failOverTo(FallbackLink& link) { fallback_ = &link; }
  // Hands `pb` to the fallback when the breaker is open or forced open; true when taken (`pb` moved from).
  // `hops`: links followed before this sink's (a fallback passing on what it was offered).
  bool failOver(PendingBatch& pb, std::uint32_t hops = 0);

  // Sends `pb` until it is finished (every record delivered, dead-lettered or dropped, its claims
  // released) or must wait, back at the head of its lane. Blocks for the sends and the backoffs.
  void run(PendingBatch&& pb);

 private:
  // The send or probe, an exception turned into a retriable failure.
  sinks::SendResult sendGuarded(const sinks::Batch* batch, base::Deadline deadline);
  // True when this exhausted batch should leave the breaker's trial calls to a fresher lane.
  bool yieldsTrial(const PendingBatch& pb) const;
  // Waits for the breaker's next trial time, at most 200 ms (or a transition, or the deadline).
  void pauseForBreaker();
  void deadLetterRecords(PendingBatch& pb, const std::vector<std::pair<std::uint32_t, std::string>>& failed);
  // Uniform in [0, 1), for the backoff's jitter.
  double jitter();

  Parts parts_;
  FallbackLink* fallback_ = nullptr;
  const DeliveryRules rules_;
  const std::chrono::nanoseconds timeout_;
  std::mutex randomMutex_;
  std::minstd_rand random_;
};

// A batch of the records `indexes` of `batch`, their encodings copied.
sinks::Batch subBatch(const sinks::Batch& batch, const std::vector<std::uint32_t>& indexes);

}  // namespace logcapture::agent
