// The send limit's decisions on made-up times: the ramp after a close, and the adaptive limit.

#include "agent/runner/send_limit.h"

#include <doctest/doctest.h>

#include <deque>
#include <functional>
#include <vector>

namespace {

using namespace logcapture;
using namespace logcapture::agent;
using namespace std::chrono_literals;
using circuit::Outcome;
using TimePoint = SendLimit::TimePoint;

const TimePoint t0 = TimePoint(std::chrono::hours(1));

SendLimit rampedLimit(std::uint32_t lanes, std::chrono::nanoseconds ramp = 10s) {
  return SendLimit(SendLimitOptions{.maxLimit = lanes, .adaptive = false, .ramp = ramp});
}

bool mayStart(const SendLimit& l, TimePoint now) {
  const auto at = l.nextStart(now);
  return at && *at <= now;
}

// Drives `limit` for `span` from `from` in steps of 1 ms with a backlog that never ends: every send
// the limit allows starts, and ends `latency` later with the outcome `answer` gives for its start time.
// Returns the start times.
std::vector<TimePoint> drive(SendLimit& limit, TimePoint from, std::chrono::nanoseconds span,
                             std::chrono::nanoseconds latency, const std::function<Outcome(TimePoint)>& answer) {
  struct InFlight {
    SendLimit::Ticket ticket;
    TimePoint endsAt;
    Outcome outcome;
  };
  std::deque<InFlight> inFlight;
  std::vector<TimePoint> starts;
  for (TimePoint now = from; now < from + span; now += 1ms) {
    while (!inFlight.empty() && inFlight.front().endsAt <= now) {
      limit.finish(inFlight.front().ticket, inFlight.front().outcome, latency, now);
      inFlight.pop_front();
    }
    while (mayStart(limit, now)) {
      inFlight.push_back({limit.start(now), now + latency, answer(now)});
      starts.push_back(now);
    }
  }
  return starts;
}

// The same with a latency that depends on the sends in flight when a send starts, and the limit sampled
// each 100 ms.
struct Loaded {
  std::vector<TimePoint> starts;
  std::vector<std::uint32_t> limits;
};
Loaded driveLoaded(SendLimit& limit, TimePoint from, std::chrono::nanoseconds span,
                   const std::function<std::chrono::nanoseconds(std::uint32_t)>& latencyAt) {
  struct InFlight {
    SendLimit::Ticket ticket;
    TimePoint endsAt;
    std::chrono::nanoseconds latency;
  };
  std::vector<InFlight> inFlight;
  Loaded out;
  for (TimePoint now = from; now < from + span; now += 1ms) {
    for (auto it = inFlight.begin(); it != inFlight.end();) {
      if (it->endsAt <= now) {
        limit.finish(it->ticket, Outcome::Success, it->latency, now);
        it = inFlight.erase(it);
      } else {
        ++it;
      }
    }
    while (mayStart(limit, now)) {
      const auto latency = latencyAt(std::uint32_t(inFlight.size() + 1));
      inFlight.push_back({limit.start(now), now + latency, latency});
      out.starts.push_back(now);
    }
    if ((now - from) % 100ms == 0ms) out.limits.push_back(limit.limit(now));
  }
  return out;
}

SendLimit adaptiveLimit(std::uint32_t maxWorkers) {
  return SendLimit(SendLimitOptions{.maxLimit = maxWorkers, .adaptive = true, .ramp = 10s});
}

std::size_t startsBetween(const std::vector<TimePoint>& starts, TimePoint from, TimePoint to) {
  std::size_t n = 0;
  for (auto t : starts) n += t >= from && t < to;
  return n;
}

Outcome alwaysSuccess(TimePoint) { return Outcome::Success; }
Outcome alwaysFailure(TimePoint) { return Outcome::Retriable; }

}  // namespace

TEST_CASE("a fixed number of workers outside a ramp lets every lane send at once") {
  SendLimit limit = rampedLimit(4);
  for (int i = 0; i < 4; ++i) {
    REQUIRE(mayStart(limit, t0));
    (void)limit.start(t0);
  }
  CHECK_FALSE(limit.nextStart(t0).has_value());
  CHECK(limit.limit(t0) == 4);
  CHECK_FALSE(limit.ramping(t0));
}

TEST_CASE("after a close the ramp starts at one batch in flight and two batches a second") {
  SendLimit limit = rampedLimit(4);
  limit.startRamp(t0);
  REQUIRE(mayStart(limit, t0));
  const auto ticket = limit.start(t0);
  CHECK(limit.limit(t0) == 1);
  CHECK_FALSE(limit.nextStart(t0).has_value());  // one in flight
  limit.finish(ticket, Outcome::Success, 5ms, t0 + 5ms);
  // The pace: the next start half a second after the last one.
  const auto next = limit.nextStart(t0 + 5ms);
  REQUIRE(next.has_value());
  CHECK(*next > t0 + 250ms);
  CHECK(*next <= t0 + 500ms);
}

TEST_CASE("a ramp's pace doubles each second while every send succeeds") {
  SendLimit limit = rampedLimit(4, 30s);
  limit.startRamp(t0);
  const auto starts = drive(limit, t0, 5s, 2ms, alwaysSuccess);
  std::vector<std::size_t> perSecond;
  for (int s = 0; s < 5; ++s) perSecond.push_back(startsBetween(starts, t0 + s * 1s, t0 + (s + 1) * 1s));
  MESSAGE("starts per second: " << perSecond[0] << " " << perSecond[1] << " " << perSecond[2] << " " << perSecond[3]
                                << " " << perSecond[4]);
  CHECK(perSecond[0] <= 4);
  for (int s = 1; s < 5; ++s) {
    CHECK(perSecond[s] >= perSecond[s - 1] * 3 / 2);
    CHECK(perSecond[s] <= perSecond[s - 1] * 3);
  }
}

TEST_CASE("a failure during a ramp halves its pace") {
  SendLimit limit = rampedLimit(4, 30s);
  limit.startRamp(t0);
  drive(limit, t0, 4s, 1ms, alwaysSuccess);
  const double before = limit.figures(t0 + 4s).rate;
  const auto ticket = limit.start(t0 + 4s);
  limit.finish(ticket, Outcome::Retriable, 1ms, t0 + 4s + 1ms);
  const double after = limit.figures(t0 + 4s + 1ms).rate;
  CHECK(before >= 8);
  CHECK(after == doctest::Approx(before / 2).epsilon(0.1));
}

TEST_CASE("a throttled send during a ramp slows it like a failure") {
  SendLimit limit = rampedLimit(4, 30s);
  limit.startRamp(t0);
  drive(limit, t0, 4s, 1ms, alwaysSuccess);
  const double before = limit.figures(t0 + 4s).rate;
  const auto ticket = limit.start(t0 + 4s);
  limit.finish(ticket, Outcome::Throttled, 1ms, t0 + 4s + 1ms);
  CHECK(limit.figures(t0 + 4s + 1ms).rate < before * 0.6);
}

TEST_CASE("a slow call during a ramp slows it") {
  SendLimit limit = rampedLimit(4, 30s);
  limit.startRamp(t0);
  drive(limit, t0, 4s, 10ms, alwaysSuccess);
  const double before = limit.figures(t0 + 4s).rate;
  const auto ticket = limit.start(t0 + 4s);
  limit.finish(ticket, Outcome::Success, 200ms, t0 + 4s + 200ms);
  CHECK(limit.figures(t0 + 4s + 200ms).rate < before * 0.8);
}

TEST_CASE("the outcomes of sends started before a decrease decrease nothing more") {
  SendLimit limit = rampedLimit(8, 30s);
  limit.startRamp(t0);
  drive(limit, t0, 4s, 1ms, alwaysSuccess);
  const TimePoint now = t0 + 4s;
  std::vector<SendLimit::Ticket> tickets;
  for (int i = 0; i < 3; ++i) tickets.push_back(limit.start(now));
  limit.finish(tickets[0], Outcome::Retriable, 1ms, now + 1ms);
  const double once = limit.figures(now + 1ms).rate;
  limit.finish(tickets[1], Outcome::Retriable, 1ms, now + 2ms);
  limit.finish(tickets[2], Outcome::Retriable, 1ms, now + 3ms);
  CHECK(limit.figures(now + 3ms).rate == doctest::Approx(once));
}

TEST_CASE("a ramp reaches every lane unpaced when its time is up though every send fails") {
  SendLimit limit = rampedLimit(4, 10s);
  limit.startRamp(t0);
  const auto starts = drive(limit, t0, 12s, 1ms, alwaysFailure);
  // Its floors rise with time: more starts in each later part of the ramp, however it is answered.
  CHECK(startsBetween(starts, t0 + 5s, t0 + 7s) > startsBetween(starts, t0, t0 + 2s));
  CHECK_FALSE(limit.ramping(t0 + 10s));
  CHECK(limit.limit(t0 + 12s) == 4);
  CHECK(limit.figures(t0 + 12s).rate == 0);
  // Full speed: thousands of starts a second with 1 ms sends on four lanes.
  CHECK(startsBetween(starts, t0 + 11s, t0 + 12s) > 3000);
}

TEST_CASE("a ramp of 0s leaves a close at full speed") {
  SendLimit limit = rampedLimit(4, 0s);
  limit.startRamp(t0);
  CHECK_FALSE(limit.ramping(t0));
  CHECK(limit.limit(t0) == 4);
  for (int i = 0; i < 4; ++i) (void)limit.start(t0);
  CHECK_FALSE(limit.nextStart(t0).has_value());
}

TEST_CASE("a send that did not take place gives back its slot and its turn of the pace") {
  SendLimit limit = rampedLimit(4);
  limit.startRamp(t0);
  const auto first = limit.start(t0);
  limit.finish(first, Outcome::Success, 1ms, t0 + 1ms);
  const auto paced = limit.nextStart(t0 + 1ms);
  REQUIRE(paced.has_value());
  const auto refused = limit.start(*paced);
  limit.cancel(refused, *paced);
  CHECK(limit.figures(*paced).inFlight == 0);
  CHECK(limit.nextStart(*paced) == paced);
}

TEST_CASE("a ramp keeps the pace near what a recovering destination takes") {
  // The destination takes 10 requests a second (a bucket of 3) and refuses the rest.
  double tokens = 3;
  TimePoint last = t0;
  std::uint64_t refused = 0;
  const auto destination = [&](TimePoint now) {
    tokens = std::min(3.0, tokens + 10 * std::chrono::duration<double>(now - last).count());
    last = now;
    if (tokens >= 1) {
      tokens -= 1;
      return Outcome::Success;
    }
    ++refused;
    return Outcome::Retriable;
  };
  SendLimit limit = rampedLimit(4, 30s);
  limit.startRamp(t0);
  const auto starts = drive(limit, t0, 15s, 5ms, destination);
  MESSAGE("starts in 15 s: " << starts.size() << ", refused: " << refused);
  CHECK(starts.size() >= 90);          // most of what it takes
  CHECK(refused * 4 < starts.size());  // and few refusals
}

TEST_CASE("a close during a ramp slows the ramp but keeps its end") {
  SendLimit limit = rampedLimit(4, 10s);
  limit.startRamp(t0);
  drive(limit, t0, 4s, 1ms, alwaysSuccess);
  const double before = limit.figures(t0 + 4s).rate;
  limit.startRamp(t0 + 4s);  // the breaker opened and closed again
  CHECK(limit.figures(t0 + 4s).rate < before);
  CHECK(limit.ramping(t0 + 9s));
  CHECK_FALSE(limit.ramping(t0 + 10s));
  CHECK(limit.limit(t0 + 10s) == 4);
}

TEST_CASE("an adaptive limit starts at one and grows to max_workers while latency holds") {
  SendLimit limit = adaptiveLimit(16);
  CHECK(limit.limit(t0) == 1);
  const auto run = driveLoaded(limit, t0, 2s, [](std::uint32_t) { return 10ms; });
  CHECK(limit.limit(t0 + 2s) == 16);
  CHECK(limit.figures(t0 + 2s).rate == 0);  // not paced outside a ramp
}

TEST_CASE("an adaptive limit settles where a destination slowing with load delivers most") {
  // latency = 20 ms + 0.3125 ms * c^2: a batch per latency per lane is most at c = 8 (40 ms a send).
  SendLimit limit = adaptiveLimit(32);
  const auto run = driveLoaded(limit, t0, 30s, [](std::uint32_t c) {
    return std::chrono::nanoseconds(std::int64_t(20e6 + 312.5e3 * double(c) * double(c)));
  });
  double sum = 0;
  std::uint32_t low = 99, high = 0;
  for (std::size_t i = run.limits.size() / 2; i < run.limits.size(); ++i) {
    sum += run.limits[i];
    low = std::min(low, run.limits[i]);
    high = std::max(high, run.limits[i]);
  }
  const double mean = sum / double(run.limits.size() - run.limits.size() / 2);
  const double perSecond = double(startsBetween(run.starts, t0 + 15s, t0 + 30s)) / 15;
  MESSAGE("limit over the last 15 s: mean " << mean << ", between " << low << " and " << high << "; " << perSecond
                                            << " sends/s (the best: 8 / 40 ms = 200/s; 32 at once: 94/s)");
  CHECK(mean > 4);
  CHECK(mean < 12);
  CHECK(perSecond > 150);
}

TEST_CASE("a throttled answer halves an adaptive limit") {
  SendLimit limit = adaptiveLimit(16);
  driveLoaded(limit, t0, 2s, [](std::uint32_t) { return 10ms; });
  REQUIRE(limit.limit(t0 + 2s) == 16);
  const auto ticket = limit.start(t0 + 2s);
  limit.finish(ticket, Outcome::Throttled, 10ms, t0 + 2s + 10ms);
  CHECK(limit.limit(t0 + 2s + 10ms) == 8);
}

TEST_CASE("an adaptive limit never falls below one send at a time") {
  SendLimit limit = adaptiveLimit(8);
  TimePoint now = t0;
  for (int i = 0; i < 20; ++i) {
    now += 10ms;
    const auto ticket = limit.start(now);
    limit.finish(ticket, Outcome::Retriable, 1ms, now + 1ms);
  }
  CHECK(limit.limit(now + 1ms) == 1);
  CHECK(mayStart(limit, now + 1ms));
}

TEST_CASE("a permanent refusal leaves an adaptive limit as it was") {
  SendLimit limit = adaptiveLimit(16);
  driveLoaded(limit, t0, 2s, [](std::uint32_t) { return 10ms; });
  const auto ticket = limit.start(t0 + 2s);
  limit.finish(ticket, Outcome::Permanent, 10ms, t0 + 2s + 10ms);
  CHECK(limit.limit(t0 + 2s + 10ms) == 16);
}
