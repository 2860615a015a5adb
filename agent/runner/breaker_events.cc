#include "agent/runner/breaker_events.h"

#include <spdlog/spdlog.h>

#include <chrono>
#include <cstdio>
#include <ctime>

#include "base/log.h"

namespace logcapture::agent {

using circuit::Breaker;
using circuit::Cause;
using circuit::causeName;
using circuit::Clock;
using circuit::State;
using circuit::stateName;
using circuit::Transition;
using circuit::WindowStats;

namespace {

// The breaker's clock is steady, which a reader cannot place; events carry the wall time instead.
std::string wallTime(std::chrono::system_clock::time_point t) {
  const auto ms = std::chrono::floor<std::chrono::milliseconds>(t);
  const std::time_t seconds = std::chrono::system_clock::to_time_t(std::chrono::floor<std::chrono::seconds>(ms));
  std::tm tm{};
  gmtime_r(&seconds, &tm);
  char buf[40];
  const auto n = std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
  std::snprintf(buf + n, sizeof buf - n, ".%03dZ", int(ms.time_since_epoch().count() % 1000));
  return buf;
}

std::int64_t millis(Clock::duration d) { return std::chrono::duration_cast<std::chrono::milliseconds>(d).count(); }

}  // namespace

std::string_view eventName(const Transition& t) {
  if (t.cause == Cause::Reset) return "breaker_reset";
  switch (t.to) {
    case State::Closed:
      return "breaker_closed";
    case State::Open:
      return "breaker_open";
    case State::HalfOpen:
      return "breaker_half_open";
    case State::ForcedOpen:
      return "breaker_forced_open";
    case State::Disabled:
      return "breaker_disabled";
  }
  return "breaker_unknown";
}

void logTransition(spdlog::logger& logger, std::string_view sink, const Transition& t) {
  const bool degraded = t.to == State::Open || t.to == State::ForcedOpen || t.to == State::Disabled;
  const auto level = degraded ? spdlog::level::warn : spdlog::level::info;
  const WindowStats window = t.window.value_or(WindowStats{});
  if (t.nextRetryAt) {
    // A local, so the string outlives the event's string_view fields.
    const std::string nextRetryAt = wallTime(std::chrono::system_clock::now() + (*t.nextRetryAt - t.at));
    log::event(logger, level, eventName(t),
               {{"sink", sink},
                {"from", stateName(t.from)},
                {"cause", causeName(t.cause)},
                {"consecutive_failures", t.consecutiveFailures},
                {"window_calls", window.calls},
                {"window_failure_rate", window.failureRate()},
                {"window_slow_call_rate", window.slowCallRate()},
                {"open_ms", millis(t.openFor)},
                {"next_retry_at", nextRetryAt}});
    return;
  }
  log::event(logger, level, eventName(t),
             {{"sink", sink},
              {"from", stateName(t.from)},
              {"cause", causeName(t.cause)},
              {"consecutive_failures", t.consecutiveFailures},
              {"trial_successes", t.trialSuccesses},
              {"window_calls", window.calls},
              {"window_failure_rate", window.failureRate()}});
}

Breaker::Listener transitionLogger(std::string sink) {
  return transitionLogger(std::move(sink), log::component("breaker"));
}

Breaker::Listener transitionLogger(std::string sink, std::shared_ptr<spdlog::logger> logger) {
  return [sink = std::move(sink), logger = std::move(logger)](const Transition& t) { logTransition(*logger, sink, t); };
}

}  // namespace logcapture::agent
