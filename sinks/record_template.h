#pragma once

// Text with {{field}} placeholders filled from a record: Kafka topic and key, Elasticsearch index,
// Loki label values. Parsed once at start-up; render() is cheap for text without placeholders.
// Immutable after parse(): any thread may render.
//
// Field names are the keys of the JSON encoding (sinks/encoding.h), looked up in the same order, so a
// placeholder shows what the encoded record shows at that key: input, path, stream,
// kubernetes.namespace, kubernetes.pod, kubernetes.pod_uid, kubernetes.container,
// kubernetes.container_id (each when not empty), then a static field's name (when not empty), then a
// top-level key of a json record's object: a string value decoded, a number or true/false as written;
// null, an object or an array counts as missing. Reading a json record's key costs a look at its member
// table (base/record.h), never a parse.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/record.h"

namespace logcapture::sinks {

class RecordTemplate {
 public:
  RecordTemplate() = default;
  // Parses `text`; on a malformed placeholder returns the problem ("'{{' without a closing '}}'").
  static std::optional<std::string> problem(std::string_view text);
  // IMPORTANT: call problem() first (the config check does); malformed placeholders render literally.
  explicit RecordTemplate(std::string_view text);

  bool constant() const { return parts_.size() == 1; }
  const std::string& text() const { return text_; }
  // Writes the rendered text to `out` (replacing its content). Returns the name of the first field
  // the record lacks (rendered empty), or nullopt when every field was found.
  std::optional<std::string> render(const base::Record& record, std::string& out) const;

  // The record's own keys a placeholder may name, resolved once at parse time.
  enum class Field : std::uint8_t {
    Input,
    Path,
    Stream,
    KubeNamespace,
    KubePod,
    KubePodUid,
    KubeContainer,
    KubeContainerId,
    Other,  // a static field or a key of a json record's object
  };

 private:
  struct Part {
    std::string literal;  // text before the placeholder
    std::string name;     // the field's name; empty for the trailing literal
    Field field = Field::Other;
  };
  std::string text_;
  std::vector<Part> parts_;
};

// Appends the value of one field of a record, by the names above, to `out`. False (and `out`
// unchanged) when the record lacks it.
bool appendRecordField(const base::Record& record, std::string_view name, std::string& out);

}  // namespace logcapture::sinks
