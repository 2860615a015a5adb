#include "circuit/breaker.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <random>
#include <variant>

namespace logcapture::circuit {

namespace {

// word_ layout: state in bits 0-2, consecutive failures in bits 3-23, generation in bits 24-63.
// One word lets a failure count itself with a single compare-and-swap that also proves its
// generation is current, and lets a permit read state and generation together.
constexpr unsigned kCountShift = 3;
constexpr unsigned kGenerationShift = 24;
constexpr std::uint64_t kStateMask = (1u << kCountShift) - 1;
constexpr std::uint32_t kCountMax = (1u << (kGenerationShift - kCountShift)) - 1;
constexpr std::uint64_t kCountMask = std::uint64_t{kCountMax} << kCountShift;

constexpr State stateOf(std::uint64_t w) { return static_cast<State>(w & kStateMask); }
constexpr std::uint32_t countOf(std::uint64_t w) { return std::uint32_t((w & kCountMask) >> kCountShift); }
constexpr std::uint64_t generationOf(std::uint64_t w) { return w >> kGenerationShift; }
constexpr std::uint64_t pack(State s, std::uint32_t count, std::uint64_t generation) {
  return std::uint64_t(s) | (std::uint64_t{count} << kCountShift) | (generation << kGenerationShift);
}
constexpr std::uint64_t withCount(std::uint64_t w, std::uint32_t count) {
  return (w & ~kCountMask) | (std::uint64_t{count} << kCountShift);
}

constexpr std::int64_t nanos(Clock::time_point t) { return t.time_since_epoch().count(); }

// Keeps a breaker sane whatever it is given; the config loader reports bad values to the user.
Options normalized(Options o) {
  o.failureThreshold = std::min(o.failureThreshold, kCountMax);
  o.halfOpenMaxCalls = std::max(o.halfOpenMaxCalls, 1u);
  o.successThreshold = std::clamp(o.successThreshold, 1u, o.halfOpenMaxCalls);
  o.openTimeout = std::max(o.openTimeout, Clock::duration::zero());
  o.maxOpenTimeout = std::max(o.maxOpenTimeout, o.openTimeout);
  if (!(o.backoffMultiplier >= 1)) o.backoffMultiplier = 1;  // also catches NaN
  if (!(o.jitter >= 0)) o.jitter = 0;
  o.jitter = std::min(o.jitter, 1.0);
  if (o.window) {
    auto& w = *o.window;
    w.calls = std::clamp<std::uint64_t>(w.calls, 1, std::uint64_t{1} << 24);
    w.span = std::max(w.span, Clock::duration(Breaker::kTimeBuckets));
    w.minCalls = std::max(w.minCalls, 1u);
    // A count window never holds more than `calls`, so a larger min_calls could never trip.
    if (w.type == WindowType::Count) w.minCalls = std::uint32_t(std::min<std::uint64_t>(w.minCalls, w.calls));
    w.failureRatePercent = std::clamp(w.failureRatePercent, 0.0, 100.0);
    w.slowCallRatePercent = std::clamp(w.slowCallRatePercent, 0.0, 100.0);
  }
  if (o.seed == 0) o.seed = (std::uint64_t{std::random_device{}()} << 32) | std::random_device{}();
  return o;
}

}  // namespace

// The calls a rate is computed over. Guarded by Breaker::mutex_.
class Breaker::Window {
 public:
  explicit Window(const WindowOptions& o) : options_(o) {
    if (o.type == WindowType::Count) {
      ring_.assign(o.calls, 0);
    } else {
      bucketWidth_ = std::max<std::int64_t>(o.span.count() / kTimeBuckets, 1);
    }
  }

  void record(bool failure, bool slow, Clock::time_point now) {
    const std::uint8_t entry = kPresent | (failure ? kFailure : 0) | (slow ? kSlow : 0);
    if (options_.type == WindowType::Count) {
      remove(ring_[next_]);
      ring_[next_] = entry;
      add(entry);
      next_ = next_ + 1 == ring_.size() ? 0 : next_ + 1;
      return;
    }
    const std::int64_t epoch = nanos(now) / bucketWidth_;
    Bucket& b = buckets_[std::size_t(epoch % kTimeBuckets)];
    if (b.epoch != epoch) {
      b.epoch = epoch;
      b.stats = {};
    }
    ++b.stats.calls;
    b.stats.failures += failure;
    b.stats.slow += slow;
  }

  WindowStats stats(Clock::time_point now) const {
    if (options_.type == WindowType::Count) return counted_;
    const std::int64_t epoch = nanos(now) / bucketWidth_;
    WindowStats sum;
    for (const Bucket& b : buckets_) {
      if (b.epoch > epoch - std::int64_t{kTimeBuckets} && b.epoch <= epoch) {
        sum.calls += b.stats.calls;
        sum.failures += b.stats.failures;
        sum.slow += b.stats.slow;
      }
    }
    return sum;
  }

  void clear() {
    std::fill(ring_.begin(), ring_.end(), 0);
    next_ = 0;
    counted_ = {};
    buckets_.fill(Bucket{});
  }

 private:
  static constexpr std::uint8_t kPresent = 1, kFailure = 2, kSlow = 4;
  struct Bucket {
    std::int64_t epoch = std::numeric_limits<std::int64_t>::min();
    WindowStats stats;
  };

  void add(std::uint8_t e) {
    counted_.calls += 1;
    counted_.failures += (e & kFailure) != 0;
    counted_.slow += (e & kSlow) != 0;
  }
  void remove(std::uint8_t e) {
    if ((e & kPresent) == 0) return;
    counted_.calls -= 1;
    counted_.failures -= (e & kFailure) != 0;
    counted_.slow -= (e & kSlow) != 0;
  }

  const WindowOptions options_;
  // Count window: one byte per call, oldest overwritten; counted_ is the ring's sum.
  std::vector<std::uint8_t> ring_;
  std::size_t next_ = 0;
  WindowStats counted_;
  // Time window: buckets indexed by epoch modulo kTimeBuckets; a stale epoch reads as empty.
  std::int64_t bucketWidth_ = 1;
  std::array<Bucket, kTimeBuckets> buckets_{};
};

Breaker::Breaker(const Options& options, Clock& clock, std::vector<Listener> listeners)
    : options_(normalized(options)),
      clock_(clock),
      listeners_(std::move(listeners)),
      word_(pack(State::Closed, 0, 0)),
      window_(options_.window ? std::make_unique<Window>(*options_.window) : nullptr),
      random_(options_.seed),
      since_(clock.now()) {}

Breaker::~Breaker() = default;

Permit Breaker::tryAcquire() noexcept {
  const std::uint64_t w = word_.load(std::memory_order_acquire);
  const State s = stateOf(w);
  if (s == State::Closed || s == State::Disabled) [[likely]] {
    return Permit{.admitted = true, .state = s, .generation = generationOf(w)};
  }
  return acquireSlow(w);
}

Permit Breaker::acquireSlow(std::uint64_t w) noexcept {
  // Rejections while open or forced open stay lock-free: they are what a broken sink's traffic hits.
  const bool waiting =
      stateOf(w) == State::ForcedOpen ||
      (stateOf(w) == State::Open && nanos(clock_.now()) < nextRetryNs_.load(std::memory_order_acquire));
  if (waiting) {
    if (stateOf(w) == State::Open && options_.mode == Mode::MetricsOnly) return bypass(w);
    counters_.rejected.fetch_add(1, std::memory_order_relaxed);
    return Permit{.admitted = false, .state = stateOf(w), .generation = generationOf(w)};
  }

  std::unique_lock lock(mutex_);
  const auto now = clock_.now();
  w = word_.load(std::memory_order_acquire);
  bool moved = false;
  if (stateOf(w) == State::Open && nanos(now) >= nextRetryNs_.load(std::memory_order_acquire)) {
    transitionLocked(State::HalfOpen, Cause::OpenTimeoutElapsed, now);
    w = word_.load(std::memory_order_acquire);
    moved = true;
  }
  Permit p{.admitted = false, .state = stateOf(w), .generation = generationOf(w)};
  switch (p.state) {
    case State::Closed:
    case State::Disabled:
      p.admitted = true;
      break;
    case State::HalfOpen:
      if (trialsAdmitted_ < options_.halfOpenMaxCalls) {
        ++trialsAdmitted_;
        p.admitted = true;
      }
      break;
    case State::Open:
    case State::ForcedOpen:
      break;
  }
  lock.unlock();
  if (!p.admitted) {
    if (p.state != State::ForcedOpen && options_.mode == Mode::MetricsOnly) {
      p = bypass(pack(p.state, 0, p.generation));
    } else {
      counters_.rejected.fetch_add(1, std::memory_order_relaxed);
    }
  }
  if (moved) deliver();
  return p;
}

Permit Breaker::bypass(std::uint64_t w) noexcept {
  counters_.bypassed.fetch_add(1, std::memory_order_relaxed);
  return Permit{.admitted = true, .state = stateOf(w), .generation = generationOf(w), .bypassed = true};
}

Breaker::Effect Breaker::effectOf(Outcome outcome) const noexcept {
  switch (outcome) {
    case Outcome::Success:
      return Effect::Success;
    case Outcome::Retriable:
      return Effect::Failure;
    case Outcome::Throttled:
      return options_.tripOnThrottle ? Effect::Failure : Effect::Neutral;
    case Outcome::Permanent:
      return Effect::Neutral;
  }
  return Effect::Neutral;
}

void Breaker::countOutcome(Outcome outcome) noexcept {
  std::atomic<std::uint64_t>* counter = nullptr;
  switch (outcome) {
    case Outcome::Success:
      counter = &counters_.successes;
      break;
    case Outcome::Retriable:
      counter = &counters_.failures;
      break;
    case Outcome::Throttled:
      counter = &counters_.throttled;
      break;
    case Outcome::Permanent:
      counter = &counters_.permanent;
      break;
  }
  if (counter != nullptr) counter->fetch_add(1, std::memory_order_relaxed);
}

void Breaker::onResult(const Permit& permit, Outcome outcome, Clock::duration duration,
                       std::optional<Clock::duration> retryAfter) noexcept {
  if (!permit.admitted) return;
  countOutcome(outcome);
  const bool slow = window_ != nullptr && duration > options_.window->slowCallDuration;
  if (slow) counters_.slow.fetch_add(1, std::memory_order_relaxed);
  if (permit.bypassed) return;  // an enforcing breaker would not have made the call
  // The server's word on when to come back holds whatever the generation.
  if (retryAfter && (outcome == Outcome::Retriable || outcome == Outcome::Throttled)) {
    raiseRetryFloor(*retryAfter);
  }

  const Effect effect = effectOf(outcome);
  const std::uint64_t w = word_.load(std::memory_order_acquire);
  if (generationOf(w) != permit.generation) {
    counters_.stale.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  switch (stateOf(w)) {
    case State::Closed:
    case State::Disabled:
      if (window_ != nullptr) {
        recordInWindow(permit, effect, slow);
      } else {
        countConsecutive(permit, effect, w);
      }
      return;
    case State::HalfOpen:
      onTrialResult(permit, effect);
      return;
    case State::Open:
    case State::ForcedOpen:
      // Unreachable: no permit is admitted in these states, and entering them bumps the generation.
      counters_.stale.fetch_add(1, std::memory_order_relaxed);
      return;
  }
}

void Breaker::countConsecutive(const Permit& permit, Effect effect, std::uint64_t w) noexcept {
  if (effect == Effect::Neutral) return;
  for (;;) {
    const std::uint32_t count = countOf(w);
    std::uint32_t next = 0;
    if (effect == Effect::Success) {
      if (count == 0) return;  // a healthy success leaves the shared word untouched
    } else {
      next = count < kCountMax ? count + 1 : count;
    }
    if (word_.compare_exchange_weak(w, withCount(w, next), std::memory_order_acq_rel, std::memory_order_acquire)) {
      if (effect == Effect::Failure && stateOf(w) == State::Closed && options_.failureThreshold != 0 &&
          next >= options_.failureThreshold) {
        tripIfStill(permit.generation, Cause::ConsecutiveFailures);
      }
      return;
    }
    if (generationOf(w) != permit.generation) {
      counters_.stale.fetch_add(1, std::memory_order_relaxed);
      return;
    }
  }
}

void Breaker::tripIfStill(std::uint64_t generation, Cause cause) noexcept {
  std::unique_lock lock(mutex_);
  const std::uint64_t w = word_.load(std::memory_order_acquire);
  if (generationOf(w) != generation || stateOf(w) != State::Closed) return;  // someone else moved it
  transitionLocked(State::Open, cause, clock_.now());
  lock.unlock();
  deliver();
}

void Breaker::recordInWindow(const Permit& permit, Effect effect, bool slow) noexcept {
  if (effect == Effect::Neutral) return;
  std::unique_lock lock(mutex_);
  std::uint64_t w = word_.load(std::memory_order_acquire);
  if (generationOf(w) != permit.generation) {
    lock.unlock();
    counters_.stale.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  // With a window every counting result holds mutex_, so a plain store cannot lose an update.
  const std::uint32_t count = countOf(w);
  const std::uint32_t next = effect == Effect::Success ? 0 : std::min(count + 1, kCountMax);
  if (next != count) {
    w = withCount(w, next);
    word_.store(w, std::memory_order_release);
  }
  // A count window needs no time, and reading the clock is a good part of this path's cost.
  const bool timed = options_.window->type == WindowType::Time;
  const auto now = timed ? clock_.now() : Clock::time_point{};
  window_->record(effect == Effect::Failure, slow, now);
  if (stateOf(w) != State::Closed) return;  // disabled counts but never trips
  const auto cause = tripRuleLocked(w, now);
  if (!cause) return;
  transitionLocked(State::Open, *cause, timed ? now : clock_.now());
  lock.unlock();
  deliver();
}

void Breaker::onTrialResult(const Permit& permit, Effect effect) noexcept {
  std::unique_lock lock(mutex_);
  const std::uint64_t w = word_.load(std::memory_order_acquire);
  if (generationOf(w) != permit.generation) {
    lock.unlock();
    counters_.stale.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  switch (effect) {
    case Effect::Neutral:
      // The sink neither proved nor disproved itself: let another trial decide.
      if (trialsAdmitted_ > 0) --trialsAdmitted_;
      return;
    case Effect::Failure:
      transitionLocked(State::Open, Cause::TrialFailure, clock_.now());
      break;
    case Effect::Success:
      if (++trialSuccesses_ < options_.successThreshold) return;
      transitionLocked(State::Closed, Cause::TrialsSucceeded, clock_.now());
      break;
  }
  lock.unlock();
  deliver();
}

void Breaker::release(const Permit& permit) noexcept {
  if (!permit.admitted || permit.bypassed || permit.state != State::HalfOpen) return;
  std::lock_guard lock(mutex_);
  const std::uint64_t w = word_.load(std::memory_order_acquire);
  if (generationOf(w) == permit.generation && trialsAdmitted_ > 0) --trialsAdmitted_;
}

void Breaker::raiseRetryFloor(Clock::duration retryAfter) noexcept {
  if (retryAfter <= Clock::duration::zero()) return;
  // Capped so that a bogus header cannot park the sink beyond what the operator configured.
  const std::int64_t until = nanos(clock_.now()) + std::min(retryAfter, options_.maxOpenTimeout).count();
  std::int64_t current = retryFloorNs_.load(std::memory_order_relaxed);
  while (current < until && !retryFloorNs_.compare_exchange_weak(current, until, std::memory_order_relaxed)) {
  }
}

std::optional<Cause> Breaker::tripRuleLocked(std::uint64_t w, Clock::time_point now) {
  if (options_.failureThreshold != 0 && countOf(w) >= options_.failureThreshold) {
    return Cause::ConsecutiveFailures;
  }
  if (window_ == nullptr) return std::nullopt;
  const WindowOptions& o = *options_.window;
  const WindowStats s = window_->stats(now);
  if (s.calls < o.minCalls) return std::nullopt;
  // Compared without dividing so that 5 of 10 meets a 50% threshold exactly.
  if (100.0 * double(s.failures) >= o.failureRatePercent * double(s.calls)) return Cause::FailureRate;
  if (100.0 * double(s.slow) >= o.slowCallRatePercent * double(s.calls)) return Cause::SlowCallRate;
  return std::nullopt;
}

double Breaker::nextUniformLocked() noexcept {
  // splitmix64: tiny, seedable, and good enough to spread retries.
  std::uint64_t z = (random_ += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  z ^= z >> 31;
  return double(z >> 11) * 0x1.0p-53;
}

Clock::duration Breaker::nextOpenTimeLocked(State from, Clock::time_point now) {
  // Only a trial failure is a consecutive re-open; opening from closed starts at the base again.
  backoffLevel_ = from == State::HalfOpen ? std::min(backoffLevel_ + 1, 64u) : 0;
  const double cap = double(options_.maxOpenTimeout.count());
  double open = double(options_.openTimeout.count());
  for (std::uint32_t i = 0; i < backoffLevel_ && open < cap; ++i) open *= options_.backoffMultiplier;
  open = std::min(open, cap);
  if (options_.jitter > 0) {
    open *= 1 + options_.jitter * (2 * nextUniformLocked() - 1);
    open = std::clamp(open, 0.0, cap);
  }
  auto result = Clock::duration(std::int64_t(open));
  const std::int64_t floor = retryFloorNs_.load(std::memory_order_relaxed) - nanos(now);
  if (floor > 0) result = std::max(result, std::min(Clock::duration(floor), options_.maxOpenTimeout));
  return result;
}

void Breaker::transitionLocked(State to, Cause cause, Clock::time_point now) {
  std::uint64_t w = word_.load(std::memory_order_acquire);
  const State from = stateOf(w);
  const std::uint64_t generation = (generationOf(w) + 1) & (~std::uint64_t{0} >> kGenerationShift);

  Transition t;
  t.from = from;
  t.to = to;
  t.cause = cause;
  t.generation = generation;
  t.at = now;
  t.consecutiveFailures = countOf(w);
  t.trialSuccesses = trialSuccesses_;
  if (window_ != nullptr) t.window = window_->stats(now);

  // Counts carry over between closed and disabled; opening and reset start them afresh.
  const bool clear = to == State::Open || to == State::ForcedOpen || cause == Cause::Reset;
  if (clear && window_ != nullptr) window_->clear();
  if (to == State::Open) {
    openFor_ = restoredOpenFor_ ? *restoredOpenFor_ : nextOpenTimeLocked(from, now);
    restoredOpenFor_.reset();
    t.openFor = openFor_;
    t.backoffLevel = backoffLevel_;
    t.nextRetryAt = now + openFor_;
    nextRetryNs_.store(nanos(*t.nextRetryAt), std::memory_order_release);
  }
  trialsAdmitted_ = 0;
  trialSuccesses_ = 0;

  // A compare-and-swap so that a failure counted concurrently in the old generation is carried too.
  while (!word_.compare_exchange_weak(w, pack(to, clear ? 0 : countOf(w), generation), std::memory_order_acq_rel,
                                      std::memory_order_acquire)) {
  }
  ++transitions_[std::size_t(from)][std::size_t(to)];
  stateTimes_[std::size_t(from)] += std::max(now - since_, Clock::duration::zero());
  since_ = now;
  if (!listeners_.empty()) pending_.push_back(t);
}

void Breaker::deliver() noexcept {
  std::unique_lock lock(mutex_);
  if (delivering_) return;  // the thread delivering now will pick ours up, in order
  delivering_ = true;
  while (!pending_.empty()) {
    std::vector<Transition> batch;
    batch.swap(pending_);
    lock.unlock();
    for (const Transition& t : batch) {
      for (const Listener& listener : listeners_) {
        // A listener's failure must not wedge delivery or reach the caller's data path.
        try {
          listener(t);
        } catch (...) {
        }
      }
    }
    lock.lock();
  }
  delivering_ = false;
}

State Breaker::state() const noexcept { return stateOf(word_.load(std::memory_order_acquire)); }

std::optional<Clock::time_point> Breaker::nextRetryAt() const noexcept {
  if (stateOf(word_.load(std::memory_order_acquire)) != State::Open) return std::nullopt;
  return Clock::time_point(Clock::duration(nextRetryNs_.load(std::memory_order_acquire)));
}

Snapshot Breaker::snapshot() const {
  Snapshot s;
  {
    std::lock_guard lock(mutex_);
    const auto now = clock_.now();
    const std::uint64_t w = word_.load(std::memory_order_acquire);
    s.state = stateOf(w);
    s.generation = generationOf(w);
    s.since = since_;
    s.timeInState = now - since_;
    s.stateTimes = stateTimes_;
    s.stateTimes[std::size_t(s.state)] += std::max(s.timeInState, Clock::duration::zero());
    if (s.state == State::Open) {
      s.nextRetryAt = Clock::time_point(Clock::duration(nextRetryNs_.load(std::memory_order_acquire)));
    }
    s.openFor = openFor_;
    s.backoffLevel = backoffLevel_;
    s.consecutiveFailures = countOf(w);
    s.trialSuccesses = trialSuccesses_;
    s.trialsAdmitted = trialsAdmitted_;
    if (window_ != nullptr) s.window = window_->stats(now);
    s.transitions = transitions_;
  }
  auto& c = counters_;
  s.totals.successes = c.successes.load(std::memory_order_relaxed);
  s.totals.failures = c.failures.load(std::memory_order_relaxed);
  s.totals.throttled = c.throttled.load(std::memory_order_relaxed);
  s.totals.permanent = c.permanent.load(std::memory_order_relaxed);
  s.totals.rejected = c.rejected.load(std::memory_order_relaxed);
  s.totals.bypassed = c.bypassed.load(std::memory_order_relaxed);
  s.totals.slow = c.slow.load(std::memory_order_relaxed);
  s.totals.stale = c.stale.load(std::memory_order_relaxed);
  s.totals.calls = s.totals.successes + s.totals.failures + s.totals.throttled + s.totals.permanent;
  return s;
}

void Breaker::forceOpen() {
  std::unique_lock lock(mutex_);
  if (state() == State::ForcedOpen) return;
  transitionLocked(State::ForcedOpen, Cause::ForceOpen, clock_.now());
  lock.unlock();
  deliver();
}

void Breaker::forceClose() {
  std::unique_lock lock(mutex_);
  if (state() == State::Disabled) return;
  transitionLocked(State::Disabled, Cause::ForceClose, clock_.now());
  lock.unlock();
  deliver();
}

void Breaker::reset() {
  std::unique_lock lock(mutex_);
  retryFloorNs_.store(0, std::memory_order_relaxed);
  transitionLocked(State::Closed, Cause::Reset, clock_.now());
  lock.unlock();
  deliver();
}

void Breaker::resumeAuto() {
  std::unique_lock lock(mutex_);
  const auto now = clock_.now();
  const std::uint64_t w = word_.load(std::memory_order_acquire);
  if (stateOf(w) == State::ForcedOpen) {
    transitionLocked(State::HalfOpen, Cause::ResumeAuto, now);
  } else if (stateOf(w) == State::Disabled) {
    const auto cause = tripRuleLocked(w, now);
    transitionLocked(cause ? State::Open : State::Closed, cause.value_or(Cause::ResumeAuto), now);
  } else {
    return;
  }
  lock.unlock();
  deliver();
}

void Breaker::restoreOpen(std::uint32_t backoffLevel, Clock::duration openFor) {
  std::unique_lock lock(mutex_);
  const std::uint64_t w = word_.load(std::memory_order_acquire);
  if (stateOf(w) != State::Closed) return;
  backoffLevel_ = std::min(backoffLevel, 64u);
  restoredOpenFor_ = std::clamp(openFor, Clock::duration::zero(), options_.maxOpenTimeout);
  transitionLocked(State::Open, Cause::Restored, clock_.now());
  if (generationOf(w) == 0) {
    // Built at start and restored before it moved: the closed moment between was never a closed period.
    stateTimes_[std::size_t(State::Open)] += stateTimes_[std::size_t(State::Closed)];
    stateTimes_[std::size_t(State::Closed)] = Clock::duration::zero();
  }
  lock.unlock();
  deliver();
}

}  // namespace logcapture::circuit
