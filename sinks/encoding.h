#pragma once

// Encoding of records for sinks: `encoding: json` (an object with @timestamp, message and the
// record's fields) or `raw` (the line alone). Encoders append to a caller's buffer so a batch is
// encoded once into one allocation. Pure functions: any thread may call them.

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

#include "agent/record.h"
#include "config/config.h"

namespace logcapture::sinks {

// Appends `text` as a JSON string (quotes included). Invalid UTF-8 becomes U+FFFD, so the output is
// always valid JSON whatever the log line held.
void appendJsonString(std::string& out, std::string_view text);
// Strings in which appendJsonString() replaced invalid UTF-8, since the process started: each string
// once, however many bytes it replaced (a record encoded for two sinks counts twice). Thread-safe.
std::uint64_t invalidUtf8Replaced();

// Appends `t` as a quoted RFC 3339 UTC time with nanoseconds: "2024-01-01T00:00:00.123456789Z".
void appendJsonTimestamp(std::string& out, std::chrono::system_clock::time_point t);

// Appends the record as one JSON object, without a newline:
// {"@timestamp":"2024-01-01T00:00:00.123456789Z","message":"...","input":"app","path":"/var/log/a.log",
//  "stream":"stdout","kubernetes":{...},"truncated":true,"json_error":"too_deep",<static fields>,
//  <members of a json record's object>}
// The record's own keys win over static fields, and those over the keys of a json record's object.
// A json record's message is its object's "message" member (null without one); its other members are
// copied as they were written, in their order, whitespace between tokens removed, so the object is never
// parsed again here. "json_error" marks a format: json line that went out as text (agent/record.h).
void appendJsonRecord(std::string& out, const agent::Record& record);

// Appends the record in the sink's encoding, without a newline.
void appendRecord(std::string& out, const agent::Record& record, config::Encoding encoding);

}  // namespace logcapture::sinks
