#pragma once

// Parsers of the line formats the decoder understands. RFC 3339 times, CRI lines and the common shape
// of docker json-file lines are parsed by hand: they run once per line on the input path, whose target
// is 1 GB/s (raw) and 300 MB/s (cri) on one core, where a regex or a JSON DOM alone would cost more
// than the whole budget. Other json-file layouts go through json_object.h, which never recurses.
//
// Pure functions: any thread may call them.

#include <chrono>
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

#include "base/record.h"

namespace logcapture::agent::decode {

// "2024-01-01T00:00:00.123456789Z" or "...+02:00": date, 'T' (or 't' or ' '), time, an optional
// fraction (nanoseconds kept, further digits ignored), 'Z' or a ±hh:mm offset. nullopt when `text` is
// anything else, or out of the range of system_clock (years 1678 to 2261).
std::optional<std::chrono::system_clock::time_point> parseRfc3339(std::string_view text);

// One line of the CRI log format (kubelet): `<RFC 3339 time> <stdout|stderr> <P|F>[:tags] <message>`.
struct CriLine {
  std::chrono::system_clock::time_point time;
  base::Stream stream = base::Stream::None;
  bool partial = false;      // tag P: the message goes on in the next line of the same stream
  std::string_view message;  // points into the parsed line
};
std::optional<CriLine> parseCri(std::string_view line);

// One line of docker's json-file format: {"log":"...\n","stream":"stdout","time":"..."}.
struct DockerLine {
  base::Stream stream = base::Stream::None;  // None when absent or neither stdout nor stderr
  std::optional<std::chrono::system_clock::time_point> time;
  bool partial = false;  // `log` did not end in "\n": docker split the line at 16 KiB
};
// Appends the decoded `log` string, without its trailing "\n", to `log`. nullopt when the line is not a
// JSON object with a string `log` (then `log` is left as it was).
std::optional<DockerLine> parseDocker(std::string_view line, std::string& log);
// For a json-file line the tailer cut at max_line_bytes: appends the decoded part of its `log` string
// to `log` when the line starts like one. False (and `log` unchanged) otherwise.
bool salvageDocker(std::string_view line, std::string& log);

// True when `text` is exactly one JSON object (surrounding whitespace allowed) within the bounds of
// json_object.h (kMaxJsonDepth, kMaxJsonMembers).
bool isJsonObject(std::string_view text);

}  // namespace logcapture::agent::decode
