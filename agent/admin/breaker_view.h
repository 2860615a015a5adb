#pragma once

// The JSON a sink's breaker shows on GET /api/v1/breakers: state, mode, options, counters, times (the
// time in each state since the breaker was built, in "state_seconds"), and the sink's delivery figures
// beside them.
//
// Thread-safety: reads a breaker snapshot and the runner's atomics and locked stats; any thread.

#include <chrono>
#include <nlohmann/json.hpp>
#include <string>

namespace logcapture::agent {
class SinkRunner;
}

namespace logcapture::agent::admin {

using Json = nlohmann::ordered_json;

// "2026-11-23T14:15:42.123456789Z".
std::string rfc3339(std::chrono::system_clock::time_point t);

// The view of one sink's breaker. Steady-clock times are shown as wall times (UTC): the breaker's
// clock is steady so that its timeouts survive clock changes, but a reader needs the wall time.
Json breakerView(SinkRunner& runner);

}  // namespace logcapture::agent::admin
