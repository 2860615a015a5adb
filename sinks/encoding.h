#pragma once

// Encoding of records for sinks: `encoding: json` (an object with @timestamp, message and the
// record's fields) or `raw` (the line alone). Encoders append to a caller's buffer so a batch is
// encoded once into one allocation. Pure functions: any thread may call them.

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

#include "base/record.h"
#include "config/config.h"

namespace logcapture::sinks {

// Appends the record as one JSON object, without a newline:
// {"@timestamp":"2024-01-01T00:00:00.123456789Z","message":"...","input":"app","path":"/var/log/a.log",
//  "stream":"stdout","kubernetes":{...},"truncated":true,"json_error":"too_deep",<static fields>,
//  <members of a json record's object>}
// The record's own keys win over static fields, and those over the keys of a json record's object.
// A json record's message is its object's "message" member (null without one); its other members are
// copied as they were written, in their order, whitespace between tokens removed, so the object is never
// parsed again here. "json_error" marks a format: json line that went out as text (base/record.h).
void appendJsonRecord(std::string& out, const base::Record& record);

// Appends the record in the sink's encoding, without a newline.
void appendRecord(std::string& out, const base::Record& record, config::Encoding encoding);

}  // namespace logcapture::sinks
