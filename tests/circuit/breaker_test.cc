#include "circuit/breaker.h"

#include <doctest/doctest.h>
#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <barrier>
#include <memory>
#include <mutex>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "agent/runner/breaker_events.h"
#include "agent/runner/breaker_options.h"
#include "circuit/clock.h"
#include "config/config.h"

namespace logcapture::circuit {
namespace {

// The agent builds a breaker from its config and logs its transitions; these tests use both.
using agent::eventName;
using agent::logTransition;
using agent::optionsFrom;
using agent::transitionLogger;

using namespace std::chrono_literals;

// The shipped defaults, less jitter so that open times are exact.
config::BreakerConfig exactConfig() {
  config::BreakerConfig c;
  c.jitter = 0;
  return c;
}

Options optionsOf(const config::BreakerConfig& c, std::uint64_t seed = 1) {
  Options o = optionsFrom(c);
  o.seed = seed;
  return o;
}

config::WindowConfig countWindow(std::uint64_t size, std::uint32_t minCalls, double failureRate) {
  config::WindowConfig w;
  w.type = config::WindowType::Count;
  w.size.value = size;
  w.minCalls = minCalls;
  w.failureRate = failureRate;
  return w;
}

config::WindowConfig timeWindow(config::Duration span, std::uint32_t minCalls, double failureRate) {
  config::WindowConfig w;
  w.type = config::WindowType::Time;
  w.size.value = span;
  w.minCalls = minCalls;
  w.failureRate = failureRate;
  return w;
}

// Collects transitions; thread-safe because listeners may run on any thread.
struct Recorder {
  std::mutex mutex;
  std::vector<Transition> seen;

  Breaker::Listener listener() {
    return [this](const Transition& t) {
      std::lock_guard lock(mutex);
      seen.push_back(t);
    };
  }
  std::vector<std::string> names() {
    std::lock_guard lock(mutex);
    std::vector<std::string> out;
    for (const auto& t : seen) out.emplace_back(eventName(t));
    return out;
  }
  Transition last() {
    std::lock_guard lock(mutex);
    REQUIRE(!seen.empty());
    return seen.back();
  }
};

struct Harness {
  ManualClock clock;
  Recorder recorder;
  std::unique_ptr<Breaker> breaker;

  explicit Harness(const Options& o) : breaker(std::make_unique<Breaker>(o, clock, std::vector{recorder.listener()})) {}
  explicit Harness(const config::BreakerConfig& c) : Harness(optionsOf(c)) {}

  Breaker& b() { return *breaker; }

  void report(Outcome outcome, Clock::duration d = 1ms, std::optional<Clock::duration> retryAfter = {}) {
    const Permit p = breaker->tryAcquire();
    REQUIRE(p.admitted);
    breaker->onResult(p, outcome, d, retryAfter);
  }
  void succeed(int n = 1, Clock::duration d = 1ms) {
    for (int i = 0; i < n; ++i) report(Outcome::Success, d);
  }
  void fail(int n = 1, std::optional<Clock::duration> retryAfter = {}) {
    for (int i = 0; i < n; ++i) report(Outcome::Retriable, 1ms, retryAfter);
  }
  // Open time of the last open transition.
  Clock::duration lastOpenFor() { return breaker->snapshot().openFor; }
  // Waits out the open time and takes the first trial permit.
  Permit toHalfOpen() {
    const auto at = breaker->nextRetryAt();
    REQUIRE(at.has_value());
    clock.set(*at);
    const Permit p = breaker->tryAcquire();
    REQUIRE(p.admitted);
    REQUIRE(p.state == State::HalfOpen);
    return p;
  }
};

TEST_CASE("a new breaker is closed and admits calls") {
  Harness h(exactConfig());
  CHECK(h.b().state() == State::Closed);
  CHECK_FALSE(h.b().nextRetryAt().has_value());
  const Permit p = h.b().tryAcquire();
  CHECK(p.admitted);
  CHECK(p.state == State::Closed);
  CHECK(h.recorder.seen.empty());
}

TEST_CASE("breaker opens after failure_threshold consecutive failures") {
  auto c = exactConfig();
  c.failureThreshold = 3;
  Harness h(c);
  h.fail(2);
  CHECK(h.b().state() == State::Closed);
  CHECK(h.b().snapshot().consecutiveFailures == 2);
  h.fail();
  CHECK(h.b().state() == State::Open);
  const Transition t = h.recorder.last();
  CHECK(t.from == State::Closed);
  CHECK(t.cause == Cause::ConsecutiveFailures);
  CHECK(t.consecutiveFailures == 3);
  CHECK(t.openFor == 30s);
  CHECK(t.nextRetryAt == h.clock.now() + 30s);
}

TEST_CASE("a success resets the consecutive failure count") {
  auto c = exactConfig();
  c.failureThreshold = 3;
  Harness h(c);
  h.fail(2);
  h.succeed();
  CHECK(h.b().snapshot().consecutiveFailures == 0);
  h.fail(2);
  CHECK(h.b().state() == State::Closed);
}

TEST_CASE("an open breaker rejects calls until the open timeout has passed") {
  auto c = exactConfig();
  c.failureThreshold = 1;
  Harness h(c);
  h.fail();
  const auto opened = h.clock.now();
  CHECK(h.b().nextRetryAt() == opened + 30s);
  h.clock.advance(30s - 1ns);
  const Permit p = h.b().tryAcquire();
  CHECK_FALSE(p.admitted);
  CHECK(p.state == State::Open);
  CHECK(h.b().state() == State::Open);
  CHECK(h.b().snapshot().totals.rejected == 1);
}

TEST_CASE("an open breaker moves to half-open on the first permit after the open timeout") {
  auto c = exactConfig();
  c.failureThreshold = 1;
  Harness h(c);
  h.fail();
  h.clock.advance(30s);
  CHECK(h.b().state() == State::Open);  // only a permit request moves it
  const Permit p = h.b().tryAcquire();
  CHECK(p.admitted);
  CHECK(p.state == State::HalfOpen);
  CHECK(h.b().state() == State::HalfOpen);
  CHECK_FALSE(h.b().nextRetryAt().has_value());
  CHECK(h.recorder.last().cause == Cause::OpenTimeoutElapsed);
}

TEST_CASE("half-open admits at most half_open_max_calls trials") {
  auto c = exactConfig();
  c.failureThreshold = 1;
  c.halfOpenMaxCalls = 3;
  c.successThreshold = 3;
  Harness h(c);
  h.fail();
  std::vector<Permit> trials{h.toHalfOpen(), h.b().tryAcquire(), h.b().tryAcquire()};
  CHECK(std::all_of(trials.begin(), trials.end(), [](const Permit& p) { return p.admitted; }));
  const Permit extra = h.b().tryAcquire();
  CHECK_FALSE(extra.admitted);
  CHECK(extra.state == State::HalfOpen);
  CHECK(h.b().snapshot().trialsAdmitted == 3);
}

TEST_CASE("a success in half-open does not free a trial slot") {
  auto c = exactConfig();
  c.failureThreshold = 1;
  c.halfOpenMaxCalls = 2;
  c.successThreshold = 2;
  Harness h(c);
  h.fail();
  const Permit first = h.toHalfOpen();
  h.b().onResult(first, Outcome::Success, 1ms);
  const Permit second = h.b().tryAcquire();
  CHECK(second.admitted);
  CHECK_FALSE(h.b().tryAcquire().admitted);  // per period, not merely in flight
}

TEST_CASE("breaker closes after success_threshold trial successes") {
  auto c = exactConfig();
  c.failureThreshold = 1;
  c.halfOpenMaxCalls = 2;
  c.successThreshold = 2;
  Harness h(c);
  h.fail();
  const Permit a = h.toHalfOpen();
  const Permit b = h.b().tryAcquire();
  h.b().onResult(a, Outcome::Success, 1ms);
  CHECK(h.b().state() == State::HalfOpen);
  CHECK(h.b().snapshot().trialSuccesses == 1);
  h.b().onResult(b, Outcome::Success, 1ms);
  CHECK(h.b().state() == State::Closed);
  const Transition t = h.recorder.last();
  CHECK(t.from == State::HalfOpen);
  CHECK(t.cause == Cause::TrialsSucceeded);
  CHECK(t.trialSuccesses == 2);
}

TEST_CASE("a trial failure re-opens the breaker") {
  auto c = exactConfig();
  c.failureThreshold = 1;
  c.halfOpenMaxCalls = 2;
  c.successThreshold = 2;
  Harness h(c);
  h.fail();
  const Permit a = h.toHalfOpen();
  const Permit b = h.b().tryAcquire();
  h.b().onResult(a, Outcome::Success, 1ms);
  h.b().onResult(b, Outcome::Retriable, 1ms);
  CHECK(h.b().state() == State::Open);
  CHECK(h.recorder.last().from == State::HalfOpen);
  CHECK(h.recorder.last().cause == Cause::TrialFailure);
}

TEST_CASE("breaker re-opens with doubled open time") {
  auto c = exactConfig();
  c.failureThreshold = 1;
  c.openTimeout = 1s;
  c.backoffMultiplier = 2;
  c.maxOpenTimeout = 1min;
  Harness h(c);
  h.fail();
  CHECK(h.lastOpenFor() == 1s);
  for (auto expected : {2s, 4s, 8s}) {
    const Permit trial = h.toHalfOpen();
    h.b().onResult(trial, Outcome::Retriable, 1ms);
    CHECK(h.lastOpenFor() == expected);
    CHECK(h.b().nextRetryAt() == h.clock.now() + expected);
  }
}

TEST_CASE("open time grows by a fractional multiplier") {
  auto c = exactConfig();
  c.failureThreshold = 1;
  c.openTimeout = 1s;
  c.backoffMultiplier = 1.5;
  Harness h(c);
  h.fail();
  h.b().onResult(h.toHalfOpen(), Outcome::Retriable, 1ms);
  CHECK(h.lastOpenFor() == 1500ms);
  h.b().onResult(h.toHalfOpen(), Outcome::Retriable, 1ms);
  CHECK(h.lastOpenFor() == 2250ms);
}

TEST_CASE("open time is capped at max_open_timeout") {
  auto c = exactConfig();
  c.failureThreshold = 1;
  c.openTimeout = 1s;
  c.backoffMultiplier = 3;
  c.maxOpenTimeout = 5s;
  Harness h(c);
  h.fail();
  h.b().onResult(h.toHalfOpen(), Outcome::Retriable, 1ms);
  CHECK(h.lastOpenFor() == 3s);
  for (int i = 0; i < 70; ++i) {  // far past any overflow of the multiplier
    h.b().onResult(h.toHalfOpen(), Outcome::Retriable, 1ms);
    REQUIRE(h.lastOpenFor() == 5s);
  }
}

TEST_CASE("open time returns to the base after a clean close") {
  auto c = exactConfig();
  c.failureThreshold = 1;
  c.openTimeout = 1s;
  c.halfOpenMaxCalls = 1;
  c.successThreshold = 1;
  Harness h(c);
  h.fail();
  h.b().onResult(h.toHalfOpen(), Outcome::Retriable, 1ms);
  h.b().onResult(h.toHalfOpen(), Outcome::Retriable, 1ms);
  CHECK(h.lastOpenFor() == 4s);
  h.b().onResult(h.toHalfOpen(), Outcome::Success, 1ms);
  REQUIRE(h.b().state() == State::Closed);
  h.fail();
  CHECK(h.lastOpenFor() == 1s);
}

TEST_CASE("jitter keeps the open time within its bounds and varies it") {
  auto c = exactConfig();
  c.failureThreshold = 1;
  c.openTimeout = 10s;
  c.maxOpenTimeout = 20s;
  c.backoffMultiplier = 2;
  c.jitter = 0.2;
  c.successThreshold = 1;
  c.halfOpenMaxCalls = 1;
  Harness h(c);
  std::set<Clock::duration::rep> seen;
  for (int i = 0; i < 500; ++i) {
    h.fail();  // from closed: base 10s, +-20%
    const auto base = h.lastOpenFor();
    CHECK(base >= 8s);
    CHECK(base <= 12s);
    seen.insert(base.count());
    h.b().onResult(h.toHalfOpen(), Outcome::Retriable, 1ms);  // nominal 20s = the cap: only downwards
    const auto capped = h.lastOpenFor();
    CHECK(capped >= 16s);
    CHECK(capped <= 20s);
    h.b().onResult(h.toHalfOpen(), Outcome::Success, 1ms);
    REQUIRE(h.b().state() == State::Closed);
  }
  CHECK(seen.size() > 450);
  CHECK(*seen.begin() < std::chrono::nanoseconds(8500ms).count());  // spread over the whole range
  CHECK(*seen.rbegin() > std::chrono::nanoseconds(11500ms).count());
}

TEST_CASE("the same seed gives the same open times") {
  auto c = exactConfig();
  c.failureThreshold = 1;
  c.jitter = 0.5;
  auto run = [&](std::uint64_t seed) {
    Harness h(optionsOf(c, seed));
    std::vector<Clock::duration> opens;
    for (int i = 0; i < 5; ++i) {
      h.fail();
      opens.push_back(h.lastOpenFor());
      h.b().reset();
    }
    return opens;
  };
  CHECK(run(7) == run(7));
  CHECK(run(7) != run(8));
}

TEST_CASE("retry-after is a floor on the open time") {
  auto c = exactConfig();
  c.failureThreshold = 1;
  c.openTimeout = 1s;
  Harness h(c);
  h.fail(1, 45s);
  CHECK(h.lastOpenFor() == 45s);
  CHECK(h.b().nextRetryAt() == h.clock.now() + 45s);
}

TEST_CASE("retry-after shorter than the open time changes nothing") {
  auto c = exactConfig();
  c.failureThreshold = 1;
  c.openTimeout = 10s;
  Harness h(c);
  h.fail(1, 2s);
  CHECK(h.lastOpenFor() == 10s);
}

TEST_CASE("retry-after is capped at max_open_timeout") {
  auto c = exactConfig();
  c.failureThreshold = 1;
  c.openTimeout = 1s;
  c.maxOpenTimeout = 1min;
  Harness h(c);
  h.fail(1, 24h);
  CHECK(h.lastOpenFor() == 1min);
}

TEST_CASE("retry-after from an earlier failure or throttle holds when the breaker opens") {
  auto c = exactConfig();
  c.failureThreshold = 3;
  c.openTimeout = 1s;
  Harness h(c);
  h.report(Outcome::Throttled, 1ms, 60s);
  h.clock.advance(10s);
  h.fail(3);
  CHECK(h.lastOpenFor() == 50s);  // what is left of the server's 60 s
}

TEST_CASE("a trial failure with retry-after re-opens for at least that long") {
  auto c = exactConfig();
  c.failureThreshold = 1;
  c.openTimeout = 1s;
  Harness h(c);
  h.fail();
  h.b().onResult(h.toHalfOpen(), Outcome::Retriable, 1ms, 30s);
  CHECK(h.lastOpenFor() == 30s);
}

TEST_CASE("a late success after the breaker opened does not close it") {
  auto c = exactConfig();
  c.failureThreshold = 1;
  c.halfOpenMaxCalls = 1;
  c.successThreshold = 1;
  Harness h(c);
  const Permit late = h.b().tryAcquire();
  h.fail();
  REQUIRE(h.b().state() == State::Open);
  h.b().onResult(late, Outcome::Success, 1ms);
  CHECK(h.b().state() == State::Open);
  h.clock.advance(30s);
  const Permit trial = h.b().tryAcquire();
  REQUIRE(trial.state == State::HalfOpen);
  h.b().onResult(late, Outcome::Success, 1ms);  // still from before the open, so not a trial
  CHECK(h.b().state() == State::HalfOpen);
  const auto s = h.b().snapshot();
  CHECK(s.totals.stale == 2);
  CHECK(s.totals.successes == 2);  // the calls did succeed; they just do not move the state
}

TEST_CASE("a late failure after the breaker closed does not count") {
  auto c = exactConfig();
  c.failureThreshold = 2;
  c.halfOpenMaxCalls = 1;
  c.successThreshold = 1;
  Harness h(c);
  const Permit late = h.b().tryAcquire();
  h.fail(2);
  h.b().onResult(h.toHalfOpen(), Outcome::Success, 1ms);
  REQUIRE(h.b().state() == State::Closed);
  h.b().onResult(late, Outcome::Retriable, 1ms);
  CHECK(h.b().snapshot().consecutiveFailures == 0);
  h.fail();
  CHECK(h.b().state() == State::Closed);
}

TEST_CASE("a late trial result from an earlier half-open period is ignored") {
  auto c = exactConfig();
  c.failureThreshold = 1;
  c.halfOpenMaxCalls = 2;
  c.successThreshold = 1;
  Harness h(c);
  h.fail();
  const Permit old = h.toHalfOpen();
  h.b().onResult(h.b().tryAcquire(), Outcome::Retriable, 1ms);
  const Permit fresh = h.toHalfOpen();
  h.b().onResult(old, Outcome::Success, 1ms);
  CHECK(h.b().state() == State::HalfOpen);
  h.b().onResult(fresh, Outcome::Success, 1ms);
  CHECK(h.b().state() == State::Closed);
}

TEST_CASE("throttled calls are counted but do not trip by default") {
  auto c = exactConfig();
  c.failureThreshold = 2;
  Harness h(c);
  h.fail();
  for (int i = 0; i < 10; ++i) h.report(Outcome::Throttled);
  CHECK(h.b().state() == State::Closed);
  const auto s = h.b().snapshot();
  CHECK(s.totals.throttled == 10);
  CHECK(s.consecutiveFailures == 1);  // neither counted nor a reset
}

TEST_CASE("throttled calls trip the breaker with trip_on_throttle") {
  auto c = exactConfig();
  c.failureThreshold = 2;
  c.tripOnThrottle = true;
  Harness h(c);
  h.report(Outcome::Throttled);
  h.report(Outcome::Throttled);
  CHECK(h.b().state() == State::Open);
  CHECK(h.b().snapshot().totals.throttled == 2);
  CHECK(h.b().snapshot().totals.failures == 0);
}

TEST_CASE("permanent failures never count against the breaker") {
  auto c = exactConfig();
  c.failureThreshold = 1;
  c.window = countWindow(10, 1, 1);
  Harness h(c);
  for (int i = 0; i < 20; ++i) h.report(Outcome::Permanent);
  CHECK(h.b().state() == State::Closed);
  const auto s = h.b().snapshot();
  CHECK(s.totals.permanent == 20);
  CHECK(s.window->calls == 0);
}

TEST_CASE("a throttled or permanent trial frees its slot for another trial") {
  auto c = exactConfig();
  c.failureThreshold = 1;
  c.halfOpenMaxCalls = 1;
  c.successThreshold = 1;
  Harness h(c);
  h.fail();
  h.b().onResult(h.toHalfOpen(), Outcome::Throttled, 1ms);
  CHECK(h.b().state() == State::HalfOpen);
  const Permit second = h.b().tryAcquire();
  REQUIRE(second.admitted);
  h.b().onResult(second, Outcome::Permanent, 1ms);
  const Permit third = h.b().tryAcquire();
  REQUIRE(third.admitted);
  h.b().onResult(third, Outcome::Success, 1ms);
  CHECK(h.b().state() == State::Closed);
}

TEST_CASE("a released trial permit frees its slot") {
  auto c = exactConfig();
  c.failureThreshold = 1;
  c.halfOpenMaxCalls = 1;
  c.successThreshold = 1;
  Harness h(c);
  h.fail();
  const Permit trial = h.toHalfOpen();
  CHECK_FALSE(h.b().tryAcquire().admitted);
  h.b().release(trial);
  CHECK(h.b().snapshot().trialsAdmitted == 0);
  CHECK(h.b().tryAcquire().admitted);
  CHECK(h.b().snapshot().totals.calls == 1);  // released calls are not results
}

TEST_CASE("count window trips on failure rate once min_calls is reached") {
  auto c = exactConfig();
  c.failureThreshold = 1000;
  c.window = countWindow(10, 6, 50);
  Harness h(c);
  h.fail();
  h.succeed();
  h.fail();
  h.succeed();
  h.fail();  // 3 of 5: above the rate, below min_calls
  CHECK(h.b().state() == State::Closed);
  CHECK(h.b().snapshot().window->failureRate() == doctest::Approx(60));
  h.succeed();  // 3 of 6 = 50%
  CHECK(h.b().state() == State::Open);
  const Transition t = h.recorder.last();
  CHECK(t.cause == Cause::FailureRate);
  REQUIRE(t.window.has_value());
  CHECK(t.window->calls == 6);
  CHECK(t.window->failures == 3);
}

TEST_CASE("count window does not trip below the failure rate") {
  auto c = exactConfig();
  c.failureThreshold = 1000;
  c.window = countWindow(10, 5, 50);
  Harness h(c);
  for (int i = 0; i < 100; ++i) {
    h.fail();
    h.succeed(2);
  }
  CHECK(h.b().state() == State::Closed);
  CHECK(h.b().snapshot().window->calls == 10);
}

TEST_CASE("count window forgets calls older than its size") {
  auto c = exactConfig();
  c.failureThreshold = 1000;
  c.window = countWindow(4, 4, 75);
  Harness h(c);
  h.fail(2);
  h.succeed(2);  // 2 of 4
  h.succeed(2);  // the failures fall out: 0 of 4
  CHECK(h.b().snapshot().window->failures == 0);
  h.fail(2);  // 2 of 4
  CHECK(h.b().state() == State::Closed);
  h.fail();  // 3 of 4
  CHECK(h.b().state() == State::Open);
}

TEST_CASE("time window trips on failure rate within its span") {
  auto c = exactConfig();
  c.failureThreshold = 1000;
  c.window = timeWindow(10s, 4, 50);
  Harness h(c);
  h.succeed();
  h.clock.advance(3s);
  h.fail();
  h.clock.advance(3s);
  h.succeed();
  CHECK(h.b().state() == State::Closed);
  h.clock.advance(3s);
  h.fail();  // 2 of 4 within 9 s
  CHECK(h.b().state() == State::Open);
  CHECK(h.recorder.last().cause == Cause::FailureRate);
}

TEST_CASE("time window forgets calls older than its span") {
  auto c = exactConfig();
  c.failureThreshold = 1000;
  c.window = timeWindow(10s, 3, 50);
  Harness h(c);
  h.fail(2);
  h.clock.advance(10s);  // buckets of 500 ms: the failures are gone after at most 10 s
  CHECK(h.b().snapshot().window->calls == 0);
  h.fail();
  h.succeed(2);  // 1 of 3
  CHECK(h.b().state() == State::Closed);
  h.clock.advance(9s);  // still inside
  h.fail();             // 2 of 4
  CHECK(h.b().state() == State::Open);
}

TEST_CASE("a time window keeps a call for 95 to 100 percent of its span") {
  auto c = exactConfig();
  c.failureThreshold = 1000;
  c.window = timeWindow(10s, 1, 100);
  Harness h(c);
  h.succeed();  // at the start of a 500 ms bucket: kept for the whole span
  h.clock.advance(10s - 1ns);
  CHECK(h.b().snapshot().window->calls == 1);
  h.clock.advance(1ns);
  CHECK(h.b().snapshot().window->calls == 0);
  h.clock.advance(500ms - 1ns);
  h.succeed();  // at the end of a bucket: kept for 95% of the span
  h.clock.advance(9500ms);
  CHECK(h.b().snapshot().window->calls == 1);
  h.clock.advance(1ns);
  CHECK(h.b().snapshot().window->calls == 0);
}

TEST_CASE("slow-call rate trips the breaker") {
  auto c = exactConfig();
  c.failureThreshold = 1000;
  auto w = countWindow(10, 4, 100);
  w.slowCallRate = 50;
  w.slowCallDuration = 2s;
  c.window = w;
  Harness h(c);
  h.succeed(2, 100ms);
  h.succeed(1, 2s);  // exactly the limit is not slow
  h.succeed(1, 3s);
  CHECK(h.b().state() == State::Closed);
  CHECK(h.b().snapshot().window->slow == 1);
  h.succeed(1, 5s);  // 2 of 5 slow
  CHECK(h.b().state() == State::Closed);
  h.succeed(1, 5s);  // 3 of 6
  CHECK(h.b().state() == State::Open);
  CHECK(h.recorder.last().cause == Cause::SlowCallRate);
  CHECK(h.b().snapshot().totals.slow == 3);
}

TEST_CASE("consecutive failures trip before the window's min_calls") {
  auto c = exactConfig();
  c.failureThreshold = 3;
  c.window = countWindow(100, 50, 50);
  Harness h(c);
  h.fail(3);
  CHECK(h.b().state() == State::Open);
  CHECK(h.recorder.last().cause == Cause::ConsecutiveFailures);
}

TEST_CASE("a failure threshold of zero leaves only the window rule") {
  auto o = optionsOf(exactConfig());
  o.failureThreshold = 0;
  Harness h(o);
  for (int i = 0; i < 1000; ++i) h.fail();
  CHECK(h.b().state() == State::Closed);
}

TEST_CASE("the window starts afresh after the breaker opens and closes") {
  auto c = exactConfig();
  c.failureThreshold = 1000;
  c.halfOpenMaxCalls = 1;
  c.successThreshold = 1;
  c.window = countWindow(10, 4, 50);
  Harness h(c);
  h.succeed(2);
  h.fail(2);
  REQUIRE(h.b().state() == State::Open);
  CHECK(h.b().snapshot().window->calls == 0);
  h.b().onResult(h.toHalfOpen(), Outcome::Success, 1ms);
  REQUIRE(h.b().state() == State::Closed);
  CHECK(h.b().snapshot().window->calls == 0);  // trials are not window calls
  h.fail();
  CHECK(h.b().state() == State::Closed);
}

TEST_CASE("force-open rejects every call and ignores the open timeout") {
  Harness h(exactConfig());
  h.b().forceOpen();
  CHECK(h.b().state() == State::ForcedOpen);
  CHECK_FALSE(h.b().nextRetryAt().has_value());
  h.clock.advance(24h);
  const Permit p = h.b().tryAcquire();
  CHECK_FALSE(p.admitted);
  CHECK(p.state == State::ForcedOpen);
  CHECK(h.b().snapshot().totals.rejected == 1);
  h.b().forceOpen();  // already there: no second event
  CHECK(h.recorder.names() == std::vector<std::string>{"breaker_forced_open"});
}

TEST_CASE("force-open ignores results of calls admitted before it") {
  Harness h(exactConfig());
  const Permit p = h.b().tryAcquire();
  h.b().forceOpen();
  h.b().onResult(p, Outcome::Success, 1ms);
  CHECK(h.b().state() == State::ForcedOpen);
  CHECK(h.b().snapshot().totals.stale == 1);
}

TEST_CASE("disabled admits every call and still counts") {
  auto c = exactConfig();
  c.failureThreshold = 2;
  c.window = countWindow(10, 2, 50);
  Harness h(c);
  h.b().forceClose();
  CHECK(h.b().state() == State::Disabled);
  h.fail(50);
  h.succeed(2);
  h.fail(3);
  CHECK(h.b().state() == State::Disabled);
  const auto s = h.b().snapshot();
  CHECK(s.totals.failures == 53);
  CHECK(s.totals.successes == 2);
  CHECK(s.consecutiveFailures == 3);
  CHECK(s.window->calls == 10);
  CHECK(s.window->failures == 8);
  const Permit p = h.b().tryAcquire();
  CHECK(p.admitted);
  CHECK(p.state == State::Disabled);
}

TEST_CASE("force-close from open admits calls at once") {
  auto c = exactConfig();
  c.failureThreshold = 1;
  Harness h(c);
  h.fail();
  h.b().forceClose();
  CHECK(h.b().tryAcquire().admitted);
  CHECK_FALSE(h.b().nextRetryAt().has_value());
  CHECK(h.recorder.names() == std::vector<std::string>{"breaker_open", "breaker_disabled"});
}

TEST_CASE("resuming auto from forced open goes to half-open") {
  auto c = exactConfig();
  c.halfOpenMaxCalls = 1;
  c.successThreshold = 1;
  Harness h(c);
  h.b().forceOpen();
  h.b().resumeAuto();
  CHECK(h.b().state() == State::HalfOpen);
  CHECK(h.recorder.last().cause == Cause::ResumeAuto);
  const Permit trial = h.b().tryAcquire();
  REQUIRE(trial.admitted);
  CHECK_FALSE(h.b().tryAcquire().admitted);
  h.b().onResult(trial, Outcome::Success, 1ms);
  CHECK(h.b().state() == State::Closed);
}

TEST_CASE("resuming auto from disabled closes when no trip rule is met") {
  auto c = exactConfig();
  c.failureThreshold = 3;
  Harness h(c);
  h.b().forceClose();
  h.fail(2);
  h.b().resumeAuto();
  CHECK(h.b().state() == State::Closed);
  CHECK(h.b().snapshot().consecutiveFailures == 2);  // carried over: one more failure trips
  h.fail();
  CHECK(h.b().state() == State::Open);
}

TEST_CASE("resuming auto from disabled opens when the counted failures meet a trip rule") {
  auto c = exactConfig();
  c.failureThreshold = 3;
  Harness h(c);
  h.b().forceClose();
  h.fail(5);
  h.b().resumeAuto();
  CHECK(h.b().state() == State::Open);
  const Transition t = h.recorder.last();
  CHECK(t.from == State::Disabled);
  CHECK(t.cause == Cause::ConsecutiveFailures);
  CHECK(t.consecutiveFailures == 5);
  CHECK(t.openFor == 30s);
}

TEST_CASE("resuming auto from disabled opens when the window's failure rate is met") {
  auto c = exactConfig();
  c.failureThreshold = 1000;
  c.window = countWindow(10, 4, 50);
  Harness h(c);
  h.b().forceClose();
  h.fail();
  h.succeed();
  h.fail();
  h.succeed();
  h.b().resumeAuto();
  CHECK(h.b().state() == State::Open);
  CHECK(h.recorder.last().cause == Cause::FailureRate);
}

TEST_CASE("resuming auto outside a forced mode changes nothing") {
  auto c = exactConfig();
  c.failureThreshold = 1;
  Harness h(c);
  h.b().resumeAuto();
  CHECK(h.b().state() == State::Closed);
  h.fail();
  h.b().resumeAuto();
  CHECK(h.b().state() == State::Open);
  CHECK(h.recorder.names() == std::vector<std::string>{"breaker_open"});
}

TEST_CASE("reset closes the breaker and clears its counts and backoff") {
  auto c = exactConfig();
  c.failureThreshold = 2;
  c.openTimeout = 1s;
  c.window = countWindow(10, 10, 50);
  Harness h(c);
  h.fail(2);
  h.b().onResult(h.toHalfOpen(), Outcome::Retriable, 1ms);
  REQUIRE(h.lastOpenFor() == 2s);
  h.b().reset();
  CHECK(h.b().state() == State::Closed);
  h.fail();
  auto s = h.b().snapshot();
  CHECK(s.consecutiveFailures == 1);
  CHECK(s.window->calls == 1);
  h.b().reset();
  s = h.b().snapshot();
  CHECK(s.consecutiveFailures == 0);
  CHECK(s.window->calls == 0);
  CHECK(s.totals.failures == 4);  // lifetime totals stay
  h.fail(2);
  CHECK(h.lastOpenFor() == 1s);
}

TEST_CASE("reset leaves a forced mode and drops a pending retry-after") {
  auto c = exactConfig();
  c.failureThreshold = 1;
  c.openTimeout = 1s;
  Harness h(c);
  h.report(Outcome::Throttled, 1ms, 60s);
  h.b().forceOpen();
  h.b().reset();
  CHECK(h.b().state() == State::Closed);
  h.fail();
  CHECK(h.lastOpenFor() == 1s);
}

TEST_CASE("reset ignores results of calls started before it") {
  auto c = exactConfig();
  c.failureThreshold = 1;
  Harness h(c);
  const Permit before = h.b().tryAcquire();
  h.b().reset();
  h.b().onResult(before, Outcome::Retriable, 1ms);
  CHECK(h.b().state() == State::Closed);
}

TEST_CASE("listeners hear every transition once and in order") {
  auto c = exactConfig();
  c.failureThreshold = 1;
  c.halfOpenMaxCalls = 1;
  c.successThreshold = 1;
  Harness h(c);
  h.fail();
  h.b().onResult(h.toHalfOpen(), Outcome::Retriable, 1ms);
  h.b().onResult(h.toHalfOpen(), Outcome::Success, 1ms);
  h.b().forceOpen();
  h.b().resumeAuto();
  h.b().forceClose();
  h.b().resumeAuto();
  h.b().reset();
  CHECK(h.recorder.names() == std::vector<std::string>{"breaker_open", "breaker_half_open", "breaker_open",
                                                       "breaker_half_open", "breaker_closed", "breaker_forced_open",
                                                       "breaker_half_open", "breaker_disabled", "breaker_closed",
                                                       "breaker_reset"});
  std::uint64_t generation = 0;
  for (const auto& t : h.recorder.seen) {
    CHECK(t.generation == ++generation);
  }
  CHECK(h.recorder.seen[1].from == State::Open);
  CHECK(h.recorder.seen[5].from == State::Closed);
  CHECK(h.recorder.seen[9].from == State::Closed);
}

TEST_CASE("a listener may call back into the breaker") {
  ManualClock clock;
  Recorder recorder;
  auto c = exactConfig();
  c.failureThreshold = 1;
  Breaker* self = nullptr;
  std::vector<Breaker::Listener> listeners{[&](const Transition& t) {
                                             CHECK(self->snapshot().generation >= t.generation);
                                             if (t.to == State::Open)
                                               self->forceOpen();  // an operator hook reacting to an open
                                           },
                                           recorder.listener()};
  Breaker b(optionsOf(c), clock, listeners);
  self = &b;
  const Permit p = b.tryAcquire();
  b.onResult(p, Outcome::Retriable, 1ms);
  CHECK(b.state() == State::ForcedOpen);
  CHECK(recorder.names() == std::vector<std::string>{"breaker_open", "breaker_forced_open"});
}

TEST_CASE("a throwing listener does not stop delivery to the others") {
  ManualClock clock;
  Recorder recorder;
  std::vector<Breaker::Listener> listeners{[](const Transition&) { throw std::runtime_error("listener"); },
                                           recorder.listener()};
  Breaker b(optionsOf(exactConfig()), clock, listeners);
  b.forceOpen();
  b.reset();
  CHECK(recorder.names() == std::vector<std::string>{"breaker_forced_open", "breaker_reset"});
}

TEST_CASE("each transition is logged once as a structured event") {
  std::ostringstream out;
  auto logger = std::make_shared<spdlog::logger>("breaker-test", std::make_shared<spdlog::sinks::ostream_sink_mt>(out));
  logger->set_level(spdlog::level::trace);
  ManualClock clock;
  auto c = exactConfig();
  c.failureThreshold = 1;
  c.halfOpenMaxCalls = 1;
  c.successThreshold = 1;
  Breaker b(optionsOf(c), clock, {transitionLogger("events", logger)});
  const Permit p = b.tryAcquire();
  b.onResult(p, Outcome::Retriable, 1ms);
  clock.advance(30s);
  b.onResult(b.tryAcquire(), Outcome::Success, 1ms);
  b.forceOpen();
  b.forceClose();
  b.reset();
  logger->flush();

  const std::string text = out.str();
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  const std::vector<std::string> expected{"breaker_open",        "breaker_half_open", "breaker_closed",
                                          "breaker_forced_open", "breaker_disabled",  "breaker_reset"};
  REQUIRE(lines.size() == expected.size());
  for (std::size_t i = 0; i < lines.size(); ++i) {
    CAPTURE(lines[i]);
    CHECK(lines[i].find(expected[i]) != std::string::npos);
    CHECK(lines[i].find("events") != std::string::npos);
  }
  CHECK(lines[0].find("next_retry_at") != std::string::npos);
  CHECK(lines[0].find("consecutive_failures") != std::string::npos);
}

TEST_CASE("snapshot reports totals, transitions per edge and time in state") {
  auto c = exactConfig();
  c.failureThreshold = 2;
  c.halfOpenMaxCalls = 1;
  c.successThreshold = 1;
  Harness h(c);
  h.succeed(3);
  h.report(Outcome::Throttled);
  h.report(Outcome::Permanent);
  h.fail(2);
  CHECK_FALSE(h.b().tryAcquire().admitted);
  h.clock.advance(5s);
  auto s = h.b().snapshot();
  CHECK(s.state == State::Open);
  CHECK(s.timeInState == 5s);
  CHECK(s.nextRetryAt == s.since + 30s);
  CHECK(s.openFor == 30s);
  CHECK(s.totals.calls == 7);
  CHECK(s.totals.successes == 3);
  CHECK(s.totals.failures == 2);
  CHECK(s.totals.throttled == 1);
  CHECK(s.totals.permanent == 1);
  CHECK(s.totals.rejected == 1);
  CHECK(s.totals.stale == 0);
  CHECK(s.opens() == 1);
  CHECK(s.transitionCount(State::Closed, State::Open) == 1);
  CHECK_FALSE(s.window.has_value());

  h.b().onResult(h.toHalfOpen(), Outcome::Retriable, 1ms);
  h.b().onResult(h.toHalfOpen(), Outcome::Success, 1ms);
  s = h.b().snapshot();
  CHECK(s.state == State::Closed);
  CHECK(s.timeInState == 0s);
  CHECK_FALSE(s.nextRetryAt.has_value());
  CHECK(s.opens() == 2);
  CHECK(s.transitionCount(State::Open, State::HalfOpen) == 2);
  CHECK(s.transitionCount(State::HalfOpen, State::Open) == 1);
  CHECK(s.transitionCount(State::HalfOpen, State::Closed) == 1);
  CHECK(s.generation == 5);
}

TEST_CASE("optionsFrom maps every field of the breaker config") {
  config::BreakerConfig c;
  c.failureThreshold = 7;
  c.successThreshold = 3;
  c.openTimeout = 2s;
  c.maxOpenTimeout = 90s;
  c.backoffMultiplier = 1.5;
  c.jitter = 0.25;
  c.halfOpenMaxCalls = 4;
  c.tripOnThrottle = true;
  c.probe = true;
  c.mode = config::BreakerMode::MetricsOnly;
  auto w = timeWindow(60s, 20, 40);
  w.slowCallRate = 80;
  w.slowCallDuration = 1500ms;
  c.window = w;
  const Options o = optionsFrom(c);
  CHECK(o.failureThreshold == 7);
  CHECK(o.successThreshold == 3);
  CHECK(o.openTimeout == 2s);
  CHECK(o.maxOpenTimeout == 90s);
  CHECK(o.backoffMultiplier == 1.5);
  CHECK(o.jitter == 0.25);
  CHECK(o.halfOpenMaxCalls == 4);
  CHECK(o.tripOnThrottle);
  CHECK(o.probe);
  CHECK(o.mode == Mode::MetricsOnly);
  CHECK(optionsFrom(config::BreakerConfig{}).mode == Mode::Enforce);
  REQUIRE(o.window.has_value());
  CHECK(o.window->type == WindowType::Time);
  CHECK(o.window->span == 60s);
  CHECK(o.window->minCalls == 20);
  CHECK(o.window->failureRatePercent == 40);
  CHECK(o.window->slowCallRatePercent == 80);
  CHECK(o.window->slowCallDuration == 1500ms);

  c.window = countWindow(25, 5, 50);
  const Options counted = optionsFrom(c);
  CHECK(counted.window->type == WindowType::Count);
  CHECK(counted.window->calls == 25);
  CHECK_FALSE(optionsFrom(config::BreakerConfig{}).window.has_value());
}

TEST_CASE("the kind of window comes from window.type, not from how its size was written") {
  config::BreakerConfig c;
  config::WindowConfig w;
  w.type = config::WindowType::Time;
  w.size.value = std::uint64_t{100};  // a size the loader would have refused for a time window
  c.window = w;
  const Options timed = optionsFrom(c);
  REQUIRE(timed.window.has_value());
  CHECK(timed.window->type == WindowType::Time);
  CHECK(timed.window->span == 1min);

  w.type = config::WindowType::Count;
  w.size.value = config::Duration(30s);
  c.window = w;
  const Options counted = optionsFrom(c);
  REQUIRE(counted.window.has_value());
  CHECK(counted.window->type == WindowType::Count);
  CHECK(counted.window->calls == 100);
}

TEST_CASE("out-of-range options are clamped so a trial can always close the breaker") {
  auto o = optionsOf(exactConfig());
  o.failureThreshold = 1;
  o.halfOpenMaxCalls = 0;
  o.successThreshold = 5;
  o.backoffMultiplier = 0.5;
  Harness h(o);
  CHECK(h.b().options().halfOpenMaxCalls == 1);
  CHECK(h.b().options().successThreshold == 1);
  CHECK(h.b().options().backoffMultiplier == 1);
  h.fail();
  h.b().onResult(h.toHalfOpen(), Outcome::Success, 1ms);
  CHECK(h.b().state() == State::Closed);
}

TEST_CASE("concurrent permits in half-open never exceed half_open_max_calls") {
  auto c = exactConfig();
  c.failureThreshold = 1;
  c.halfOpenMaxCalls = 3;
  c.successThreshold = 3;
  constexpr int kThreads = 8;
  for (int round = 0; round < 50; ++round) {
    Harness h(c);
    h.fail();
    h.clock.advance(30s);
    std::atomic<int> admitted{0};
    std::barrier start(kThreads);
    std::vector<std::thread> threads;
    for (int i = 0; i < kThreads; ++i) {
      threads.emplace_back([&] {
        start.arrive_and_wait();
        for (int k = 0; k < 100; ++k) {
          if (h.b().tryAcquire().admitted) admitted.fetch_add(1);
        }
      });
    }
    for (auto& t : threads) t.join();
    CHECK(admitted.load() == 3);
    const auto s = h.b().snapshot();
    CHECK(s.transitionCount(State::Open, State::HalfOpen) == 1);  // one thread moved it, once
    CHECK(s.totals.rejected == kThreads * 100 - 3);
  }
}

TEST_CASE("concurrent trials whose slots are recycled never exceed the limit in flight") {
  auto c = exactConfig();
  c.failureThreshold = 1;
  c.halfOpenMaxCalls = 2;
  c.successThreshold = 2;
  Harness h(c);
  h.fail();
  h.clock.advance(30s);
  constexpr int kThreads = 6;
  std::atomic<int> inFlight{0};
  std::atomic<int> maxInFlight{0};
  std::atomic<int> trials{0};
  std::barrier start(kThreads);
  std::vector<std::thread> threads;
  for (int i = 0; i < kThreads; ++i) {
    threads.emplace_back([&] {
      start.arrive_and_wait();
      for (int k = 0; k < 2000; ++k) {
        const Permit p = h.b().tryAcquire();
        if (!p.admitted) continue;
        const int now = inFlight.fetch_add(1) + 1;
        int seen = maxInFlight.load();
        while (now > seen && !maxInFlight.compare_exchange_weak(seen, now)) {
        }
        trials.fetch_add(1);
        inFlight.fetch_sub(1);
        // Throttled trials decide nothing, so their slots go round again.
        h.b().onResult(p, Outcome::Throttled, 1ms);
      }
    });
  }
  for (auto& t : threads) t.join();
  CHECK(maxInFlight.load() <= 2);
  CHECK(trials.load() > 2);
  CHECK(h.b().state() == State::HalfOpen);
}

TEST_CASE("concurrent failures open the breaker exactly once") {
  auto c = exactConfig();
  c.failureThreshold = 10;
  constexpr int kThreads = 4;
  for (int round = 0; round < 20; ++round) {
    Harness h(c);
    std::barrier start(kThreads);
    std::vector<std::thread> threads;
    for (int i = 0; i < kThreads; ++i) {
      threads.emplace_back([&] {
        start.arrive_and_wait();
        for (int k = 0; k < 50; ++k) {
          const Permit p = h.b().tryAcquire();
          if (p.admitted) h.b().onResult(p, Outcome::Retriable, 1ms);
        }
      });
    }
    for (auto& t : threads) t.join();
    const auto s = h.b().snapshot();
    CHECK(s.state == State::Open);
    CHECK(s.opens() == 1);
    CHECK(h.recorder.names() == std::vector<std::string>{"breaker_open"});
    CHECK(s.totals.failures + s.totals.rejected == kThreads * 50);
  }
}

TEST_CASE("breaker stays consistent under concurrent results and operator commands") {
  auto c = exactConfig();
  c.failureThreshold = 3;
  c.openTimeout = 1ms;
  c.maxOpenTimeout = 4ms;
  c.halfOpenMaxCalls = 2;
  c.successThreshold = 1;
  c.window = countWindow(20, 5, 50);
  Harness h(c);
  constexpr int kWorkers = 3;
  constexpr int kCalls = 3000;
  std::atomic<bool> done{false};
  std::vector<std::thread> workers;
  for (int i = 0; i < kWorkers; ++i) {
    workers.emplace_back([&, i] {
      for (int k = 0; k < kCalls; ++k) {
        const Permit p = h.b().tryAcquire();
        if (!p.admitted) continue;
        const Outcome o = (k + i) % 3 == 0 ? Outcome::Retriable : Outcome::Success;
        h.b().onResult(p, o, std::chrono::milliseconds(k % 7));
      }
    });
  }
  std::thread operatorThread([&] {
    for (int k = 0; !done.load(); ++k) {
      switch (k % 5) {
        case 0:
          h.b().forceOpen();
          break;
        case 1:
          h.b().resumeAuto();
          break;
        case 2:
          h.b().forceClose();
          break;
        case 3:
          h.b().resumeAuto();
          break;
        case 4:
          h.b().reset();
          break;
      }
      (void)h.b().snapshot();
      (void)h.b().nextRetryAt();
      h.clock.advance(1ms);
    }
  });
  for (auto& t : workers) t.join();
  done = true;
  operatorThread.join();
  const auto s = h.b().snapshot();
  CHECK(s.totals.calls + s.totals.rejected == kWorkers * kCalls);
  std::uint64_t transitions = 0;
  for (const auto& row : s.transitions) {
    for (auto n : row) transitions += n;
  }
  CHECK(transitions == s.generation);
  CHECK(h.recorder.seen.size() == transitions);
}

TEST_CASE("an open period restored after a restart opens at its level and trial time, then backs off from there") {
  auto c = exactConfig();
  c.openTimeout = 1s;
  c.backoffMultiplier = 2;
  c.maxOpenTimeout = 1min;
  Harness h(c);
  h.b().restoreOpen(3, 5s);
  CHECK(h.b().state() == State::Open);
  CHECK(h.recorder.last().cause == Cause::Restored);
  CHECK(h.b().nextRetryAt() == h.clock.now() + 5s);
  CHECK(h.b().snapshot().backoffLevel == 3);
  CHECK_FALSE(h.b().tryAcquire().admitted);  // no call before its trial time
  const Permit trial = h.toHalfOpen();
  h.b().onResult(trial, Outcome::Retriable, 1ms);
  CHECK(h.lastOpenFor() == 16s);  // level 4: 1 s doubled four times
}

TEST_CASE("restoring an open period does nothing to a breaker that is not closed") {
  auto c = exactConfig();
  c.failureThreshold = 1;
  c.openTimeout = 1s;
  Harness h(c);
  h.b().forceOpen();
  h.b().restoreOpen(2, 30s);
  CHECK(h.b().state() == State::ForcedOpen);
}

}  // namespace
}  // namespace logcapture::circuit

namespace logcapture::circuit {
namespace {

TEST_CASE("time in each state adds up every period and counts the current one up to the read") {
  auto c = exactConfig();
  c.failureThreshold = 1;
  c.halfOpenMaxCalls = 1;
  c.successThreshold = 1;
  Harness h(c);
  h.clock.advance(10s);
  h.fail();  // closed 10 s, then open for 30 s
  h.clock.advance(12s);
  auto s = h.b().snapshot();
  CHECK(s.timeIn(State::Closed) == 10s);
  CHECK(s.timeIn(State::Open) == 12s);  // still open: counted up to the read
  h.clock.advance(3s);
  CHECK(h.b().snapshot().timeIn(State::Open) == 15s);

  const Permit trial = h.toHalfOpen();  // open 30 s in all
  h.clock.advance(2s);
  h.b().onResult(trial, Outcome::Success, 2s);  // half-open 2 s
  h.clock.advance(7s);
  s = h.b().snapshot();
  CHECK(s.state == State::Closed);
  CHECK(s.timeIn(State::Closed) == 17s);
  CHECK(s.timeIn(State::Open) == 30s);
  CHECK(s.timeIn(State::HalfOpen) == 2s);
  CHECK(s.timeIn(State::ForcedOpen) == 0s);
  CHECK(s.timeIn(State::Disabled) == 0s);
}

TEST_CASE("the forced states count their own time") {
  Harness h(exactConfig());
  h.clock.advance(1s);
  h.b().forceOpen();
  h.clock.advance(4s);
  h.b().forceClose();
  h.clock.advance(6s);
  h.b().resumeAuto();
  h.clock.advance(2s);
  const auto s = h.b().snapshot();
  CHECK(s.timeIn(State::Closed) == 3s);
  CHECK(s.timeIn(State::ForcedOpen) == 4s);
  CHECK(s.timeIn(State::Disabled) == 6s);
  Clock::duration sum{};
  for (const auto d : s.stateTimes) sum += d;
  CHECK(sum == 13s);
}

TEST_CASE("a breaker restored open at start counts its time as open from the start") {
  auto c = exactConfig();
  Harness h(c);
  h.clock.advance(50ms);  // the agent starting up between building the breaker and restoring it
  h.b().restoreOpen(0, 10s);
  h.clock.advance(4s);
  const auto s = h.b().snapshot();
  CHECK(s.timeIn(State::Closed) == 0s);
  CHECK(s.timeIn(State::Open) == 4s + 50ms);
}

Options metricsOnly(config::BreakerConfig c) {
  Options o = optionsOf(c);
  o.mode = Mode::MetricsOnly;
  return o;
}

TEST_CASE("a metrics-only breaker opens as usual and still admits every call") {
  auto c = exactConfig();
  c.failureThreshold = 2;
  Harness h(metricsOnly(c));
  h.fail(2);
  CHECK(h.b().state() == State::Open);
  CHECK(h.recorder.names() == std::vector<std::string>{"breaker_open"});
  for (int i = 0; i < 5; ++i) {
    const Permit p = h.b().tryAcquire();
    CHECK(p.admitted);
    CHECK(p.bypassed);
    CHECK(p.state == State::Open);
    h.b().onResult(p, i % 2 == 0 ? Outcome::Success : Outcome::Retriable, 1ms, 1h);
  }
  const auto s = h.b().snapshot();
  CHECK(s.state == State::Open);  // a bypassed success does not close it
  CHECK(s.totals.rejected == 0);
  CHECK(s.totals.bypassed == 5);
  CHECK(s.totals.calls == 7);  // the bypassed calls did happen
  CHECK(s.totals.stale == 0);
  CHECK(s.transitionCount(State::Closed, State::Open) == 1);
  h.b().onResult(h.toHalfOpen(), Outcome::Retriable, 1ms);
  CHECK(h.lastOpenFor() == 60s);  // a bypassed call's Retry-After did not stretch it
}

TEST_CASE("a metrics-only breaker runs its trials as an enforcing one and bypasses the calls beyond them") {
  auto c = exactConfig();
  c.failureThreshold = 1;
  c.halfOpenMaxCalls = 2;
  c.successThreshold = 2;
  Harness h(metricsOnly(c));
  h.fail();
  const Permit first = h.toHalfOpen();
  CHECK_FALSE(first.bypassed);
  const Permit second = h.b().tryAcquire();
  CHECK(second.state == State::HalfOpen);
  CHECK_FALSE(second.bypassed);
  const Permit third = h.b().tryAcquire();  // no trial slot left: an enforcing breaker refuses it
  CHECK(third.admitted);
  CHECK(third.bypassed);
  h.b().release(third);  // frees no trial slot
  CHECK(h.b().snapshot().trialsAdmitted == 2);
  h.b().onResult(third, Outcome::Retriable, 1ms);  // nor does its failure re-open the breaker
  CHECK(h.b().state() == State::HalfOpen);
  h.b().onResult(first, Outcome::Success, 1ms);
  h.b().onResult(second, Outcome::Success, 1ms);
  CHECK(h.b().state() == State::Closed);
  CHECK(h.recorder.names() == std::vector<std::string>{"breaker_open", "breaker_half_open", "breaker_closed"});
}

TEST_CASE("a metrics-only breaker still refuses every call when forced open") {
  Harness h(metricsOnly(exactConfig()));
  h.b().forceOpen();
  const Permit p = h.b().tryAcquire();
  CHECK_FALSE(p.admitted);
  CHECK(h.b().snapshot().totals.rejected == 1);
  CHECK(h.b().snapshot().totals.bypassed == 0);
}

}  // namespace
}  // namespace logcapture::circuit
