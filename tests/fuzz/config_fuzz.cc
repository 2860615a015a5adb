// The config loader on arbitrary YAML text. A load either gives a Config or throws ConfigError; any
// other exception, a crash or a sanitizer report is a bug. A config that loads must print (toYaml) as
// text that loads back to the same config, as printer.h promises.

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>

#include "config/loader.h"
#include "config/printer.h"

namespace {

using namespace logcapture::config;

// A fixed environment, so ${VAR} interpolation is exercised and runs are reproducible.
std::optional<std::string> fixedEnvironment(const std::string& name) {
  if (name == "HOST") return "kafka:9092";
  if (name == "EMPTY") return "";
  if (name == "NUMBER") return "42";
  return std::nullopt;
}

std::optional<Loaded> load(std::string_view text) {
  try {
    return loadString(text, "fuzz.yaml", "/etc/logcapture", fixedEnvironment);
  } catch (const ConfigError&) {
    return std::nullopt;
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const auto first = load(std::string_view(reinterpret_cast<const char*>(data), size));
  if (!first) return 0;
  const std::string printed = toYaml(first->config);
  const auto second = load(printed);
  if (!second) {
    std::fprintf(stderr, "printed config does not load back:\n%s\n", printed.c_str());
    std::abort();
  }
  if (toYaml(second->config) != printed) {
    std::fprintf(stderr, "printed config loads back to another config:\n%s\n---\n%s\n", printed.c_str(),
                 toYaml(second->config).c_str());
    std::abort();
  }
  return 0;
}
