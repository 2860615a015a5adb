#pragma once

// Text forms of durations and sizes, shared by the loader (parse) and `check --print` (format).

#include <optional>
#include <string>
#include <string_view>

#include "config/types.h"

namespace logcapture::config {

// "250ms", "30s", "5m", "1h", "1d", "1m30s", "1.5s"; "0" alone is zero. Units: ns us ms s m h d.
// nullopt when the text is not a duration or overflows.
std::optional<Duration> parseDuration(std::string_view text);

// "512", "512B", "64KiB", "1MiB", "2GiB", "1TiB" (binary), "10KB", "5MB", "1GB" (decimal);
// unit letters are case-insensitive. nullopt when the text is not a size or overflows.
std::optional<Bytes> parseBytes(std::string_view text);

// The shortest exact form: 1500ms -> "1500ms", 90000ms -> "90s", 300000ms -> "5m".
std::string formatDuration(Duration d);
// The largest exact binary unit: 65536 -> "64KiB", 1000 -> "1000B".
std::string formatBytes(Bytes b);

}  // namespace logcapture::config
