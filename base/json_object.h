#pragma once

// JSON objects in log lines, read without building a document: one pass checks the line (RFC 8259,
// strictly) and records where each top-level member's key and value lie, so that sinks copy those bytes
// instead of parsing the line again (base/record.h, JsonMember). Nesting is followed with a fixed-size
// stack of kMaxJsonDepth bits: no input makes it recurse, allocate per level, or take more than one pass.
//
// Any thread may call the free functions; a JsonObjectReader belongs to one thread.

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/record.h"

namespace logcapture::base {

// Objects and arrays nested deeper than this (the line's own object counts as one) are not decoded:
// deep enough for any real log, shallow enough for the recursive parsers of common consumers.
inline constexpr std::size_t kMaxJsonDepth = 512;
// Past these a line is not indexed: its member table would cost more than the line.
inline constexpr std::size_t kMaxJsonMembers = 65536;
inline constexpr std::size_t kMaxJsonBytes = (std::size_t{1} << 31) - 1;  // JsonMember's 31-bit offsets

enum class JsonVerdict : std::uint8_t {
  Object,    // exactly one valid JSON object, surrounding whitespace allowed
  Invalid,   // anything else: not JSON, or JSON that is not an object
  TooDeep,   // nested deeper than kMaxJsonDepth (the rest of the line is not checked)
  TooLarge,  // longer than kMaxJsonBytes or with more than kMaxJsonMembers top-level members
};

// Checks `text` as JsonObjectReader::read() does, without recording members.
JsonVerdict checkJsonObject(std::string_view text);

// Reads the lines of one input; keeps its buffers from one line to the next. One thread.
class JsonObjectReader {
 public:
  // Checks `text` and, for an Object, records its top-level members: in the order written, a key
  // written twice only at its last place (as JSON.parse and most readers keep it), with offsets into `text`.
  JsonVerdict read(std::string_view text);
  // The members of the last Object read; meaningless after any other verdict.
  std::span<const JsonMember> members() const { return members_; }

 private:
  void dropRepeatedKeys(std::string_view text);

  std::vector<JsonMember> members_;
  // Scratch of dropRepeatedKeys, kept from one line to the next.
  std::vector<std::uint32_t> order_;
  std::vector<std::string_view> keys_;
  std::string decodedKeys_;
  std::vector<std::pair<std::size_t, std::size_t>> decodedSpans_;  // per member: offset and size in decodedKeys_
  std::vector<std::uint8_t> dropped_;
};

// Reads `record`'s message as a format: json line and places it in `bytes` (the record's chunk's): an
// Object with its member table, the record then json; anything else as text, with jsonError saying why
// when the line was too deep or too large to decode.
JsonVerdict placeJsonRecord(JsonObjectReader& reader, Record& record, RecordBytes& bytes);

// How a JSON string ended for decodeJsonString.
enum class StringEnd {
  Closed,        // `pos` is just past the closing quote
  Unterminated,  // the input ended first; `out` holds what was decoded, up to the last whole escape
  Invalid,       // a bad escape, lone surrogate or raw control byte
};

// Decodes the body of a JSON string from `pos`, just past its opening quote, appending it to `out`.
// Bytes other than escapes are copied as they are (UTF-8 is not checked here).
StringEnd decodeJsonString(std::string_view in, std::size_t& pos, std::string& out);

// A member's key as text: the bytes of `message` themselves, or decoded into `scratch` when escaped.
std::string_view jsonKey(std::string_view message, const JsonMember& member, std::string& scratch);

// Appends a member's value without whitespace between its tokens, so that it stays on one line.
void appendCompactJson(std::string& out, std::string_view message, const JsonMember& member);

}  // namespace logcapture::base
