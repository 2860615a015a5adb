#include "sinks/registry.h"

namespace logcapture::sinks {

std::variant<std::unique_ptr<Sink>, std::string> makeSink(const config::SinkConfig& cfg) {
  // build() of the settings' type, found by argument-dependent lookup in its folder's namespace.
  std::unique_ptr<Sink> sink = std::visit([&](const auto& settings) { return build(settings, cfg); }, cfg.settings);
  if (!sink) return "sink type " + std::to_string(cfg.settings.index()) + " built nothing";
  return sink;
}

}  // namespace logcapture::sinks
