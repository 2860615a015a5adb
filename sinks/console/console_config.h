#pragma once

#include <memory>
#include <string>

#include "config/types.h"

namespace logcapture::config {
struct SinkConfig;
}
namespace logcapture::sinks {
class Sink;
}

namespace logcapture::sinks::console {

struct ConsoleConfig {
  static constexpr const char* kType = "console";  // the `type` key that selects these settings
  std::string path;
};
template <class V>
void describe(V& v, ConsoleConfig& c) {
  v.field("path", c.path, "file to append to; empty: standard output");
}
void check(config::Section& s, ConsoleConfig& c);  // a relative path is the config file's

// Builds the sink these settings are for, not yet started; defined beside it (console_sink.cc).
std::unique_ptr<Sink> build(const ConsoleConfig& settings, const config::SinkConfig& cfg);

}  // namespace logcapture::sinks::console
