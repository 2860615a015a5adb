#include "sinks/kafka/kafka_config.h"

#include <librdkafka/rdkafka.h>

#include <memory>

#include "config/endpoint.h"
#include "config/section.h"

namespace logcapture::sinks::kafka {
namespace {

// "{{field}}" placeholders must be closed and name something.
std::string templateProblem(const std::string& text) {
  std::size_t pos = 0;
  while ((pos = text.find("{{", pos)) != std::string::npos) {
    const auto close = text.find("}}", pos + 2);
    if (close == std::string::npos) return "'{{' without a closing '}}'";
    if (close == pos + 2) return "an empty '{{}}' placeholder";
    pos = close + 2;
  }
  return {};
}

}  // namespace

void check(config::Section& s, KafkaConfig& c) {
  for (std::size_t i = 0; i < c.brokers.size(); ++i) {
    if (!config::parseEndpoint(c.brokers[i])) {
      s.errorAt(s.pathOf("brokers") + "[" + std::to_string(i) + "]",
                "expected host:port such as 127.0.0.1:9092, found '" + c.brokers[i] + "'");
    }
  }
  for (const char* key : {"topic", "key"}) {
    const std::string& value = std::string_view(key) == "topic" ? c.topic : c.key;
    if (auto problem = templateProblem(value); !problem.empty()) s.error(key, "template has " + problem);
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
