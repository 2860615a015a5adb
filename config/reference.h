#pragma once

// The configuration reference: every key that describe() declares, as Markdown, for
// docs/configuration.md (`logcapture reference`; packaging/tests checks the file matches it).

#include <string>
#include <vector>

namespace logcapture::config {

// Deterministic: the same declarations give the same text, byte for byte.
std::string referenceMarkdown();

// One declared key, as the reference lists it.
struct DeclaredKey {
  std::string name;       // with its part's prefix: "agent.log.level", "sinks[].breaker.window.type"
  std::string condition;  // the discriminators it exists under ("type: redis, mode: list"); empty: always
  bool required = false;
};
// Every key of the reference, in its order. A key declared under several conditions with different
// meanings (a kafka sink's `key`, a redis sink's) is listed once per condition.
std::vector<DeclaredKey> declaredKeys();

}  // namespace logcapture::config
