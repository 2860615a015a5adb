#include "sinks/kafka/kafka_config.h"

#include <librdkafka/rdkafka.h>

#include <memory>

#include "config/endpoint.h"
#include "config/section.h"
#include "sinks/record_template.h"

namespace logcapture::sinks::kafka {

void check(config::Section& s, KafkaConfig& c) {
  for (std::size_t i = 0; i < c.brokers.size(); ++i) {
    if (!config::parseEndpoint(c.brokers[i])) {
      s.errorAt(s.pathOf("brokers") + "[" + std::to_string(i) + "]",
                "expected host:port such as 127.0.0.1:9092, found '" + c.brokers[i] + "'");
    }
  }
  for (const char* key : {"topic", "key"}) {
    const std::string& value = std::string_view(key) == "topic" ? c.topic : c.key;
    if (auto problem = RecordTemplate::problem(value)) s.error(key, "template has " + *problem);
  }
  // librdkafka judges its own options: an unknown name or a bad value is caught here, not at start-up.
  std::unique_ptr<rd_kafka_conf_t, decltype(&rd_kafka_conf_destroy)> conf(rd_kafka_conf_new(), rd_kafka_conf_destroy);
  for (const auto& [name, value] : c.properties) {
    const std::string path = s.pathOf("properties") + "." + name;
    if (name == "bootstrap.servers" || name == "metadata.broker.list") {
      s.errorAt(path, "set the brokers with the sink's 'brokers' key, not in properties");
      continue;
    }
    char err[512];
    if (rd_kafka_conf_set(conf.get(), name.c_str(), value.c_str(), err, sizeof err) != RD_KAFKA_CONF_OK) {
      s.errorAt(path, std::string("librdkafka rejects it: ") + err);
    }
  }
}

}  // namespace logcapture::sinks::kafka
