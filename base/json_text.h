#pragma once

// JSON text written by hand: strings and timestamps, appended to a caller's buffer. Records, dead
// letters, the admin API and the JSON log format all write through these, so JSON means one thing.
//
// Pure functions apart from the counter: any thread may call them.

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

namespace logcapture::base {

// Whether appendJsonString() counts a string whose invalid UTF-8 it replaced (invalidUtf8Replaced()):
// records are counted; the agent's own log lines are not.
enum class Utf8Count { Counted, Uncounted };

// Appends `text` as a JSON string (quotes included). Invalid UTF-8 becomes U+FFFD, so the output is
// always valid JSON whatever the log line held.
void appendJsonString(std::string& out, std::string_view text, Utf8Count count = Utf8Count::Counted);
// appendJsonString() as it runs on an x86-64 without SSSE3 (it picks its loop once, by the CPU): for
// tests, which check that both give the same text.
void appendJsonStringSse2(std::string& out, std::string_view text, Utf8Count count = Utf8Count::Counted);
// Whether appendJsonString() took the SSSE3 loop: for tests, so that a CPU check gone wrong cannot leave
// that loop untested while every comparison passes.
bool jsonStringShuffles();
// Strings in which appendJsonString() replaced invalid UTF-8, since the process started: each string
// once, however many bytes it replaced (a record encoded for two sinks counts twice). Thread-safe.
std::uint64_t invalidUtf8Replaced();
// Counts `strings` more such strings: for a caller that keeps an encoding made with Utf8Count::Uncounted
// and uses it again, each use counting as the string encoded once more.
void countInvalidUtf8(std::uint64_t strings);

// Appends `t` as a quoted RFC 3339 UTC time with nanoseconds: "2024-01-01T00:00:00.123456789Z".
void appendJsonTimestamp(std::string& out, std::chrono::system_clock::time_point t);

}  // namespace logcapture::base
