#pragma once

#include <string>

#include "config/config.h"

namespace logcapture::config {

// The effective configuration as YAML, every default filled in and secrets redacted by the rules of
// config/redact.h (`logcapture check --print`). Loading the output gives the same Config, but for the
// redacted values.
std::string toYaml(const Config& config);

// One part of the config as text with every default filled in and secrets included: two parts are
// configured alike exactly when their texts are equal (reload compares them). Never print it.
std::string canonical(const AgentConfig& part);
std::string canonical(const InputConfig& part);
std::string canonical(const QueueConfig& part);
std::string canonical(const SinkConfig& part);

}  // namespace logcapture::config
