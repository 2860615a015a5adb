#include "base/json_text.h"

#include <array>
#include <atomic>
#include <bit>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <ctime>

#include "base/json_special.h"
#include "base/utf8.h"

#if defined(__SSE2__)
#include <emmintrin.h>
#include <tmmintrin.h>
#endif

namespace logcapture::base {
namespace {

constexpr char kHex[] = "0123456789abcdef";

std::atomic<std::uint64_t> invalidUtf8Strings{0};

}  // namespace

namespace {

// Days since 1970-01-01 to a proleptic Gregorian date (H. Hinnant's civil_from_days).
void civilFromDays(std::int64_t z, std::int64_t& y, unsigned& m, unsigned& d) {
  z += 719468;
  const std::int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  const auto doe = static_cast<unsigned>(z - era * 146097);
  const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  y = static_cast<std::int64_t>(yoe) + era * 400;
  const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const unsigned mp = (5 * doy + 2) / 153;
  d = doy - (153 * mp + 2) / 5 + 1;
  m = mp < 10 ? mp + 3 : mp - 9;
  y += m <= 2;
}

// "00" to "99", so that digits are written two at a time: a record's timestamp has nine of a fraction.
constexpr std::array<char, 200> kDigitPairs = [] {
  std::array<char, 200> t{};
  for (int i = 0; i < 100; ++i) {
    t[static_cast<std::size_t>(2 * i)] = static_cast<char>('0' + i / 10);
    t[static_cast<std::size_t>(2 * i + 1)] = static_cast<char>('0' + i % 10);
  }
  return t;
}();

void putDigits(char* at, std::uint64_t value, int width) {
  int i = width;
  for (; i >= 2; i -= 2) {
    std::memcpy(at + i - 2, &kDigitPairs[static_cast<std::size_t>(2 * (value % 100))], 2);
    value /= 100;
  }
  if (i == 1) at[0] = static_cast<char>('0' + value % 10);
}

// The quote and "YYYY-MM-DDTHH:MM:SS." of one second. Records come in time order, so consecutive
// records nearly always share their second: each thread keeps the last one it formatted.
struct SecondPrefix {
  std::int64_t second = INT64_MIN;
  char text[21] = {};
};

// False for years the four-digit layout cannot hold; the caller formats those the slow way.
bool formatPrefix(std::int64_t secs, SecondPrefix& p) {
  const std::int64_t days = secs >= 0 ? secs / 86400 : (secs - 86399) / 86400;
  const auto inDay = static_cast<unsigned>(secs - days * 86400);
  std::int64_t y = 0;
  unsigned m = 0;
  unsigned d = 0;
  civilFromDays(days, y, m, d);
  if (y < 0 || y > 9999) return false;
  char* t = p.text;
  t[0] = '"';
  putDigits(t + 1, static_cast<std::uint64_t>(y), 4);
  t[5] = '-';
  putDigits(t + 6, m, 2);
  t[8] = '-';
  putDigits(t + 9, d, 2);
  t[11] = 'T';
  putDigits(t + 12, inDay / 3600, 2);
  t[14] = ':';
  putDigits(t + 15, inDay / 60 % 60, 2);
  t[17] = ':';
  putDigits(t + 18, inDay % 60, 2);
  t[20] = '.';
  p.second = secs;
  return true;
}

void appendTimestampSlowly(std::string& out, std::time_t secs, long frac) {
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[48];
  const int n = std::snprintf(buf, sizeof buf, "\"%04d-%02d-%02dT%02d:%02d:%02d.%09ldZ\"", tm.tm_year + 1900,
                              tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, frac);
  out.append(buf, static_cast<std::size_t>(n));
}

}  // namespace

void appendJsonTimestamp(std::string& out, std::chrono::system_clock::time_point t) {
  const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
  std::int64_t secs = ns / 1000000000;
  std::int64_t frac = ns % 1000000000;
  if (frac < 0) {
    frac += 1000000000;
    --secs;
  }
  // The lines of one read share its time, so the last timestamp written is kept whole as well.
  thread_local SecondPrefix cached;
  thread_local bool haveLast = false;  // every int64 is an instant: no value of lastNs can mean "none"
  thread_local std::int64_t lastNs = 0;
  thread_local char last[sizeof cached.text + 11];
  if (haveLast && ns == lastNs) {
    out.append(last, sizeof last);
    return;
  }
  if (cached.second != secs && !formatPrefix(secs, cached)) {
    appendTimestampSlowly(out, static_cast<std::time_t>(secs), static_cast<long>(frac));
    return;
  }
  // Written in place: digits stored a byte pair at a time into a local buffer and then copied out as
  // a block stalled the copy's loads behind those stores.
  const std::size_t at = out.size();
  out.resize(at + sizeof last);
  char* text = out.data() + at;
  std::memcpy(text, cached.text, sizeof cached.text);
  putDigits(text + sizeof cached.text, static_cast<std::uint64_t>(frac), 9);
  text[sizeof cached.text + 9] = 'Z';
  text[sizeof cached.text + 10] = '"';
  std::memcpy(last, text, sizeof last);
  lastNs = ns;
  haveLast = true;
}

namespace {

// Where a string's escaping stands: the next input byte and the bytes used in the output buffer.
struct Cursor {
  const unsigned char* p;
  std::size_t n;
};

// One string's output, gathered in a small local buffer so that a typical line costs one append to
// `out`. The loops keep their place in the input (p) and in the buffer (n) in local variables and
// pass them in (a Cursor between functions): as members or through a reference across a call, every
// byte stored to the buffer would make the compiler read them from memory again.
class StringEscaper {
 public:
  static constexpr std::size_t kRoom = 512;
  static constexpr std::size_t kLongest = 6;  // the longest output of one input sequence: \u00XX
  static constexpr std::size_t kBlock = 16;

  StringEscaper(std::string& out, std::string_view text) : out_(out), text_(text) {}

  const unsigned char* begin() const { return reinterpret_cast<const unsigned char*>(text_.data()); }
  const unsigned char* end() const { return begin() + text_.size(); }
  char* buf() { return buf_; }
  bool replaced() const { return replaced_; }

  // Appends the buffer to `out` when fewer than `room` bytes of it are free.
  [[gnu::always_inline]] void makeRoom(std::size_t& n, std::size_t room) {
    if (n > kRoom - room) flush(n);
  }

  // Appends the buffer to `out`. The compiler, knowing n <= kRoom, would copy with `rep movsq`, whose
  // start-up costs more than a line; hiding the bound leaves the copy to the C library.
  void flush(std::size_t& n) {
    std::size_t length = n;
    asm("" : "+r"(length));
    out_.append(buf_, length);
    n = 0;
  }

  // Writes the output of the special byte at p (there is room for kLongest) and moves past its input.
  [[gnu::always_inline]] void escape(const unsigned char*& p, std::size_t& n) {
    const unsigned char c = *p;
    if (c == '"' || c == '\\') {
      buf_[n++] = '\\';
      buf_[n++] = static_cast<char>(c);
      ++p;
    } else if (c < 0x20) {
      buf_[n++] = '\\';
      switch (c) {
        case '\n':
          buf_[n++] = 'n';
          break;
        case '\t':
          buf_[n++] = 't';
          break;
        case '\r':
          buf_[n++] = 'r';
          break;
        default:
          buf_[n++] = 'u';
          buf_[n++] = '0';
          buf_[n++] = '0';
          buf_[n++] = kHex[c >> 4];
          buf_[n++] = kHex[c & 0xF];
      }
      ++p;
    } else {
      const std::size_t length8 = utf8SequenceLength(text_, static_cast<std::size_t>(p - begin()));
      if (length8 == 0) {
        std::memcpy(buf_ + n, "\xEF\xBF\xBD", 3);  // U+FFFD for a byte that is not UTF-8
        n += 3;
        ++p;
        replaced_ = true;
      } else {
        std::memcpy(buf_ + n, p, length8);  // at most 4
        n += length8;
        p += length8;
      }
    }
  }

#if defined(__SSE2__)
  // Stores the block `v` read at p whole, whatever it holds, and moves the output on by its clean
  // bytes, then escapes the first special one (bit set in `mask`, which is not 0).
  [[gnu::always_inline]] void storeUpToSpecial(__m128i v, int mask, const unsigned char*& p, std::size_t& n) {
    _mm_storeu_si128(reinterpret_cast<__m128i*>(buf_ + n), v);
    const auto clean = static_cast<std::size_t>(__builtin_ctz(static_cast<unsigned>(mask)));
    n += clean;
    p += clean;
    escape(p, n);
  }
#endif

  // The bytes from at.p to the end a byte at a time, the closing quote, and the last append to `out`.
  void finish(Cursor at) {
    const unsigned char* p = at.p;
    std::size_t n = at.n;
    const unsigned char* const end = this->end();
    while (p < end) {
      makeRoom(n, kLongest);
      if (json_special::kCheck[*p]) {
        escape(p, n);
      } else {
        buf_[n++] = static_cast<char>(*p++);
      }
    }
    makeRoom(n, 1);
    buf_[n++] = '"';
    flush(n);
  }

 private:
  std::string& out_;
  const std::string_view text_;
  bool replaced_ = false;
  char buf_[kRoom];
};

#if defined(__SSE2__)
// Sixteen bytes at a time with SSE2 alone: a block with a special byte is stored whole, the output
// moves on by its clean bytes and the special one is escaped, so a line dense with quotes costs one
// round per quote but no call and no copy of its own. Returns where the byte loop takes over.
Cursor escapeBlocks(StringEscaper& e, Cursor at) {
  const unsigned char* p = at.p;
  std::size_t n = at.n;
  const unsigned char* const end = e.end();
  char* const buf = e.buf();
  while (end - p >= static_cast<std::ptrdiff_t>(StringEscaper::kBlock)) {
    e.makeRoom(n, StringEscaper::kBlock + StringEscaper::kLongest);
    const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
    const int mask = json_special::mask16<true>(v);
    if (mask == 0) {
      _mm_storeu_si128(reinterpret_cast<__m128i*>(buf + n), v);
      n += StringEscaper::kBlock;
      p += StringEscaper::kBlock;
      continue;
    }
    e.storeUpToSpecial(v, mask, p, n);
  }
  return {p, n};
}

// For each mask of quotes and backslashes in eight bytes, the shuffle that spreads the eight bytes
// over 8 + (quotes and backslashes) places, with 0x80 (which the shuffle makes 0) where a backslash
// goes before one of them; places past the end are 0xFF.
struct alignas(16) ShuffleIndex {
  std::array<unsigned char, 16> index;
};
constexpr std::array<ShuffleIndex, 256> kSpread = [] {
  std::array<ShuffleIndex, 256> t{};
  for (unsigned m = 0; m < 256; ++m) {
    std::size_t at = 0;
    for (unsigned i = 0; i < 8; ++i) {
      if ((m >> i & 1U) != 0) t[m].index[at++] = 0x80;
      t[m].index[at++] = static_cast<unsigned char>(i);
    }
    while (at < 16) t[m].index[at++] = 0xFF;
  }
  return t;
}();
constexpr std::array<unsigned char, 256> kSpreadLength = [] {
  std::array<unsigned char, 256> t{};
  for (unsigned m = 0; m < 256; ++m) t[m] = static_cast<unsigned char>(8 + std::popcount(m));
  return t;
}();

// For each count of bytes done in a block, the shuffle that moves the rest to its start, zeros after.
constexpr std::array<ShuffleIndex, 16> kMoveDown = [] {
  std::array<ShuffleIndex, 16> t{};
  for (std::size_t done = 0; done < 16; ++done) {
    for (std::size_t i = 0; i < 16; ++i) t[done].index[i] = i + done < 16 ? static_cast<unsigned char>(i + done) : 0x80;
  }
  return t;
}();

// Writes the eight bytes in the low half of `half` at buf + n, a backslash before each marked in `mask`.
[[gnu::target("ssse3"), gnu::always_inline]] inline void spreadHalf(char* buf, std::size_t& n, __m128i half,
                                                                    unsigned mask) {
  const __m128i index = _mm_load_si128(reinterpret_cast<const __m128i*>(kSpread[mask].index.data()));
  const __m128i bytes = _mm_shuffle_epi8(half, index);
  const __m128i slashes =
      _mm_and_si128(_mm_cmpeq_epi8(index, _mm_set1_epi8(static_cast<char>(0x80))), _mm_set1_epi8('\\'));
  _mm_storeu_si128(reinterpret_cast<__m128i*>(buf + n), _mm_or_si128(bytes, slashes));
  n += kSpreadLength[mask];
}

// Writes the sixteen bytes of `v` at buf + n (at most 32 bytes), a backslash before each marked in `quoted`.
[[gnu::target("ssse3"), gnu::always_inline]] inline void spread(char* buf, std::size_t& n, __m128i v, unsigned quoted) {
  spreadHalf(buf, n, v, quoted & 0xFF);
  spreadHalf(buf, n, _mm_srli_si128(v, 8), quoted >> 8);
}

// With SSSE3's byte shuffle: quotes and backslashes, most of what a JSON line shipped as text needs,
// are escaped without a branch, eight bytes per shuffle. A block holding a control byte or a byte from
// 0x80 up goes the SSE2 way. Written apart, with SSSE3 for this function alone, so the agent still
// runs on an x86-64 without it (escapeBlocks serves there).
[[gnu::target("ssse3")]] Cursor escapeBlocksSpread(StringEscaper& e, Cursor at) {
  const unsigned char* p = at.p;
  std::size_t n = at.n;
  const unsigned char* const end = e.end();
  char* const buf = e.buf();
  while (end - p >= static_cast<std::ptrdiff_t>(StringEscaper::kBlock)) {
    e.makeRoom(n, 2 * StringEscaper::kBlock);
    const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
    const int other = _mm_movemask_epi8(json_special::lowBytes<true>(v));
    const auto quoted = static_cast<unsigned>(_mm_movemask_epi8(json_special::quoteBytes(v)));
    if (other != 0) {
      e.storeUpToSpecial(v, other | static_cast<int>(quoted), p, n);
      continue;
    }
    spread(buf, n, v, quoted);
    p += StringEscaper::kBlock;
  }
  // The last few bytes of a string of a block or more: its last block, moved down past the bytes done
  // (zeros come in behind, each written as one byte and taken off again), rather than a byte loop.
  const auto left = static_cast<std::size_t>(end - p);
  if (left == 0 || end - e.begin() < static_cast<std::ptrdiff_t>(StringEscaper::kBlock)) return {p, n};
  const __m128i last = _mm_loadu_si128(reinterpret_cast<const __m128i*>(end - StringEscaper::kBlock));
  const std::size_t done = StringEscaper::kBlock - left;
  const __m128i v =
      _mm_shuffle_epi8(last, _mm_load_si128(reinterpret_cast<const __m128i*>(kMoveDown[done].index.data())));
  const unsigned inText = (1U << left) - 1;
  if ((static_cast<unsigned>(_mm_movemask_epi8(json_special::lowBytes<true>(v))) & inText) != 0) return {p, n};
  e.makeRoom(n, 2 * StringEscaper::kBlock);
  spread(buf, n, v, static_cast<unsigned>(_mm_movemask_epi8(json_special::quoteBytes(v))) & inText);
  return {end, n - done};
}

const bool kHasSsse3 = [] {
  __builtin_cpu_init();
  return __builtin_cpu_supports("ssse3") != 0;
}();
#endif

template <bool kShuffle>
void appendJsonStringWith(std::string& out, std::string_view text, Utf8Count count) {
  StringEscaper e(out, text);
  e.buf()[0] = '"';
  Cursor at{e.begin(), 1};
#if defined(__SSE2__)
  at = kShuffle ? escapeBlocksSpread(e, at) : escapeBlocks(e, at);
#endif
  e.finish(at);
  if (e.replaced() && count == Utf8Count::Counted) invalidUtf8Strings.fetch_add(1, std::memory_order_relaxed);
}

}  // namespace

// Hand-written: it runs for every byte shipped as JSON, where a DOM per record would cost more than
// the rest of the path.
void appendJsonString(std::string& out, std::string_view text, Utf8Count count) {
#if defined(__SSE2__)
  if (kHasSsse3) {
    appendJsonStringWith<true>(out, text, count);
    return;
  }
#endif
  appendJsonStringWith<false>(out, text, count);
}

void appendJsonStringSse2(std::string& out, std::string_view text, Utf8Count count) {
  appendJsonStringWith<false>(out, text, count);
}

bool jsonStringShuffles() {
#if defined(__SSE2__)
  return kHasSsse3;
#else
  return false;
#endif
}

std::uint64_t invalidUtf8Replaced() { return invalidUtf8Strings.load(std::memory_order_relaxed); }

void countInvalidUtf8(std::uint64_t strings) {
  if (strings != 0) invalidUtf8Strings.fetch_add(strings, std::memory_order_relaxed);
}

}  // namespace logcapture::base
