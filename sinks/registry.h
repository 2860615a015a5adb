#pragma once

// Builds sinks from their settings; the table of sink types is sinks/types.h.

#include <memory>
#include <string>
#include <variant>

#include "config/config.h"
#include "sinks/sink.h"

namespace logcapture::sinks {

// Builds the sink of `cfg.type`, not yet started. Returns an error text instead when the type cannot
// be built (never for a config that passed `logcapture check`).
std::variant<std::unique_ptr<Sink>, std::string> makeSink(const config::SinkConfig& cfg);

}  // namespace logcapture::sinks
