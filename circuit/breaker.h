#pragma once

// A circuit breaker for one sink: ask for a permit before a call, report the outcome after it.
//
// NOTE on threads:
// - Any thread may call tryAcquire(), onResult(), release(), state(), nextRetryAt() and snapshot(),
//   and the operator calls forceOpen(), forceClose(), reset() and resumeAuto(), all concurrently.
// - The state, the generation and the consecutive-failure count share one atomic word (word_).
//   In closed and disabled states tryAcquire() only loads it, and a success with no window configured
//   only loads it and bumps a relaxed counter: no lock on the fast path. A failure, and the first
//   success after failures, update the word with a compare-and-swap that also proves the permit's
//   generation current; the failure that reaches the threshold takes mutex_ to open the breaker.
//   Open and forced-open rejections are lock-free too, and so are a metrics-only breaker's bypasses;
//   half-open takes mutex_ for its trial slots.
// - mutex_ guards every transition and everything only transitions touch: the half-open trial
//   counts, the backoff level, the jitter's random state, the time of the last transition, the
//   time spent in each state, the per-edge transition counts and the queue of transitions not yet
//   delivered to listeners.
// - With a sliding window configured, each counted result takes mutex_ to update the window: a window
//   is a ring of calls or of time buckets whose eviction and rate must agree, which a lock keeps simple
//   and exact; resilience4j makes the same choice. Without a window the result path stays lock-free.
// - Listeners run after mutex_ is released, one at a time and in transition order, on the thread that
//   made the transition or on a thread already delivering earlier ones. A listener may call any method
//   of the breaker; transitions it causes are delivered after it returns.
//
// What a caller may rely on:
// - A permit's result counts only if no transition happened since the permit was issued (generations):
//   a late success cannot close an open breaker, a late failure cannot count against a fresh close.
// - In half-open at most half_open_max_calls trial permits are out at once, counted per half-open
//   period; a throttled, permanent or released trial frees its slot for another trial.
// - Each transition is delivered to every listener exactly once.
// - Mode::MetricsOnly refuses no call but in forced-open: what an enforcing breaker would refuse is
//   admitted as a bypass, whose result is counted in the totals but moves no state. The states,
//   transitions and trial decisions are then exactly those of an enforcing breaker that saw the
//   same admitted calls.
//
// IMPORTANT: the Clock passed to the constructor must outlive the breaker.

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string_view>
#include <vector>

#include "circuit/clock.h"

namespace logcapture::config {
struct BreakerConfig;
}

namespace logcapture::circuit {

enum class State : std::uint8_t { Closed, Open, HalfOpen, ForcedOpen, Disabled };
inline constexpr std::size_t kStateCount = 5;

// The names used in events, metrics labels and the admin API.
constexpr std::string_view stateName(State s) {
  switch (s) {
    case State::Closed:
      return "closed";
    case State::Open:
      return "open";
    case State::HalfOpen:
      return "half_open";
    case State::ForcedOpen:
      return "forced_open";
    case State::Disabled:
      return "disabled";
  }
  return "?";
}

// How a call ended, as the sink classified it.
enum class Outcome : std::uint8_t {
  Success,
  Retriable,  // counts against the breaker
  Throttled,  // counted and reported; counts against the breaker only with tripOnThrottle
  Permanent,  // the request was bad, not the sink: never counts against the breaker
};

constexpr std::string_view outcomeName(Outcome o) {
  switch (o) {
    case Outcome::Success:
      return "success";
    case Outcome::Retriable:
      return "retriable";
    case Outcome::Throttled:
      return "throttled";
    case Outcome::Permanent:
      return "permanent";
  }
  return "?";
}

// Why a transition happened.
enum class Cause : std::uint8_t {
  ConsecutiveFailures,  // closed -> open
  FailureRate,          // closed -> open, sliding window
  SlowCallRate,         // closed -> open, sliding window
  TrialFailure,         // half_open -> open
  OpenTimeoutElapsed,   // open -> half_open
  TrialsSucceeded,      // half_open -> closed
  ForceOpen,            // operator
  ForceClose,           // operator
  Reset,                // operator
  ResumeAuto,           // operator, leaving a forced mode
  Restored,             // closed -> open, an open period carried over from before a restart
};

constexpr std::string_view causeName(Cause c) {
  switch (c) {
    case Cause::ConsecutiveFailures:
      return "consecutive_failures";
    case Cause::FailureRate:
      return "failure_rate";
    case Cause::SlowCallRate:
      return "slow_call_rate";
    case Cause::TrialFailure:
      return "trial_failure";
    case Cause::OpenTimeoutElapsed:
      return "open_timeout_elapsed";
    case Cause::TrialsSucceeded:
      return "trials_succeeded";
    case Cause::ForceOpen:
      return "force_open";
    case Cause::ForceClose:
      return "force_close";
    case Cause::Reset:
      return "reset";
    case Cause::ResumeAuto:
      return "resume_auto";
    case Cause::Restored:
      return "restored";
  }
  return "?";
}

// Whether the breaker's state decides which calls go.
enum class Mode : std::uint8_t {
  Enforce,      // open and half-open refuse what they do not admit
  MetricsOnly,  // the state is computed and reported, but only forced-open refuses: an operator's order
};

constexpr std::string_view modeName(Mode m) {
  switch (m) {
    case Mode::Enforce:
      return "enforce";
    case Mode::MetricsOnly:
      return "metrics_only";
  }
  return "?";
}

enum class WindowType : std::uint8_t { Count, Time };

struct WindowOptions {
  WindowType type = WindowType::Count;
  std::uint64_t calls = 0;     // type Count: the last `calls` calls
  Clock::duration span{};      // type Time: the calls of the last `span`, in kTimeBuckets buckets
  std::uint32_t minCalls = 0;  // calls in the window before a rate may trip
  double failureRatePercent = 0;
  double slowCallRatePercent = 0;
  Clock::duration slowCallDuration{};  // a call taking longer is slow
};

// The agent builds it from breaker config (agent/runner/breaker_options.h), where the defaults live, once. The breaker
// clamps values the config loader would have rejected, so it never misbehaves.
struct Options {
  std::uint32_t failureThreshold = 0;  // consecutive failures that open; 0 turns the rule off
  std::uint32_t successThreshold = 1;
  std::uint32_t halfOpenMaxCalls = 1;
  // The n-th consecutive re-open (a trial failed) stays open openTimeout * backoffMultiplier^n, capped
  // at maxOpenTimeout, then jittered within the cap. Opening from closed starts again at openTimeout.
  Clock::duration openTimeout{};
  Clock::duration maxOpenTimeout{};
  double backoffMultiplier = 1;
  double jitter = 0;  // fraction of the open time, 0.1 = +-10%
  bool tripOnThrottle = false;
  bool probe = false;  // for the sink runner: probe before a real batch when a permit is a trial
  Mode mode = Mode::Enforce;
  std::optional<WindowOptions> window;
  std::uint64_t seed = 0;  // of the jitter's random source; 0 draws one from std::random_device
};

// What tryAcquire() hands out; pass it back to onResult() or release().
struct [[nodiscard]] Permit {
  bool admitted = false;
  State state = State::Closed;  // at admission: HalfOpen means a trial call, unless bypassed
  std::uint64_t generation = 0;
  // Mode::MetricsOnly: the state would have refused the call. Its result is counted in the totals
  // and moves nothing: an enforcing breaker would not have seen it.
  bool bypassed = false;

  explicit operator bool() const noexcept { return admitted; }
};

struct WindowStats {
  std::uint64_t calls = 0;
  std::uint64_t failures = 0;
  std::uint64_t slow = 0;

  // Percentages; 0 for an empty window.
  double failureRate() const noexcept { return calls == 0 ? 0 : 100.0 * double(failures) / double(calls); }
  double slowCallRate() const noexcept { return calls == 0 ? 0 : 100.0 * double(slow) / double(calls); }
};

struct Transition {
  State from = State::Closed;
  State to = State::Closed;
  Cause cause = Cause::Reset;
  std::uint64_t generation = 0;  // the new one
  Clock::time_point at{};
  // When `to` is Open: how long it stays open and when the next trial may go.
  Clock::duration openFor{};
  std::optional<Clock::time_point> nextRetryAt;
  std::uint32_t backoffLevel = 0;
  // The counts that led to it, as they were just before it.
  std::uint32_t consecutiveFailures = 0;
  std::uint32_t trialSuccesses = 0;
  std::optional<WindowStats> window;
};

struct Totals {
  std::uint64_t calls = 0;  // reported results: successes + failures + throttled + permanent
  std::uint64_t successes = 0;
  std::uint64_t failures = 0;  // retriable
  std::uint64_t throttled = 0;
  std::uint64_t permanent = 0;
  std::uint64_t rejected = 0;  // permits refused
  std::uint64_t bypassed = 0;  // permits Mode::MetricsOnly gave although the state would have refused them
  std::uint64_t slow = 0;      // only measured with a window (it holds slow_call_duration)
  std::uint64_t stale = 0;     // results that moved nothing: a transition came after their permit.
                               // They are in the totals above too: the calls did happen.
};

struct Snapshot {
  State state = State::Closed;
  std::uint64_t generation = 0;
  Clock::time_point since{};
  Clock::duration timeInState{};
  // Time spent in each state since the breaker was built, the current one counted up to the snapshot.
  std::array<Clock::duration, kStateCount> stateTimes{};
  std::optional<Clock::time_point> nextRetryAt;
  Clock::duration openFor{};       // of the current or last open period
  std::uint32_t backoffLevel = 0;  // re-opens after a failed trial since the breaker last opened from closed
  std::uint32_t consecutiveFailures = 0;
  std::uint32_t trialSuccesses = 0;  // in the current half-open period
  std::uint32_t trialsAdmitted = 0;  // in the current half-open period, less those freed
  std::optional<WindowStats> window;
  Totals totals;
  // Lifetime totals are never cleared, reset() included: they feed Prometheus counters.
  std::array<std::array<std::uint64_t, kStateCount>, kStateCount> transitions{};  // [from][to]

  std::uint64_t transitionCount(State from, State to) const noexcept {
    return transitions[std::size_t(from)][std::size_t(to)];
  }
  Clock::duration timeIn(State s) const noexcept { return stateTimes[std::size_t(s)]; }
  // Automatic opens: from closed, half-open, or disabled on resuming auto; forced opens are not counted.
  std::uint64_t opens() const noexcept {
    return transitionCount(State::Closed, State::Open) + transitionCount(State::HalfOpen, State::Open) +
           transitionCount(State::Disabled, State::Open);
  }
};

class Breaker {
 public:
  using Listener = std::function<void(const Transition&)>;
  // A time window is cut into this many buckets: a call leaves it 95-100% of the span after it ended.
  static constexpr unsigned kTimeBuckets = 20;

  // Listeners are fixed at construction so that delivering needs no lock around the list.
  Breaker(const Options& options, Clock& clock, std::vector<Listener> listeners = {});
  ~Breaker();
  Breaker(const Breaker&) = delete;
  Breaker& operator=(const Breaker&) = delete;

  // Admits the call when closed or disabled; when open, moves to half-open once the open time has
  // passed and admits a trial; when half-open, admits while trial slots are free.
  Permit tryAcquire() noexcept;

  // Reports an admitted call. `duration` decides whether it was slow (window only). `retryAfter`, from
  // a failed or throttled call, is a floor on the next open time (capped at max_open_timeout).
  void onResult(const Permit& permit, Outcome outcome, Clock::duration duration,
                std::optional<Clock::duration> retryAfter = {}) noexcept;

  // The admitted call was not made (cancelled before sending): frees its trial slot, counts nothing.
  // Each admitted permit goes to exactly one onResult() or release().
  void release(const Permit& permit) noexcept;

  State state() const noexcept;
  // When open: the time from which tryAcquire() admits a trial. Empty in every other state.
  std::optional<Clock::time_point> nextRetryAt() const noexcept;
  Snapshot snapshot() const;
  const Options& options() const noexcept { return options_; }

  // Operator control. forceOpen() rejects everything until resumeAuto() or reset(), in either mode: it
  // is an operator's order, not a computed state; forceClose()
  // (disabled) admits everything and still counts, but never trips; reset() closes and clears the
  // counts that decide the state and the backoff; resumeAuto() leaves a forced mode: forced-open goes
  // to half-open (nothing was sent, so a trial decides), disabled goes to closed, or to open if what it
  // counted meets a trip rule. Each is a no-op when it would not change anything, except reset().
  void forceOpen();
  void forceClose();
  void reset();
  void resumeAuto();

  // Carries an open period over from before a restart: a closed breaker opens (Cause::Restored) at
  // backoff level `backoffLevel`, its next trial `openFor` from now. A no-op in any other state.
  // Restoring a breaker that never moved counts its time so far as open: it was open all along.
  void restoreOpen(std::uint32_t backoffLevel, Clock::duration openFor);

 private:
  class Window;
  enum class Effect : std::uint8_t { Success, Failure, Neutral };

  Effect effectOf(Outcome outcome) const noexcept;
  void countOutcome(Outcome outcome) noexcept;
  void raiseRetryFloor(Clock::duration retryAfter) noexcept;
  Permit acquireSlow(std::uint64_t word) noexcept;
  // Mode::MetricsOnly: admits a call the state `word` would refuse, and counts it.
  Permit bypass(std::uint64_t word) noexcept;
  void countConsecutive(const Permit& permit, Effect effect, std::uint64_t word) noexcept;
  void recordInWindow(const Permit& permit, Effect effect, bool slow) noexcept;
  void onTrialResult(const Permit& permit, Effect effect) noexcept;
  void tripIfStill(std::uint64_t generation, Cause cause) noexcept;

  // Everything below with a Locked suffix requires mutex_ to be held.
  std::optional<Cause> tripRuleLocked(std::uint64_t word, Clock::time_point now);
  void transitionLocked(State to, Cause cause, Clock::time_point now);
  Clock::duration nextOpenTimeLocked(State from, Clock::time_point now);
  double nextUniformLocked() noexcept;
  // Delivers queued transitions to the listeners; call with mutex_ released.
  void deliver() noexcept;

  const Options options_;
  Clock& clock_;
  const std::vector<Listener> listeners_;

  // Read by every permit; written only by transitions and by failures. Layout in breaker.cc.
  alignas(64) std::atomic<std::uint64_t> word_;
  std::atomic<std::int64_t> nextRetryNs_{0};   // when open: steady-clock ns of the next trial
  std::atomic<std::int64_t> retryFloorNs_{0};  // latest Retry-After deadline seen from the sink

  // Written by every result; kept off word_'s cache line so counting does not evict it.
  struct alignas(64) Counters {
    std::atomic<std::uint64_t> successes{0};
    std::atomic<std::uint64_t> failures{0};
    std::atomic<std::uint64_t> throttled{0};
    std::atomic<std::uint64_t> permanent{0};
    std::atomic<std::uint64_t> rejected{0};
    std::atomic<std::uint64_t> bypassed{0};
    std::atomic<std::uint64_t> slow{0};
    std::atomic<std::uint64_t> stale{0};
  };
  Counters counters_;

  alignas(64) mutable std::mutex mutex_;
  std::unique_ptr<Window> window_;  // immutable pointer; the window itself is guarded by mutex_
  std::uint32_t trialsAdmitted_ = 0;
  std::uint32_t trialSuccesses_ = 0;
  std::uint32_t backoffLevel_ = 0;  // consecutive re-opens without a clean close
  Clock::duration openFor_{};
  std::optional<Clock::duration> restoredOpenFor_;  // set by restoreOpen() for its transition
  std::uint64_t random_ = 0;
  Clock::time_point since_{};
  std::array<Clock::duration, kStateCount> stateTimes_{};  // closed periods only; the current one is since_
  std::array<std::array<std::uint64_t, kStateCount>, kStateCount> transitions_{};
  std::vector<Transition> pending_;
  bool delivering_ = false;
};

}  // namespace logcapture::circuit
