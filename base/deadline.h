#pragma once

// The one deadline of the agent: the steady-clock instant by which a call (a send, a probe, a stop)
// must return. Wall-clock jumps do not move it.

#include <chrono>

namespace logcapture::base {

using Deadline = std::chrono::steady_clock::time_point;

}  // namespace logcapture::base
