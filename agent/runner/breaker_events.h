#pragma once

// Structured log events for breaker transitions: one event per transition, named breaker_open,
// breaker_half_open, breaker_closed, breaker_forced_open, breaker_disabled or breaker_reset, with the
// sink, the previous state, the counts that caused it and, when it opened, the next retry time.
// Kept out of circuit/ so that the state machine itself does no I/O and knows no event names.

#include <memory>
#include <string>
#include <string_view>

#include "circuit/breaker.h"

namespace spdlog {
class logger;
}

namespace logcapture::agent {

// breaker_reset for an operator reset, otherwise breaker_<state entered>.
std::string_view eventName(const circuit::Transition& t);

// Writes one event for `t` on `logger`. Opening and the forced modes are warnings: the sink is
// degraded or under manual control.
void logTransition(spdlog::logger& logger, std::string_view sink, const circuit::Transition& t);

// A listener logging every transition of `sink`'s breaker on the "breaker" component logger.
circuit::Breaker::Listener transitionLogger(std::string sink);
circuit::Breaker::Listener transitionLogger(std::string sink, std::shared_ptr<spdlog::logger> logger);

}  // namespace logcapture::agent
