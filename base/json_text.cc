#include "base/json_text.h"

#include <array>
#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <ctime>

#include "base/json_special.h"
#include "base/utf8.h"

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
  thread_local SecondPrefix cached;
  if (cached.second != secs && !formatPrefix(secs, cached)) {
    appendTimestampSlowly(out, static_cast<std::time_t>(secs), static_cast<long>(frac));
    return;
  }
  char buf[sizeof cached.text + 11];
  std::memcpy(buf, cached.text, sizeof cached.text);
  putDigits(buf + sizeof cached.text, static_cast<std::uint64_t>(frac), 9);
  buf[sizeof cached.text + 9] = 'Z';
  buf[sizeof cached.text + 10] = '"';
  out.append(buf, sizeof buf);
}

// Hand-written: it runs for every byte shipped as JSON, where a DOM per record would cost more than
// the rest of the path. The output is gathered in a small local buffer, so a typical line costs one
// append to `out`. Sixteen bytes are loaded and stored there at once, whatever they hold, and the
// output moves on by the clean ones: a line dense with quotes (a JSON line shipped as text) costs no
// call per quote.
void appendJsonString(std::string& out, std::string_view text, Utf8Count count) {
  constexpr std::size_t kRoom = 512;
  constexpr std::size_t kLongest = 6;  // the longest output of one input sequence: \u00XX
  constexpr std::size_t kBlock = 16;
  char buf[kRoom];
  std::size_t n = 0;
  bool replaced = false;
  buf[n++] = '"';
  const auto* begin = reinterpret_cast<const unsigned char*>(text.data());
  const auto* p = begin;
  const auto* end = p + text.size();
  // Writes the output of the special byte at p (there is room for kLongest) and moves past its input.
  const auto escape = [&] {
    const unsigned char c = *p;
    if (c == '"' || c == '\\') {
      buf[n++] = '\\';
      buf[n++] = static_cast<char>(c);
      ++p;
    } else if (c < 0x20) {
      buf[n++] = '\\';
      switch (c) {
        case '\n':
          buf[n++] = 'n';
          break;
        case '\t':
          buf[n++] = 't';
          break;
        case '\r':
          buf[n++] = 'r';
          break;
        default:
          buf[n++] = 'u';
          buf[n++] = '0';
          buf[n++] = '0';
          buf[n++] = kHex[c >> 4];
          buf[n++] = kHex[c & 0xF];
      }
      ++p;
    } else {
      const std::size_t length8 = utf8SequenceLength(text, static_cast<std::size_t>(p - begin));
      if (length8 == 0) {
        std::memcpy(buf + n, "\xEF\xBF\xBD", 3);  // U+FFFD for a byte that is not UTF-8
        n += 3;
        ++p;
        replaced = true;
      } else {
        std::memcpy(buf + n, p, length8);  // at most 4
        n += length8;
        p += length8;
      }
    }
  };
#if defined(__SSE2__)
  while (end - p >= static_cast<std::ptrdiff_t>(kBlock)) {
    if (n > kRoom - kBlock - kLongest) {
      out.append(buf, n);
      n = 0;
    }
    const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(buf + n), v);
    const int mask = json_special::mask16<true>(v);
    if (mask == 0) {
      n += kBlock;
      p += kBlock;
      continue;
    }
    const auto clean = static_cast<std::size_t>(__builtin_ctz(static_cast<unsigned>(mask)));
    n += clean;
    p += clean;
    escape();
  }
#endif
  while (p < end) {
    if (n > kRoom - kLongest) {
      out.append(buf, n);
      n = 0;
    }
    if (json_special::kCheck[*p]) {
      escape();
    } else {
      buf[n++] = static_cast<char>(*p++);
    }
  }
  if (n == kRoom) {
    out.append(buf, n);
    n = 0;
  }
  buf[n++] = '"';
  out.append(buf, n);
  if (replaced && count == Utf8Count::Counted) invalidUtf8Strings.fetch_add(1, std::memory_order_relaxed);
}

std::uint64_t invalidUtf8Replaced() { return invalidUtf8Strings.load(std::memory_order_relaxed); }

void countInvalidUtf8(std::uint64_t strings) {
  if (strings != 0) invalidUtf8Strings.fetch_add(strings, std::memory_order_relaxed);
}

}  // namespace logcapture::base
