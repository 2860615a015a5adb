#include "sinks/console/console_config.h"

#include "config/section.h"

namespace logcapture::sinks::console {

void check(config::Section& s, ConsoleConfig& c) { c.path = s.resolvePath(c.path); }

}  // namespace logcapture::sinks::console
