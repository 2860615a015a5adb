#pragma once

// The sink types, one row each. Adding a destination is a folder sinks/<type>/ and a row here:
// the folder holds its keys (<type>_config.h: a struct with `kType`, describe() and check(), and the
// declaration of build()), its Sink (<type>_sink.*, which defines build()) and its CMakeLists.txt.
// config reads the rows for the `type` key, the keys of each type, `check` and `--print`; the
// registry builds a sink by calling the build() of its settings' type.

#include <variant>

#include "sinks/console/console_config.h"
#include "sinks/http/http_config.h"
#include "sinks/kafka/kafka_config.h"
#include "sinks/redis/redis_config.h"

namespace logcapture::sinks {

using SinkSettings = std::variant<kafka::KafkaConfig, redis::RedisConfig, http::HttpConfig, console::ConsoleConfig>;

}  // namespace logcapture::sinks
