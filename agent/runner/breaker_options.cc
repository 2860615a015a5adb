#include "agent/runner/breaker_options.h"

#include <variant>

namespace logcapture::agent {

circuit::Options optionsFrom(const config::BreakerConfig& cfg) {
  circuit::Options o;
  o.failureThreshold = cfg.failureThreshold;
  o.successThreshold = cfg.successThreshold;
  o.halfOpenMaxCalls = cfg.halfOpenMaxCalls;
  o.openTimeout = cfg.openTimeout;
  o.maxOpenTimeout = cfg.maxOpenTimeout;
  o.backoffMultiplier = cfg.backoffMultiplier;
  o.jitter = cfg.jitter;
  o.tripOnThrottle = cfg.tripOnThrottle;
  o.probe = cfg.probe;
  o.mode = cfg.mode == config::BreakerMode::MetricsOnly ? circuit::Mode::MetricsOnly : circuit::Mode::Enforce;
  if (cfg.window) {
    const auto& w = *cfg.window;
    circuit::WindowOptions wo;
    // `type` decides the kind of window. The loader makes the size agree with it; a size of the other
    // kind (from code that skipped the loader) gives that kind's usual size rather than another kind.
    if (w.type == config::WindowType::Count) {
      wo.type = circuit::WindowType::Count;
      const auto* calls = std::get_if<std::uint64_t>(&w.size.value);
      wo.calls = calls != nullptr ? *calls : std::get<std::uint64_t>(config::WindowSize{}.value);
    } else {
      wo.type = circuit::WindowType::Time;
      const auto* span = std::get_if<config::Duration>(&w.size.value);
      wo.span = span != nullptr ? circuit::Clock::duration(*span) : circuit::Clock::duration(std::chrono::minutes(1));
    }
    wo.minCalls = w.minCalls;
    wo.failureRatePercent = w.failureRate;
    wo.slowCallRatePercent = w.slowCallRate;
    wo.slowCallDuration = w.slowCallDuration;
    o.window = wo;
  }
  return o;
}

}  // namespace logcapture::agent
