#pragma once

// The breaker's options from a sink's breaker config: the breaker (circuit/) knows nothing of config,
// the defaults live once, in config::BreakerConfig.

#include "circuit/breaker.h"
#include "config/config.h"

namespace logcapture::agent {

circuit::Options optionsFrom(const config::BreakerConfig& cfg);

}  // namespace logcapture::agent
