#include "config/diagnostics.h"

namespace logcapture::config {
namespace {

std::string joinAll(const std::vector<Diagnostic>& errors) {
  std::string out;
  for (const auto& d : errors) {
    if (!out.empty()) out += '\n';
    out += d.format();
  }
  return out;
}

}  // namespace

std::string Diagnostic::format() const {
  std::string out = file;
  if (at.line > 0) out += ":" + std::to_string(at.line) + ":" + std::to_string(at.column);
  out += ": ";
  if (!path.empty()) out += path + ": ";
  out += message;
  return out;
}

ConfigError::ConfigError(std::vector<Diagnostic> errors)
    : std::runtime_error(joinAll(errors)), errors_(std::move(errors)) {}

}  // namespace logcapture::config
