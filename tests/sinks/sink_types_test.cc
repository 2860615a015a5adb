// The table of sink types (sinks/types.h) is what config, check and the registry read: each row's name
// selects its settings, and the registry builds the sink of that row.

#include "sinks/types.h"

#include <doctest/doctest.h>

#include <set>
#include <string>

#include "config/config.h"
#include "sinks/registry.h"

namespace {

using namespace logcapture;

template <class Settings>
void checkRow(const char* name) {
  const config::SinkType type = config::sinkTypeOf<Settings>();
  CHECK(std::string(config::enumNames(config::SinkType{})[static_cast<std::size_t>(type)].second) == name);
  CHECK(std::holds_alternative<Settings>(config::settingsFor(type)));
}

}  // namespace

TEST_CASE("each row of the sink table is named by its kType and holds its own settings") {
  checkRow<sinks::kafka::KafkaConfig>("kafka");
  checkRow<sinks::redis::RedisConfig>("redis");
  checkRow<sinks::http::HttpConfig>("http");
  checkRow<sinks::console::ConsoleConfig>("console");
  std::set<std::string> names;
  for (const auto& [type, name] : config::enumNames(config::SinkType{})) names.insert(name);
  CHECK(names.size() == std::variant_size_v<sinks::SinkSettings>);  // no two rows share a name
  CHECK(config::sinkTypeList() == "kafka, redis, http or console");
}

TEST_CASE("the registry builds a sink for every row of the table") {
  for (const auto& [type, name] : config::enumNames(config::SinkType{})) {
    config::SinkConfig cfg;
    cfg.name = std::string("s-") + name;
    cfg.type = type;
    cfg.settings = config::settingsFor(type);
    auto made = sinks::makeSink(cfg);
    CHECK_MESSAGE(std::holds_alternative<std::unique_ptr<sinks::Sink>>(made), name);
  }
}
