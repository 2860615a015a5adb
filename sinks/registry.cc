#include "sinks/registry.h"

#include "sinks/console/console_sink.h"
#include "sinks/http/http_sink.h"
#include "sinks/redis/redis_sink.h"

namespace logcapture::sinks {

std::variant<std::unique_ptr<Sink>, std::string> makeSink(const config::SinkConfig& cfg) {
  switch (cfg.type) {
    case config::SinkType::Console:
      return std::make_unique<console::ConsoleSink>(cfg);
    case config::SinkType::Redis:
      return std::make_unique<redis::RedisSink>(cfg);
    case config::SinkType::Http:
      return std::make_unique<http::HttpSink>(cfg);
    case config::SinkType::Kafka:
      break;
  }
  return "sink type '" + std::string(config::enumNames(cfg.type)[static_cast<std::size_t>(cfg.type)].second) +
         "' cannot ship yet";
}

}  // namespace logcapture::sinks
