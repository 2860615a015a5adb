#pragma once

// The bytes JSON text treats specially, found sixteen at a time where SSE2 is there (every x86-64):
// the checker (json_object.cc) and the encoder (json_text.cc) run over every byte shipped, and string
// bodies are most of a log line. Internal to base/.

#include <array>
#include <cstddef>
#include <cstdint>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace logcapture::base::json_special {

// Bytes that end a run of plain string content when decoding: the closing quote, an escape, a control
// character (not allowed raw in a JSON string).
inline constexpr std::array<bool, 256> kDecode = [] {
  std::array<bool, 256> t{};
  for (int c = 0; c < 0x20; ++c) t[static_cast<std::size_t>(c)] = true;
  t['"'] = true;
  t['\\'] = true;
  return t;
}();

// The same when checking or encoding, where bytes from 0x80 up start a UTF-8 sequence to check.
inline constexpr std::array<bool, 256> kCheck = [] {
  std::array<bool, 256> t = kDecode;
  for (int c = 0x80; c < 0x100; ++c) t[static_cast<std::size_t>(c)] = true;
  return t;
}();

#if defined(__SSE2__)
// 0xFF in each byte of `v` below 0x20 (a control character), or with `utf8` also from 0x80 up.
template <bool utf8>
inline __m128i lowBytes(__m128i v) {
  // Signed, bytes below 0x20 include those from 0x80 up; unsigned, v <= 0x1F is where saturating
  // v - 0x1F gives 0.
  return utf8 ? _mm_cmplt_epi8(v, _mm_set1_epi8(0x20))
              : _mm_cmpeq_epi8(_mm_subs_epu8(v, _mm_set1_epi8(0x1F)), _mm_setzero_si128());
}

// 0xFF in each byte of `v` that is a quote or a backslash.
inline __m128i quoteBytes(__m128i v) {
  return _mm_or_si128(_mm_cmpeq_epi8(v, _mm_set1_epi8('"')), _mm_cmpeq_epi8(v, _mm_set1_epi8('\\')));
}

// Bit i set where byte i of `v` is in kDecode, or kCheck with `utf8`.
template <bool utf8>
inline int mask16(__m128i v) {
  return _mm_movemask_epi8(_mm_or_si128(lowBytes<utf8>(v), quoteBytes(v)));
}
#endif

// The first byte of [p, end) in kDecode, or kCheck with `utf8`; `end` when there is none.
template <bool utf8>
inline const unsigned char* find(const unsigned char* p, const unsigned char* end) {
#if defined(__SSE2__)
  while (end - p >= 16) {
    const int mask = mask16<utf8>(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
    if (mask != 0) return p + __builtin_ctz(static_cast<unsigned>(mask));
    p += 16;
  }
#endif
  const auto& special = utf8 ? kCheck : kDecode;
  while (p < end && !special[*p]) ++p;
  return p;
}

}  // namespace logcapture::base::json_special
