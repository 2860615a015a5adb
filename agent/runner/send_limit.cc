#include "agent/runner/send_limit.h"

#include <algorithm>
#include <cmath>
#include <numbers>

namespace logcapture::agent {
namespace {

using std::chrono::nanoseconds;
using Steady = std::chrono::steady_clock;

// A failure or a throttle halves the limit; a slow call takes a quarter off, since latency rises well
// before a destination refuses anything.
constexpr double kFailureBackoff = 0.5;
constexpr double kLatencyBackoff = 0.75;
constexpr double kMaxRate = 1e6;

}  // namespace

SendLimit::SendLimit(SendLimitOptions options)
    : options_(options),
      limit_(options.adaptive ? 1.0 : double(std::max<std::uint32_t>(options.maxLimit, 1))),
      slowStart_(options.adaptive) {}

double SendLimit::rampProgress(TimePoint now) const {
  if (!rampStart_ || options_.ramp <= nanoseconds::zero()) return 1;
  const double done = double((now - *rampStart_).count()) / double(options_.ramp.count());
  return std::clamp(done, 0.0, 1.0);
}

bool SendLimit::ramping(TimePoint now) const { return rampStart_ && rampProgress(now) < 1; }

std::uint32_t SendLimit::limit(TimePoint now) const {
  const double most = double(std::max<std::uint32_t>(options_.maxLimit, 1));
  if (!options_.adaptive && !rampStart_) return std::uint32_t(most);
  double limit = limit_;
  // The ramp's floor: one batch in flight at its start, every lane at its end.
  if (rampStart_) limit = std::max(limit, 1 + (most - 1) * rampProgress(now));
  return std::uint32_t(std::clamp(std::floor(limit), 1.0, most));
}

nanoseconds SendLimit::interval(TimePoint now) const {
  if (!ramping(now)) return nanoseconds::zero();
  const double paced = 1e9 / rate_;
  // The pace's floor: kRampStartRate at the ramp's start, unpaced at its end.
  const double floor = 1e9 / kRampStartRate * (1 - rampProgress(now));
  return nanoseconds(std::int64_t(std::min(paced, floor)));
}

std::optional<SendLimit::TimePoint> SendLimit::nextStart(TimePoint now) const {
  if (inFlight_ >= limit(now)) return std::nullopt;
  const nanoseconds gap = interval(now);
  if (gap == nanoseconds::zero() || lastStart_ == TimePoint{}) return now;
  return std::max(now, lastStart_ + gap);
}

SendLimit::Ticket SendLimit::start(TimePoint now) {
  Ticket t;
  t.started = now;
  t.previousStart = lastStart_;
  t.valid = true;
  lastStart_ = now;
  ++inFlight_;
  t.busy = 2 * inFlight_ >= limit(now);
  return t;
}

void SendLimit::cancel(const Ticket& ticket, TimePoint now) {
  if (!ticket.valid) return;
  if (inFlight_ > 0) --inFlight_;
  if (lastStart_ == ticket.started) lastStart_ = ticket.previousStart;
  settle(now);
}

void SendLimit::finish(const Ticket& ticket, circuit::Outcome outcome, nanoseconds latency, TimePoint now) {
  if (!ticket.valid) return;
  if (inFlight_ > 0) --inFlight_;
  settle(now);
  // The outcomes of sends started before the last decrease belong to the congestion it answered.
  const bool fresh = ticket.started >= lastDecrease_;
  switch (outcome) {
    case circuit::Outcome::Permanent:
      return;  // the record's fault, not the destination's load
    case circuit::Outcome::Retriable:
    case circuit::Outcome::Throttled:
      if (fresh && (options_.adaptive || rampStart_)) decrease(kFailureBackoff, now);
      return;
    case circuit::Outcome::Success:
      break;
  }
  const bool wasSlow = slow(latency);
  noteLatency(latency, now);
  if (!options_.adaptive && !rampStart_) return;
  if (wasSlow) {
    if (fresh) decrease(kLatencyBackoff, now);
  } else {
    increase(ticket.busy);
  }
}

void SendLimit::increase(bool busy) {
  const double most = double(std::max<std::uint32_t>(options_.maxLimit, 1));
  // A limit the sink did not use was not shown safe: it grows only on sends that used half of it. The
  // pace grows on every success: while it binds, no send shows that more would be too many.
  if (slowStart_) {
    // One more per success: doubles per round of successes. The pace: ln 2 more per success, at
    // `rate_` successes a second, doubles each second.
    if (busy) limit_ += 1;
    rate_ += std::numbers::ln2;
  } else {
    // One more per round of successes (the pace: kRampStartRate more per second).
    if (busy) limit_ += 1 / limit_;
    rate_ += kRampStartRate / rate_;
  }
  limit_ = std::min(limit_, most);
  rate_ = std::min(rate_, kMaxRate);
}

void SendLimit::decrease(double factor, TimePoint now) {
  limit_ = std::max(1.0, limit_ * factor);
  rate_ = std::max(kRampStartRate, rate_ * factor);
  slowStart_ = false;
  lastDecrease_ = now;
}

bool SendLimit::slow(nanoseconds latency) const {
  std::optional<nanoseconds> low = lowCurrent_;
  if (lowLast_ && (!low || *lowLast_ < *low)) low = lowLast_;
  if (!low) return false;
  return double(latency.count()) > kSlowFactor * double(low->count()) + double(kSlowSlack.count());
}

void SendLimit::noteLatency(nanoseconds latency, TimePoint now) {
  // The lowest of the last two spans: a destination that became slower for good is learned within two
  // spans, and the limit does not creep up meanwhile on a baseline measured under its own load.
  if (!spanStart_ || now - *spanStart_ >= kLatencySpan) {
    lowLast_ = lowCurrent_;
    lowCurrent_.reset();
    spanStart_ = now;
  }
  if (!lowCurrent_ || latency < *lowCurrent_) lowCurrent_ = latency;
}

void SendLimit::startRamp(TimePoint now) {
  if (options_.ramp <= nanoseconds::zero()) return;
  if (ramping(now)) {
    // The breaker re-opened and closed again during the ramp: slower, but the ramp keeps its end, or a
    // breaker flapping on and off would hold the sink at the bottom of a ramp for good.
    decrease(kFailureBackoff, now);
    return;
  }
  limit_ = 1;
  rate_ = kRampStartRate;
  slowStart_ = true;
  rampStart_ = now;
  lastStart_ = TimePoint{};
  // The trials that closed the breaker are no congestion of the ramp.
  lastDecrease_ = now;
}

void SendLimit::settle(TimePoint now) {
  if (!rampStart_ || ramping(now)) return;
  rampStart_.reset();
  // Full speed: every lane; an adaptive limit goes on from there and comes down as latency tells.
  limit_ = double(std::max<std::uint32_t>(options_.maxLimit, 1));
}

SendLimit::Figures SendLimit::figures(TimePoint now) const {
  Figures f;
  f.limit = limit(now);
  f.inFlight = inFlight_;
  f.ramping = ramping(now);
  const nanoseconds gap = interval(now);
  f.rate = gap > nanoseconds::zero() ? 1e9 / double(gap.count()) : 0;
  return f;
}

SendLimit::Ticket SendGate::pass(const Pauses& pauses) {
  std::unique_lock lock(mutex_);
  const std::uint64_t turn = nextTurn_++;
  while (true) {
    const auto now = Steady::now();
    const auto deadline = pauses.hardDeadline();
    if (now >= deadline) {
      // Give the turn up, and let the next in line go.
      if (turn == serving_) {
        advance();
      } else {
        abandoned_.insert(turn);
      }
      lock.unlock();
      changed_.notify_all();
      return {};
    }
    auto wakeAt = deadline;
    if (turn == serving_) {
      const auto at = limit_.nextStart(now);
      if (at && *at <= now) {
        const SendLimit::Ticket ticket = limit_.start(now);
        advance();
        lock.unlock();
        changed_.notify_all();
        return ticket;
      }
      if (at) wakeAt = std::min(wakeAt, *at);
    }
    if (wakeAt == Steady::time_point::max()) {
      changed_.wait(lock);
    } else {
      changed_.wait_until(lock, wakeAt);
    }
  }
}

void SendGate::advance() {
  ++serving_;
  while (abandoned_.erase(serving_) > 0) ++serving_;
}

void SendGate::finish(const SendLimit::Ticket& ticket, circuit::Outcome outcome, nanoseconds latency) {
  {
    std::lock_guard lock(mutex_);
    limit_.finish(ticket, outcome, latency, Steady::now());
  }
  changed_.notify_all();
}

void SendGate::cancel(const SendLimit::Ticket& ticket) {
  {
    std::lock_guard lock(mutex_);
    limit_.cancel(ticket, Steady::now());
  }
  changed_.notify_all();
}

void SendGate::startRamp() {
  {
    std::lock_guard lock(mutex_);
    limit_.startRamp(Steady::now());
  }
  changed_.notify_all();
}

void SendGate::wake() {
  { std::lock_guard lock(mutex_); }
  changed_.notify_all();
}

SendLimit::Figures SendGate::figures() const {
  std::lock_guard lock(mutex_);
  return limit_.figures(Steady::now());
}

}  // namespace logcapture::agent
