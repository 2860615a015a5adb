#pragma once

// Loads capture.yaml into a Config. Throws ConfigError listing every problem found, each with
// file:line:column and key path; a file that loads may still carry warnings.

#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "config/config.h"
#include "config/diagnostics.h"
#include "config/section.h"

namespace logcapture::config {

struct Loaded {
  Config config;
  std::vector<Diagnostic> warnings;
};

// Config files larger than this are refused: no real configuration comes near it, and it bounds
// the memory a mistaken path (a log file, a binary) can make us spend.
inline constexpr std::size_t kMaxConfigBytes = 4 << 20;

// The process environment, for ${VAR} interpolation.
EnvLookup processEnvironment();

Loaded loadFile(const std::string& path, const EnvLookup& env = processEnvironment());
// `name` stands for the file in messages; relative paths in the config resolve against baseDir.
Loaded loadString(std::string_view text, const std::string& name, const std::filesystem::path& baseDir,
                  const EnvLookup& env = processEnvironment());

}  // namespace logcapture::config
