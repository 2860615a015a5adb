#pragma once

#include <string>

#include "config/types.h"

namespace logcapture::sinks::console {

struct ConsoleConfig {
  std::string path;
};
template <class V>
void describe(V& v, ConsoleConfig& c) {
  v.field("path", c.path, "file to append to; empty: standard output");
}
inline void check(config::Section&, ConsoleConfig&) {}

}  // namespace logcapture::sinks::console
