#pragma once

// The configuration reference: every key that describe() declares, as Markdown, for
// docs/configuration.md (`logcapture reference`; packaging/tests checks the file matches it).

#include <string>

namespace logcapture::config {

// Deterministic: the same declarations give the same text, byte for byte.
std::string referenceMarkdown();

}  // namespace logcapture::config
