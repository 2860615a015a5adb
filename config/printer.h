#pragma once

#include <string>

#include "config/config.h"

namespace logcapture::config {

// The effective configuration as YAML, every default filled in and secrets redacted
// (`logcapture check --print`). Loading the output gives the same Config.
std::string toYaml(const Config& config);

}  // namespace logcapture::config
