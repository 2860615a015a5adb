#include "agent/decode/formats.h"

#include <algorithm>
#include <array>
#include <cstdint>
#include <limits>
#include <nlohmann/json.hpp>

namespace logcapture::agent::decode {

namespace {

using std::chrono::system_clock;

bool isDigit(char c) { return c >= '0' && c <= '9'; }

// Reads `n` decimal digits at `p` into `value`; false when one of them is not a digit.
bool readDigits(const char* p, int n, int& value) {
  int v = 0;
  for (int i = 0; i < n; ++i) {
    if (!isDigit(p[i])) return false;
    v = v * 10 + (p[i] - '0');
  }
  value = v;
  return true;
}

bool readHex4(const char* p, std::uint32_t& value) {
  std::uint32_t v = 0;
  for (int i = 0; i < 4; ++i) {
    const char c = p[i];
    std::uint32_t d = 0;
    if (c >= '0' && c <= '9') {
      d = static_cast<std::uint32_t>(c - '0');
    } else if (c >= 'a' && c <= 'f') {
      d = static_cast<std::uint32_t>(c - 'a' + 10);
    } else if (c >= 'A' && c <= 'F') {
      d = static_cast<std::uint32_t>(c - 'A' + 10);
    } else {
      return false;
    }
    v = (v << 4) | d;
  }
  value = v;
  return true;
}

void appendUtf8(std::string& out, std::uint32_t cp) {
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

// Bytes that end a run of plain string content: the closing quote, an escape, a control character
// (not allowed raw in a JSON string).
constexpr std::array<bool, 256> kStringSpecial = [] {
  std::array<bool, 256> t{};
  for (int c = 0; c < 0x20; ++c) t[static_cast<std::size_t>(c)] = true;
  t['"'] = true;
  t['\\'] = true;
  return t;
}();

enum class StringEnd { Closed, Unterminated, Invalid };

// Decodes the body of a JSON string, from `pos` just past its opening quote, appending to `out`.
// Closed: `pos` is just past the closing quote. Unterminated: the input ended first (`out` holds what
// was decoded, up to the last whole escape). Invalid: a bad escape, lone surrogate or raw control byte.
StringEnd decodeString(std::string_view in, std::size_t& pos, std::string& out) {
  const std::size_t n = in.size();
  while (true) {
    const std::size_t start = pos;
    while (pos < n && !kStringSpecial[static_cast<unsigned char>(in[pos])]) ++pos;
    out.append(in.data() + start, pos - start);
    if (pos >= n) return StringEnd::Unterminated;
    const char c = in[pos];
    if (c == '"') {
      ++pos;
      return StringEnd::Closed;
    }
    if (c != '\\') return StringEnd::Invalid;
    if (pos + 1 >= n) return StringEnd::Unterminated;
    char plain = 0;
    switch (in[pos + 1]) {
      case '"':
        plain = '"';
        break;
      case '\\':
        plain = '\\';
        break;
      case '/':
        plain = '/';
        break;
      case 'b':
        plain = '\b';
        break;
      case 'f':
        plain = '\f';
        break;
      case 'n':
        plain = '\n';
        break;
      case 'r':
        plain = '\r';
        break;
      case 't':
        plain = '\t';
        break;
      case 'u':
        break;
      default:
        return StringEnd::Invalid;
    }
    if (plain != 0) {
      out.push_back(plain);
      pos += 2;
      continue;
    }
    if (n - pos < 6) return StringEnd::Unterminated;
    std::uint32_t cp = 0;
    if (!readHex4(in.data() + pos + 2, cp)) return StringEnd::Invalid;
    if (cp >= 0xDC00 && cp <= 0xDFFF) return StringEnd::Invalid;  // a low surrogate first
    if (cp >= 0xD800 && cp <= 0xDBFF) {
      // A high surrogate must be followed by an escaped low one: together one code point past U+FFFF.
      if (n - pos < 12) return StringEnd::Unterminated;
      std::uint32_t low = 0;
      if (in[pos + 6] != '\\' || in[pos + 7] != 'u' || !readHex4(in.data() + pos + 8, low) || low < 0xDC00 ||
          low > 0xDFFF) {
        return StringEnd::Invalid;
      }
      cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
      pos += 6;
    }
    appendUtf8(out, cp);
    pos += 6;
  }
}

bool isJsonSpace(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

// Marks a log string that ends without "\n" as partial, and drops the "\n" of one that has it.
void finishLog(std::string& log, std::size_t mark, DockerLine& line) {
  line.partial = log.size() == mark || log.back() != '\n';
  if (!line.partial) log.pop_back();
}

Stream streamNamed(std::string_view name) {
  if (name == "stdout") return Stream::Stdout;
  if (name == "stderr") return Stream::Stderr;
  return Stream::None;
}

// Any valid json-file object: other key orders, extra keys (attrs), escapes in stream or time.
std::optional<DockerLine> parseDockerSlow(std::string_view text, std::string& log) {
  const auto doc = nlohmann::json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
  if (!doc.is_object()) return std::nullopt;  // a discarded (invalid) document is not an object either
  const auto logIt = doc.find("log");
  if (logIt == doc.end() || !logIt->is_string()) return std::nullopt;
  DockerLine line;
  if (const auto it = doc.find("stream"); it != doc.end() && it->is_string()) {
    line.stream = streamNamed(it->get_ref<const std::string&>());
  }
  if (const auto it = doc.find("time"); it != doc.end() && it->is_string()) {
    line.time = parseRfc3339(it->get_ref<const std::string&>());
  }
  const std::size_t mark = log.size();
  log.append(logIt->get_ref<const std::string&>());
  finishLog(log, mark, line);
  return line;
}

constexpr std::string_view kLogKey = R"({"log":")";
constexpr std::string_view kStdout = R"(,"stream":"stdout")";
constexpr std::string_view kStderr = R"(,"stream":"stderr")";
constexpr std::string_view kTimeKey = R"(,"time":")";

// The part after the log string in docker's own key order: `,"stream":"stdout"`; nullopt otherwise.
std::optional<Stream> fastStream(std::string_view& rest) {
  if (rest.starts_with(kStdout)) {
    rest.remove_prefix(kStdout.size());
    return Stream::Stdout;
  }
  if (rest.starts_with(kStderr)) {
    rest.remove_prefix(kStderr.size());
    return Stream::Stderr;
  }
  return std::nullopt;
}

// Checks one JSON value as strictly as nlohmann::json::accept (RFC 8259, well-formed UTF-8 in strings,
// surrogate escapes in pairs, no number that overflows a double) at several times its speed, without
// building anything. What it cannot settle cheaply is left to nlohmann (nullopt): nesting deeper than
// kMaxDepth, so the state fits on the stack, and numbers right at the edge of a double's range.
// Stricter in one respect: nlohmann takes a NUL byte for the end of the input and ignores what follows.
class JsonValidator {
 public:
  explicit JsonValidator(std::string_view text) : p_(text.data()), end_(text.data() + text.size()) {}

  std::optional<bool> run() {
    if (!value()) return undecided_ ? std::nullopt : std::optional<bool>(false);
    skipSpace();
    return p_ == end_;
  }

 private:
  static constexpr int kMaxDepth = 64;

  void skipSpace() {
    while (p_ != end_ && isJsonSpace(*p_)) ++p_;
  }
  bool consume(char c) {
    skipSpace();
    if (p_ == end_ || *p_ != c) return false;
    ++p_;
    return true;
  }

  // A value, then whatever closes the containers it sits in, iteratively.
  bool value() {
    bool inObject[kMaxDepth];
    int depth = 0;
    while (true) {
      skipSpace();
      if (p_ == end_) return false;
      bool opened = false;
      switch (*p_) {
        case '{':
        case '[':
          if (depth == kMaxDepth) {
            undecided_ = true;
            return false;
          }
          inObject[depth++] = *p_ == '{';
          ++p_;
          skipSpace();
          if (p_ != end_ && *p_ == (inObject[depth - 1] ? '}' : ']')) {
            ++p_;
            --depth;
          } else {
            opened = true;
          }
          break;
        case '"':
          ++p_;
          if (!string()) return false;
          break;
        case 't':
          if (!literal("true")) return false;
          break;
        case 'f':
          if (!literal("false")) return false;
          break;
        case 'n':
          if (!literal("null")) return false;
          break;
        default:
          if (!number()) return false;
      }
      if (opened) {
        if (inObject[depth - 1] && !key()) return false;
        continue;
      }
      // After a value: a comma goes on in the same container, a bracket closes it.
      while (true) {
        if (depth == 0) return true;
        skipSpace();
        if (p_ == end_) return false;
        if (*p_ == ',') {
          ++p_;
          if (inObject[depth - 1] && !key()) return false;
          break;
        }
        if (*p_ != (inObject[depth - 1] ? '}' : ']')) return false;
        ++p_;
        --depth;
      }
    }
  }

  // `"name" :` of an object member.
  bool key() {
    if (!consume('"') || !string()) return false;
    return consume(':');
  }

  bool literal(std::string_view word) {
    if (static_cast<std::size_t>(end_ - p_) < word.size() || std::string_view(p_, word.size()) != word) return false;
    p_ += word.size();
    return true;
  }

  bool digits() {
    const char* start = p_;
    while (p_ != end_ && isDigit(*p_)) ++p_;
    return p_ != start;
  }

  bool number() {
    if (*p_ == '-') ++p_;
    if (p_ == end_) return false;
    const char* integer = p_;
    if (*p_ == '0') {
      ++p_;
    } else if (!digits()) {
      return false;
    }
    const std::ptrdiff_t integerDigits = p_ - integer;
    std::string_view fraction;
    if (p_ != end_ && *p_ == '.') {
      const char* start = ++p_;
      if (!digits()) return false;
      fraction = std::string_view(start, static_cast<std::size_t>(p_ - start));
    }
    std::int64_t exponent = 0;
    bool hasExponent = false;
    if (p_ != end_ && (*p_ == 'e' || *p_ == 'E')) {
      hasExponent = true;
      ++p_;
      const bool negative = p_ != end_ && *p_ == '-';
      if (p_ != end_ && (*p_ == '+' || *p_ == '-')) ++p_;
      const char* start = p_;
      if (!digits()) return false;
      for (const char* d = start; d != p_; ++d) exponent = std::min<std::int64_t>(exponent * 10 + (*d - '0'), 1 << 30);
      if (negative) exponent = -exponent;
    }
    // nlohmann rejects a number that overflows a double: from 10^308 up, nearly.
    if (!hasExponent && integerDigits < 308) return true;
    std::int64_t magnitude = 0;  // the power of ten of the first significant digit
    if (*integer != '0') {
      magnitude = integerDigits - 1;
    } else {
      const std::size_t first = fraction.find_first_not_of('0');
      if (first == std::string_view::npos) return true;  // zero
      magnitude = -static_cast<std::int64_t>(first) - 1;
    }
    magnitude += exponent;
    if (magnitude == 308) undecided_ = true;  // at most 1.797...e308: left to strtod
    return magnitude < 308;
  }

  std::uint32_t hexEscape() {  // after "\u"; 0x110000 when not four hex digits
    std::uint32_t cp = 0;
    if (end_ - p_ < 4 || !readHex4(p_, cp)) return 0x110000;
    p_ += 4;
    return cp;
  }

  // The rest of a string after its opening quote.
  bool string() {
    while (p_ != end_) {
      const auto c = static_cast<unsigned char>(*p_);
      if (c >= 0x80) {
        if (!utf8Sequence()) return false;
        continue;
      }
      ++p_;
      if (c == '"') return true;
      if (c < 0x20) return false;
      if (c != '\\') continue;
      if (p_ == end_) return false;
      switch (*p_++) {
        case '"':
        case '\\':
        case '/':
        case 'b':
        case 'f':
        case 'n':
        case 'r':
        case 't':
          break;
        case 'u': {
          const std::uint32_t cp = hexEscape();
          if (cp > 0xFFFF || (cp >= 0xDC00 && cp <= 0xDFFF)) return false;
          if (cp >= 0xD800 && cp <= 0xDBFF) {
            if (end_ - p_ < 2 || p_[0] != '\\' || p_[1] != 'u') return false;
            p_ += 2;
            const std::uint32_t low = hexEscape();
            if (low < 0xDC00 || low > 0xDFFF) return false;
          }
          break;
        }
        default:
          return false;
      }
    }
    return false;
  }

  // One well-formed multi-byte UTF-8 sequence (Unicode table 3-7): no overlongs, no surrogates, at
  // most U+10FFFF.
  bool utf8Sequence() {
    const auto byte = [&](std::ptrdiff_t i) { return static_cast<unsigned char>(p_[i]); };
    const auto in = [](unsigned char b, unsigned lo, unsigned hi) { return b >= lo && b <= hi; };
    const std::ptrdiff_t left = end_ - p_;
    const unsigned char lead = byte(0);
    int length = 0;
    unsigned lo = 0x80, hi = 0xBF;  // range of the second byte
    if (in(lead, 0xC2, 0xDF)) {
      length = 2;
    } else if (in(lead, 0xE0, 0xEF)) {
      length = 3;
      if (lead == 0xE0) lo = 0xA0;
      if (lead == 0xED) hi = 0x9F;
    } else if (in(lead, 0xF0, 0xF4)) {
      length = 4;
      if (lead == 0xF0) lo = 0x90;
      if (lead == 0xF4) hi = 0x8F;
    } else {
      return false;
    }
    if (left < length || !in(byte(1), lo, hi)) return false;
    for (int i = 2; i < length; ++i) {
      if (!in(byte(i), 0x80, 0xBF)) return false;
    }
    p_ += length;
    return true;
  }

  const char* p_;
  const char* const end_;
  bool undecided_ = false;
};

}  // namespace

std::size_t utf8SequenceLength(std::string_view text, std::size_t at) {
  const auto byte = static_cast<unsigned char>(text[at]);
  if (byte < 0x80) return 1;
  std::size_t length = 0;
  unsigned char lo = 0x80;  // bounds of the second byte; later bytes are 0x80-0xBF
  unsigned char hi = 0xBF;
  if (byte >= 0xC2 && byte <= 0xDF) {
    length = 2;
  } else if (byte >= 0xE0 && byte <= 0xEF) {
    length = 3;
    if (byte == 0xE0) lo = 0xA0;
    if (byte == 0xED) hi = 0x9F;
  } else if (byte >= 0xF0 && byte <= 0xF4) {
    length = 4;
    if (byte == 0xF0) lo = 0x90;
    if (byte == 0xF4) hi = 0x8F;
  } else {
    return 0;
  }
  if (at + length > text.size()) return 0;
  const auto second = static_cast<unsigned char>(text[at + 1]);
  if (second < lo || second > hi) return 0;
  for (std::size_t k = 2; k < length; ++k) {
    if ((static_cast<unsigned char>(text[at + k]) & 0xC0) != 0x80) return 0;
  }
  return length;
}

std::size_t utf8Cut(std::string_view text, std::size_t limit) {
  if (text.size() <= limit) return text.size();
  std::size_t cut = limit;
  // Step back over continuation bytes (10xxxxxx) to the start of the sequence the limit splits.
  while (cut > 0 && (static_cast<unsigned char>(text[cut]) & 0xC0) == 0x80) --cut;
  return cut;
}

std::optional<system_clock::time_point> parseRfc3339(std::string_view t) {
  // "YYYY-MM-DDTHH:MM:SS" is 19 bytes; the zone takes at least one more.
  if (t.size() < 20) return std::nullopt;
  const char* p = t.data();
  int year = 0, month = 0, day = 0, hour = 0, minute = 0, second = 0;
  if (!readDigits(p, 4, year) || p[4] != '-' || !readDigits(p + 5, 2, month) || p[7] != '-' ||
      !readDigits(p + 8, 2, day) || (p[10] != 'T' && p[10] != 't' && p[10] != ' ') || !readDigits(p + 11, 2, hour) ||
      p[13] != ':' || !readDigits(p + 14, 2, minute) || p[16] != ':' || !readDigits(p + 17, 2, second)) {
    return std::nullopt;
  }
  if (hour > 23 || minute > 59 || second > 60) return std::nullopt;  // 60: a leap second
  std::size_t i = 19;
  std::int64_t nanos = 0;
  if (t[i] == '.') {
    const std::size_t first = ++i;
    int kept = 0;
    for (; i < t.size() && isDigit(t[i]); ++i) {
      if (kept < 9) {
        nanos = nanos * 10 + (t[i] - '0');
        ++kept;
      }
    }
    if (i == first) return std::nullopt;
    for (; kept < 9; ++kept) nanos *= 10;
  }
  if (i >= t.size()) return std::nullopt;
  std::int64_t offsetSeconds = 0;
  if (t[i] == 'Z' || t[i] == 'z') {
    ++i;
  } else if (t[i] == '+' || t[i] == '-') {
    int offsetHours = 0, offsetMinutes = 0;
    if (t.size() - i < 6 || !readDigits(p + i + 1, 2, offsetHours) || p[i + 3] != ':' ||
        !readDigits(p + i + 4, 2, offsetMinutes) || offsetHours > 23 || offsetMinutes > 59) {
      return std::nullopt;
    }
    offsetSeconds = (offsetHours * 3600 + offsetMinutes * 60) * (t[i] == '-' ? -1 : 1);
    i += 6;
  } else {
    return std::nullopt;
  }
  if (i != t.size()) return std::nullopt;

  const std::chrono::year_month_day date{std::chrono::year{year}, std::chrono::month{static_cast<unsigned>(month)},
                                         std::chrono::day{static_cast<unsigned>(day)}};
  if (!date.ok()) return std::nullopt;
  const std::int64_t days = std::chrono::sys_days(date).time_since_epoch().count();
  const std::int64_t seconds = days * 86400 + hour * 3600 + minute * 60 + second - offsetSeconds;
  // Nanoseconds in an int64 reach about 292 years either side of 1970.
  constexpr std::int64_t kMaxSeconds = std::numeric_limits<std::int64_t>::max() / 1'000'000'000 - 1;
  if (seconds > kMaxSeconds || seconds < -kMaxSeconds) return std::nullopt;
  return system_clock::time_point(
      std::chrono::duration_cast<system_clock::duration>(std::chrono::nanoseconds(seconds * 1'000'000'000 + nanos)));
}

std::optional<CriLine> parseCri(std::string_view line) {
  const std::size_t timeEnd = line.find(' ');
  if (timeEnd == std::string_view::npos) return std::nullopt;
  const auto time = parseRfc3339(line.substr(0, timeEnd));
  if (!time) return std::nullopt;
  CriLine out;
  out.time = *time;
  std::string_view rest = line.substr(timeEnd + 1);
  if (rest.starts_with("stdout ")) {
    out.stream = Stream::Stdout;
  } else if (rest.starts_with("stderr ")) {
    out.stream = Stream::Stderr;
  } else {
    return std::nullopt;
  }
  rest.remove_prefix(7);
  if (rest.empty()) return std::nullopt;
  if (rest[0] == 'P') {
    out.partial = true;
  } else if (rest[0] != 'F') {
    return std::nullopt;
  }
  // Tags after the first are `:`-separated; none of them is defined yet, so they are skipped.
  std::size_t i = 1;
  if (i < rest.size() && rest[i] == ':') {
    i = rest.find(' ', i);
    if (i == std::string_view::npos) i = rest.size();
  }
  if (i < rest.size()) {
    if (rest[i] != ' ') return std::nullopt;
    out.message = rest.substr(i + 1);
  }
  return out;
}

std::optional<DockerLine> parseDocker(std::string_view line, std::string& log) {
  // Fast path: docker's own output, `{"log":"...","stream":"stdout","time":"..."}` in that order.
  if (!line.starts_with(kLogKey)) return parseDockerSlow(line, log);
  const std::size_t mark = log.size();
  std::size_t pos = kLogKey.size();
  std::string_view rest;
  std::optional<Stream> stream;
  if (decodeString(line, pos, log) == StringEnd::Closed) {
    rest = line.substr(pos);
    stream = fastStream(rest);
  }
  std::size_t timeEnd = std::string_view::npos;
  if (stream && rest.starts_with(kTimeKey)) {
    rest.remove_prefix(kTimeKey.size());
    timeEnd = rest.find('"');
  }
  bool fast = timeEnd != std::string_view::npos && timeEnd + 1 < rest.size() && rest[timeEnd + 1] == '}';
  for (std::size_t i = 0; fast && i < timeEnd; ++i) fast = !kStringSpecial[static_cast<unsigned char>(rest[i])];
  for (std::size_t i = timeEnd + 2; fast && i < rest.size(); ++i) fast = isJsonSpace(rest[i]);
  if (!fast) {
    log.resize(mark);
    return parseDockerSlow(line, log);
  }
  DockerLine out;
  out.stream = *stream;
  out.time = parseRfc3339(rest.substr(0, timeEnd));
  finishLog(log, mark, out);
  return out;
}

bool salvageDocker(std::string_view line, std::string& log) {
  if (!line.starts_with(kLogKey)) return false;
  std::size_t pos = kLogKey.size();
  const std::size_t mark = log.size();
  if (decodeString(line, pos, log) == StringEnd::Closed && log.size() > mark && log.back() == '\n') log.pop_back();
  return true;
}

bool isJsonObject(std::string_view text) {
  std::size_t i = 0;
  while (i < text.size() && isJsonSpace(text[i])) ++i;
  if (i == text.size() || text[i] != '{') return false;
  JsonValidator validator(text.substr(i));
  if (const auto valid = validator.run()) return *valid;
  // A NUL byte is never valid JSON, but nlohmann would stop reading at it.
  return text.find('\0') == std::string_view::npos &&
         nlohmann::json::accept(text.begin() + static_cast<std::ptrdiff_t>(i), text.end());
}

}  // namespace logcapture::agent::decode
