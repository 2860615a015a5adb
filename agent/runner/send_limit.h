#pragma once

// How many of a sink's batches may be in flight at once, and how often one may start: the sink's send
// limit, shared by its workers.
//
// SendLimit is the decision, a pure function of the sends' outcomes and latencies and of the time the
// caller passes in (no clock, no lock, no thread: tested on made-up times). It is an AIMD limit:
// - a ramp, after the breaker closes from half-open (breaker.ramp): the limit restarts at one batch in
//   flight and a paced start rate of kRampStartRate batches/s, both doubling per round of successes
//   (slow start) until the first slow call, throttle or failure halves them; from then on they grow
//   additively. Floors rising with time bring the sink to full speed when the ramp's time is up,
//   whatever the destination answered, so a ramp never stalls a sink.
// - workers: auto: the limit adapts all the time, between 1 and max_workers: additive increase while
//   latency holds, multiplicative decrease when a call takes more than kSlowFactor times the lowest
//   latency seen lately, is throttled or fails. Pacing is for ramps only.
// - a fixed number of workers outside a ramp: every worker may send, at once (the limit is off).
// A decrease answers one congestion event: the outcomes of sends started before it decrease nothing more.
//
// SendGate carries the decision out for the worker threads: pass() waits for a turn, first come first
// served (so a lane draining a backlog does not starve a lane of new records), and the worker tells the
// outcome with finish() or, when no send took place (the breaker refused), cancel().
//
// NOTE on threads: SendLimit is not thread-safe; SendGate guards its SendLimit with mutex_ and may be
// called from any thread.

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <optional>
#include <set>

#include "agent/runner/pauses.h"
#include "circuit/breaker.h"

namespace logcapture::agent {

struct SendLimitOptions {
  std::uint32_t maxLimit = 1;        // the sink's lanes (workers, or max_workers with auto)
  bool adaptive = false;             // workers: auto
  std::chrono::nanoseconds ramp{0};  // breaker.ramp; zero: no ramp
};

class SendLimit {
 public:
  using TimePoint = std::chrono::steady_clock::time_point;
  // The first pace of a ramp, batches/s, and its floor after a decrease.
  static constexpr double kRampStartRate = 2;
  // A call taking more than this times the lowest latency seen lately (plus kSlowSlack) is slow.
  static constexpr double kSlowFactor = 2;
  static constexpr std::chrono::nanoseconds kSlowSlack = std::chrono::milliseconds(2);
  // The lowest latency is the least of two spans of this length, the current and the last.
  static constexpr std::chrono::nanoseconds kLatencySpan = std::chrono::minutes(5);

  struct Ticket {
    TimePoint started{};
    TimePoint previousStart{};  // given back by cancel()
    bool busy = false;          // the sink used at least half its limit: a success may raise it
    bool valid = false;
  };
  struct Figures {
    std::uint32_t limit = 0;  // batches that may be in flight now
    std::uint32_t inFlight = 0;
    double rate = 0;  // paced starts per second during a ramp; 0: not paced
    bool ramping = false;
  };

  explicit SendLimit(SendLimitOptions options);

  // When the next send may start: now or later (the pace), or never until a send in flight ends (nullopt).
  std::optional<TimePoint> nextStart(TimePoint now) const;
  // Counts a send starting at `now`; call it only when nextStart(now) <= now.
  Ticket start(TimePoint now);
  // A send of `ticket` ended: its outcome, as the breaker heard it, and how long it took.
  void finish(const Ticket& ticket, circuit::Outcome outcome, std::chrono::nanoseconds latency, TimePoint now);
  // The send of `ticket` did not take place: its slot and its turn of the pace are given back.
  void cancel(const Ticket& ticket, TimePoint now);
  // The breaker closed from half-open: a ramp starts (when breaker.ramp is set). During a ramp, the
  // ramp slows down instead and keeps its end.
  void startRamp(TimePoint now);

  Figures figures(TimePoint now) const;
  std::uint32_t limit(TimePoint now) const;
  bool ramping(TimePoint now) const;

 private:
  double rampProgress(TimePoint now) const;  // 0 at the ramp's start .. 1 at its end, 1 without a ramp
  std::chrono::nanoseconds interval(TimePoint now) const;
  bool slow(std::chrono::nanoseconds latency) const;
  void noteLatency(std::chrono::nanoseconds latency, TimePoint now);
  void increase(bool busy);
  void decrease(double factor, TimePoint now);
  // Ends a ramp whose time is up.
  void settle(TimePoint now);

  const SendLimitOptions options_;
  double limit_;                        // the AIMD limit, in batches in flight
  double rate_ = kRampStartRate;        // the AIMD pace of a ramp, batches/s
  bool slowStart_;                      // doubling until the first decrease
  std::optional<TimePoint> rampStart_;  // set from a ramp's start until settle() ends it
  TimePoint lastStart_{};
  TimePoint lastDecrease_{};
  std::uint32_t inFlight_ = 0;
  std::optional<std::chrono::nanoseconds> lowCurrent_, lowLast_;
  std::optional<TimePoint> spanStart_;
};

class SendGate {
 public:
  explicit SendGate(SendLimitOptions options) : limit_(options) {}

  // Waits for a turn to send; an invalid ticket when the pauses' hard deadline (a stop's) came first.
  SendLimit::Ticket pass(const Pauses& pauses);
  void finish(const SendLimit::Ticket& ticket, circuit::Outcome outcome, std::chrono::nanoseconds latency);
  void cancel(const SendLimit::Ticket& ticket);
  void startRamp();
  // Waiters in pass() look again at the hard deadline (a stop set it).
  void wake();
  SendLimit::Figures figures() const;

 private:
  void advance();  // under mutex_: the next turn not given up may go

  mutable std::mutex mutex_;
  std::condition_variable changed_;
  SendLimit limit_;                    // guarded by mutex_
  std::uint64_t nextTurn_ = 0;         // guarded by mutex_: the turn handed to the next caller of pass()
  std::uint64_t serving_ = 0;          // guarded by mutex_: the turn that may go next
  std::set<std::uint64_t> abandoned_;  // guarded by mutex_: turns whose callers gave up
};

}  // namespace logcapture::agent
