#pragma once

// Text with {{field}} placeholders filled from a record: Kafka topic and key, Elasticsearch index,
// Loki label values. Parsed once at start-up; render() is cheap for text without placeholders.
// Immutable after parse(): any thread may render.
//
// Field names are the keys of the JSON encoding: input, path, stream, kubernetes.namespace,
// kubernetes.pod, kubernetes.pod_uid, kubernetes.container, kubernetes.container_id, a static field's
// name, or a top-level key of a json record's object (string, number or bool values).

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "agent/record.h"

namespace logcapture::sinks {

class RecordTemplate {
 public:
  RecordTemplate() = default;
  // Parses `text`; on a malformed placeholder returns the problem ("'{{' without a closing '}}'").
  static std::optional<std::string> problem(std::string_view text);
  // IMPORTANT: call problem() first (the config check does); malformed placeholders render literally.
  explicit RecordTemplate(std::string_view text);

  bool constant() const { return fields_.empty(); }
  const std::string& text() const { return text_; }
  // Writes the rendered text to `out` (replacing its content). Returns the name of the first field
  // the record lacks (rendered empty), or nullopt when every field was found.
  std::optional<std::string> render(const agent::Record& record, std::string& out) const;

 private:
  struct Part {
    std::string literal;  // text before the placeholder
    std::string field;    // empty for the trailing literal
  };
  std::string text_;
  std::vector<Part> parts_;
  std::vector<std::string> fields_;
};

// The value of one field of a record, by the names above; nullopt when absent.
std::optional<std::string> recordField(const agent::Record& record, std::string_view name);

}  // namespace logcapture::sinks
