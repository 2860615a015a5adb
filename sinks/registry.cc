#include "sinks/registry.h"

#include "sinks/console/console_sink.h"
#include "sinks/kafka/kafka_sink.h"

namespace logcapture::sinks {

std::variant<std::unique_ptr<Sink>, std::string> makeSink(const config::SinkConfig& cfg) {
  switch (cfg.type) {
    case config::SinkType::Console:
      return std::make_unique<console::ConsoleSink>(cfg);
    case config::SinkType::Kafka:
      return std::make_unique<kafka::KafkaSink>(cfg);
    case config::SinkType::Redis:
    case config::SinkType::Http:
      break;
  }
  return "sink type '" + std::string(config::enumNames(cfg.type)[static_cast<std::size_t>(cfg.type)].second) +
         "' cannot ship yet";
}

}  // namespace logcapture::sinks
