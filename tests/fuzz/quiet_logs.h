#pragma once

// The code under test logs its warnings once per object, which is once per input here: silence them,
// or the log costs more than the parsing and buries libFuzzer's own report.

#include "base/log.h"

namespace logcapture::fuzz {

inline void quietLogs() {
  static const bool done = [] {
    log::configure(log::Settings{.level = log::Level::Off});
    return true;
  }();
  (void)done;
}

}  // namespace logcapture::fuzz
