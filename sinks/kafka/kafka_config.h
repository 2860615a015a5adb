#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "config/types.h"

namespace logcapture::config {
struct SinkConfig;
}
namespace logcapture::sinks {
class Sink;
}

namespace logcapture::sinks::kafka {

struct KafkaConfig {
  static constexpr const char* kType = "kafka";  // the `type` key that selects these settings
  std::vector<std::string> brokers;
  std::string topic;
  std::string key;
  std::map<std::string, std::string> properties;
};
template <class V>
void describe(V& v, KafkaConfig& c) {
  v.field("brokers", c.brokers, "bootstrap brokers, host:port each", config::Flags{.required = true});
  v.field("topic", c.topic, "topic; may use {{field}} from the record", config::Flags{.required = true});
  v.field("key", c.key, "message key; may use {{field}}; empty: no key");
  v.field("properties", c.properties, "librdkafka options passed as they are (enable.idempotence defaults to true)");
}
void check(config::Section& s, KafkaConfig& c);

// Builds the sink these settings are for, not yet started; defined beside it (kafka_sink.cc).
std::unique_ptr<Sink> build(const KafkaConfig& settings, const config::SinkConfig& cfg);

}  // namespace logcapture::sinks::kafka
