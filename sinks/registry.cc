#include "sinks/registry.h"

#include "sinks/console/console_sink.h"
#include "sinks/http/http_sink.h"
#include "sinks/kafka/kafka_sink.h"
#include "sinks/redis/redis_sink.h"

namespace logcapture::sinks {

std::variant<std::unique_ptr<Sink>, std::string> makeSink(const config::SinkConfig& cfg) {
  // One line per sink type; no default, so a new SinkType fails to compile until it is listed here.
  switch (cfg.type) {
    case config::SinkType::Kafka:
      return std::make_unique<kafka::KafkaSink>(cfg);
    case config::SinkType::Redis:
      return std::make_unique<redis::RedisSink>(cfg);
    case config::SinkType::Http:
      return std::make_unique<http::HttpSink>(cfg);
    case config::SinkType::Console:
      return std::make_unique<console::ConsoleSink>(cfg);
  }
  return "unknown sink type " + std::to_string(static_cast<int>(cfg.type));
}

}  // namespace logcapture::sinks
