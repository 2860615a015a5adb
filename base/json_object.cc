#include "base/json_object.h"

#include <algorithm>
#include <array>
#include <charconv>
#include <system_error>

#include "base/json_special.h"

namespace logcapture::base {

namespace {

bool isDigit(char c) { return c >= '0' && c <= '9'; }
bool isJsonSpace(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

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

template <bool utf8>
const char* findSpecial(const char* p, const char* end) {
  return reinterpret_cast<const char*>(
      json_special::find<utf8>(reinterpret_cast<const unsigned char*>(p), reinterpret_cast<const unsigned char*>(end)));
}

// One pass over a line: checks one JSON object as strictly as RFC 8259 asks (well-formed UTF-8 in
// strings, surrogate escapes in pairs; numbers that overflow a double are refused, as most readers
// refuse them) and, with `members`, records the top-level members. Iterative: the containers open
// around the current value are one bit each in a fixed array, so depth costs neither stack nor heap.
class Scanner {
 public:
  Scanner(std::string_view text, std::vector<JsonMember>* members)
      : begin_(text.data()), p_(text.data()), end_(text.data() + text.size()), members_(members) {}

  JsonVerdict run() {
    if (static_cast<std::size_t>(end_ - begin_) > kMaxJsonBytes) return JsonVerdict::TooLarge;
    skipSpace();
    if (p_ == end_ || *p_ != '{') return JsonVerdict::Invalid;
    if (!value()) return stop_;
    skipSpace();
    return p_ == end_ ? JsonVerdict::Object : JsonVerdict::Invalid;
  }

 private:
  bool inObject(std::size_t level) const { return (open_[level / 64] >> (level % 64)) & 1; }
  void setLevel(std::size_t level, bool object) {
    const std::uint64_t bit = std::uint64_t{1} << (level % 64);
    open_[level / 64] = object ? open_[level / 64] | bit : open_[level / 64] & ~bit;
  }

  void skipSpace() {
    const char* from = p_;
    while (p_ != end_ && isJsonSpace(*p_)) ++p_;
    // Inside a member's value (depth 2 and more), whitespace must go when the value is copied.
    if (p_ != from && depth_ >= 2) spaced_ = true;
  }
  bool consume(char c) {
    skipSpace();
    if (p_ == end_ || *p_ != c) return false;
    ++p_;
    return true;
  }

  // A value, then whatever closes the containers it sits in.
  bool value() {
    while (true) {
      skipSpace();
      if (p_ == end_) return false;
      if (depth_ == 1) {
        valueAt_ = p_;
        spaced_ = false;
      }
      bool opened = false;
      switch (*p_) {
        case '{':
        case '[': {
          if (depth_ == kMaxJsonDepth) {
            stop_ = JsonVerdict::TooDeep;
            return false;
          }
          const bool object = *p_ == '{';
          setLevel(depth_++, object);
          ++p_;
          skipSpace();
          if (p_ != end_ && *p_ == (object ? '}' : ']')) {
            ++p_;
            --depth_;
          } else {
            opened = true;
          }
          break;
        }
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
        if (inObject(depth_ - 1) && !key()) return false;
        continue;
      }
      if (depth_ == 1 && !commit()) return false;
      // After a value: a comma goes on in the same container, a bracket closes it.
      while (true) {
        if (depth_ == 0) return true;
        skipSpace();
        if (p_ == end_) return false;
        if (*p_ == ',') {
          ++p_;
          if (inObject(depth_ - 1) && !key()) return false;
          break;
        }
        if (*p_ != (inObject(depth_ - 1) ? '}' : ']')) return false;
        ++p_;
        --depth_;
        if (depth_ == 1 && !commit()) return false;
      }
    }
  }

  // `"name" :` of an object member.
  bool key() {
    if (!consume('"')) return false;
    const char* at = p_;
    if (!string()) return false;
    if (depth_ == 1) {
      keyAt_ = at;
      keySize_ = static_cast<std::size_t>(p_ - 1 - at);
      keyEscaped_ = escaped_;
    }
    return consume(':');
  }

  // A member of the line's object is complete, its value ending at p_.
  bool commit() {
    if (++memberCount_ > kMaxJsonMembers) {
      stop_ = JsonVerdict::TooLarge;
      return false;
    }
    if (members_ == nullptr) return true;
    JsonMember& m = members_->emplace_back();
    m.keyAt = static_cast<std::uint32_t>(keyAt_ - begin_);
    m.keySize = static_cast<std::uint32_t>(keySize_);
    m.keyEscaped = keyEscaped_;
    m.valueAt = static_cast<std::uint32_t>(valueAt_ - begin_);
    m.valueSize = static_cast<std::uint32_t>(p_ - valueAt_);
    m.valueSpaced = spaced_;
    return true;
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
    const char* start = p_;
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
      const char* from = ++p_;
      if (!digits()) return false;
      fraction = std::string_view(from, static_cast<std::size_t>(p_ - from));
    }
    std::int64_t exponent = 0;
    bool hasExponent = false;
    if (p_ != end_ && (*p_ == 'e' || *p_ == 'E')) {
      hasExponent = true;
      ++p_;
      const bool negative = p_ != end_ && *p_ == '-';
      if (p_ != end_ && (*p_ == '+' || *p_ == '-')) ++p_;
      const char* from = p_;
      if (!digits()) return false;
      for (const char* d = from; d != p_; ++d) exponent = std::min<std::int64_t>(exponent * 10 + (*d - '0'), 1 << 30);
      if (negative) exponent = -exponent;
    }
    // A double overflows from about 1.8e308 up; below 10^308 nothing needs converting.
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
    if (magnitude != 308) return magnitude < 308;
    // Right at the edge (1e308 to 9.99e308): converted, as a reader would.
    double parsed = 0;
    return std::from_chars(start, p_, parsed).ec == std::errc();
  }

  std::uint32_t hexEscape() {  // after "\u"; 0x110000 when not four hex digits
    std::uint32_t cp = 0;
    if (end_ - p_ < 4 || !readHex4(p_, cp)) return 0x110000;
    p_ += 4;
    return cp;
  }

  // The rest of a string after its opening quote.
  bool string() {
    escaped_ = false;
    while (true) {
      p_ = findSpecial<true>(p_, end_);
      if (p_ == end_) return false;
      const auto c = static_cast<unsigned char>(*p_);
      if (c >= 0x80) {
        if (!utf8Sequence()) return false;
        continue;
      }
      ++p_;
      if (c == '"') return true;
      if (c != '\\') return false;  // a raw control byte
      escaped_ = true;
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

  const char* const begin_;
  const char* p_;
  const char* const end_;
  std::vector<JsonMember>* const members_;
  std::array<std::uint64_t, kMaxJsonDepth / 64> open_{};  // per open container: 1 for an object
  std::size_t depth_ = 0;
  JsonVerdict stop_ = JsonVerdict::Invalid;  // the verdict when value() gives up
  std::size_t memberCount_ = 0;
  // The member being read.
  const char* keyAt_ = nullptr;
  std::size_t keySize_ = 0;
  bool keyEscaped_ = false;
  const char* valueAt_ = nullptr;
  bool spaced_ = false;
  bool escaped_ = false;  // the last string read held an escape
};

static_assert(kMaxJsonDepth % 64 == 0);

}  // namespace

JsonVerdict checkJsonObject(std::string_view text) { return Scanner(text, nullptr).run(); }

JsonVerdict JsonObjectReader::read(std::string_view text) {
  members_.clear();
  const JsonVerdict verdict = Scanner(text, &members_).run();
  if (verdict == JsonVerdict::Object) dropRepeatedKeys(text);
  return verdict;
}

void JsonObjectReader::dropRepeatedKeys(std::string_view text) {
  const std::size_t n = members_.size();
  if (n < 2) return;
  const bool anyEscaped =
      std::any_of(members_.begin(), members_.end(), [](const JsonMember& m) { return m.keyEscaped; });
  // The common case, a few plain keys: compared pairwise, nothing allocated.
  if (!anyEscaped && n <= 16) {
    std::uint32_t repeated = 0;  // bit i: member i's key comes again later
    for (std::size_t i = 0; i + 1 < n; ++i) {
      const std::string_view key = members_[i].key(text);
      for (std::size_t j = i + 1; j < n; ++j) {
        const std::string_view other = members_[j].key(text);
        // Keys of one size mostly differ in their first byte: no call to compare the rest.
        if (other.size() == key.size() && (key.empty() || (other[0] == key[0] && other == key))) {
          repeated |= std::uint32_t{1} << i;
          break;
        }
      }
    }
    if (repeated == 0) return;
    std::size_t kept = 0;
    for (std::size_t i = 0; i < n; ++i) {
      if (((repeated >> i) & 1) == 0) members_[kept++] = members_[i];
    }
    members_.resize(kept);
    return;
  }
  // Many keys, or escaped ones: keys compared decoded, sorted so that equal keys sit together.
  // Escaped keys are decoded into one buffer first, their views taken once it no longer grows.
  decodedKeys_.clear();
  decodedSpans_.assign(n, {0, 0});
  for (std::size_t i = 0; i < n; ++i) {
    if (!members_[i].keyEscaped) continue;
    const std::size_t from = decodedKeys_.size();
    std::size_t pos = members_[i].keyAt;
    decodeJsonString(text, pos, decodedKeys_);  // checked already: ends Closed
    decodedSpans_[i] = {from, decodedKeys_.size() - from};
  }
  keys_.resize(n);
  for (std::size_t i = 0; i < n; ++i) {
    keys_[i] = members_[i].keyEscaped
                   ? std::string_view(decodedKeys_).substr(decodedSpans_[i].first, decodedSpans_[i].second)
                   : members_[i].key(text);
  }
  order_.resize(n);
  for (std::size_t i = 0; i < n; ++i) order_[i] = static_cast<std::uint32_t>(i);
  std::sort(order_.begin(), order_.end(),
            [&](std::uint32_t a, std::uint32_t b) { return keys_[a] != keys_[b] ? keys_[a] < keys_[b] : a < b; });
  dropped_.assign(n, 0);
  bool any = false;
  for (std::size_t k = 0; k + 1 < n; ++k) {
    if (keys_[order_[k]] == keys_[order_[k + 1]]) {
      dropped_[order_[k]] = 1;  // a later member has its key
      any = true;
    }
  }
  if (!any) return;
  std::size_t kept = 0;
  for (std::size_t i = 0; i < n; ++i) {
    if (dropped_[i] == 0) members_[kept++] = members_[i];
  }
  members_.resize(kept);
}

JsonVerdict placeJsonRecord(JsonObjectReader& reader, Record& record, RecordBytes& bytes) {
  const JsonVerdict verdict = reader.read(record.message);
  switch (verdict) {
    case JsonVerdict::Object:
      record.message = bytes.copyJson(reader.members(), record.message);
      record.json = true;
      record.jsonMembers = static_cast<std::uint32_t>(reader.members().size());
      return verdict;
    case JsonVerdict::Invalid:
      break;
    case JsonVerdict::TooDeep:
      record.jsonError = JsonError::TooDeep;
      break;
    case JsonVerdict::TooLarge:
      record.jsonError = JsonError::TooLarge;
      break;
  }
  record.message = bytes.keep(record.message);
  return verdict;
}

StringEnd decodeJsonString(std::string_view in, std::size_t& pos, std::string& out) {
  const std::size_t n = in.size();
  while (true) {
    const std::size_t start = pos;
    pos = static_cast<std::size_t>(findSpecial<false>(in.data() + pos, in.data() + n) - in.data());
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

std::string_view jsonKey(std::string_view message, const JsonMember& member, std::string& scratch) {
  if (!member.keyEscaped) return member.key(message);
  scratch.clear();
  std::size_t pos = member.keyAt;
  decodeJsonString(message, pos, scratch);
  return scratch;
}

void appendCompactJson(std::string& out, std::string_view message, const JsonMember& member) {
  const std::string_view value = member.value(message);
  if (!member.valueSpaced) {
    out.append(value);
    return;
  }
  bool inString = false;
  for (std::size_t i = 0; i < value.size(); ++i) {
    const char c = value[i];
    if (inString) {
      out.push_back(c);
      if (c == '\\') {
        out.push_back(value[++i]);  // a checked value never ends inside an escape
      } else if (c == '"') {
        inString = false;
      }
    } else if (!isJsonSpace(c)) {
      out.push_back(c);
      inString = c == '"';
    }
  }
}

}  // namespace logcapture::base
