#pragma once

// Records view bytes and a source that their chunk owns (base/record.h). Tests that build single
// records by hand, outside any chunk, keep both here for the rest of the test run. Test thread only.

#include <memory>
#include <string_view>
#include <vector>

#include "base/json_object.h"
#include "base/record.h"

namespace logcapture::testing {

// A copy of `text` that lives until the test program ends.
inline std::string_view keptText(std::string_view text) {
  static base::RecordBytes bytes;
  return bytes.copy(text);
}

// Gives `record` the message `text` as a format: json input does (a json record with its member table
// when `text` is an object), its bytes kept until the test program ends.
inline base::JsonVerdict keepJson(base::Record& record, std::string_view text) {
  static base::RecordBytes bytes;
  base::JsonObjectReader reader;
  record.message = text;
  return base::placeJsonRecord(reader, record, bytes);
}

// `source`, kept alive until the test program ends.
inline const base::Source* keptSource(std::shared_ptr<const base::Source> source) {
  static std::vector<std::shared_ptr<const base::Source>> sources;
  sources.push_back(std::move(source));
  return sources.back().get();
}

}  // namespace logcapture::testing
