#pragma once

// UTF-8 as logs carry it: checked sequence by sequence, cut only between sequences.
//
// Pure functions: any thread may call them.

#include <cstddef>
#include <string_view>

namespace logcapture::base {

// Length of the well-formed UTF-8 sequence (RFC 3629: no overlong forms, no surrogates, nothing above
// U+10FFFF) starting at text[at], 1 for ASCII, 0 when the bytes there are not UTF-8.
std::size_t utf8SequenceLength(std::string_view text, std::size_t at);

// Whether every byte of `text` belongs to a well-formed sequence (utf8SequenceLength never 0).
bool isUtf8(std::string_view text);

// The longest prefix of `text` of at most `limit` bytes that does not end inside a UTF-8 sequence.
std::size_t utf8Cut(std::string_view text, std::size_t limit);

}  // namespace logcapture::base
