#pragma once

// Config errors: every one names the file, line and column, the key path, what was expected and
// what was found. A load collects all of them and throws one ConfigError carrying the list.

#include <stdexcept>
#include <string>
#include <vector>

namespace logcapture::config {

struct Location {
  int line = 0;    // 1-based; 0 when the problem is the file itself
  int column = 0;  // 1-based
};

struct Diagnostic {
  std::string file;
  Location at;
  std::string path;  // key path such as sinks[2].breaker.open_timeout; empty for the whole file
  std::string message;

  // "capture.yaml:12:18: sinks[2].breaker.open_timeout: expected ..., found ..."
  std::string format() const;
};

class ConfigError : public std::runtime_error {
 public:
  explicit ConfigError(std::vector<Diagnostic> errors);
  const std::vector<Diagnostic>& errors() const { return errors_; }

 private:
  std::vector<Diagnostic> errors_;
};

}  // namespace logcapture::config
