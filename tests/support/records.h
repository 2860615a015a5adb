#pragma once

// Records view bytes and a source that their chunk owns (agent/record.h). Tests that build single
// records by hand, outside any chunk, keep both here for the rest of the test run. Test thread only.

#include <memory>
#include <string_view>
#include <vector>

#include "agent/decode/json_object.h"
#include "agent/record.h"

namespace logcapture::testing {

// A copy of `text` that lives until the test program ends.
inline std::string_view keptText(std::string_view text) {
  static agent::RecordBytes bytes;
  return bytes.copy(text);
}

// Gives `record` the message `text` as a format: json input does (a json record with its member table
// when `text` is an object), its bytes kept until the test program ends.
inline agent::decode::JsonVerdict keepJson(agent::Record& record, std::string_view text) {
  static agent::RecordBytes bytes;
  agent::decode::JsonObjectReader reader;
  record.message = text;
  return agent::decode::placeJsonRecord(reader, record, bytes);
}

// `source`, kept alive until the test program ends.
inline const agent::Source* keptSource(std::shared_ptr<const agent::Source> source) {
  static std::vector<std::shared_ptr<const agent::Source>> sources;
  sources.push_back(std::move(source));
  return sources.back().get();
}

}  // namespace logcapture::testing
