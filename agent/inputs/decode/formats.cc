#include "agent/inputs/decode/formats.h"

#include <algorithm>
#include <array>
#include <cstdint>
#include <limits>

#include "base/json_object.h"

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

// Bytes a time string cannot hold raw: the closing quote, an escape, a control character.
bool isStringSpecial(char c) { return static_cast<unsigned char>(c) < 0x20 || c == '"' || c == '\\'; }

bool isJsonSpace(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

// Marks a log string that ends without "\n" as partial, and drops the "\n" of one that has it.
void finishLog(std::string& log, std::size_t mark, DockerLine& line) {
  line.partial = log.size() == mark || log.back() != '\n';
  if (!line.partial) log.pop_back();
}

base::Stream streamNamed(std::string_view name) {
  if (name == "stdout") return base::Stream::Stdout;
  if (name == "stderr") return base::Stream::Stderr;
  return base::Stream::None;
}

// The value of a member as a string; nullopt when it is not a string.
std::optional<std::string> stringValue(std::string_view line, const base::JsonMember& m) {
  const std::string_view value = m.value(line);
  if (value.empty() || value.front() != '"') return std::nullopt;
  std::string text;
  std::size_t pos = m.valueAt + 1;
  base::decodeJsonString(line, pos, text);  // checked already: ends Closed
  return text;
}

// Any valid json-file object: other key orders, extra keys (attrs), escapes in stream or time.
std::optional<DockerLine> parseDockerSlow(std::string_view text, std::string& log) {
  // Every line of a container whose runtime adds attrs comes this way: the reader's buffers are kept.
  thread_local base::JsonObjectReader reader;
  if (reader.read(text) != base::JsonVerdict::Object) return std::nullopt;
  const base::JsonMember* logMember = nullptr;
  DockerLine line;
  std::string scratch;
  for (const base::JsonMember& m : reader.members()) {
    const std::string_view key = base::jsonKey(text, m, scratch);
    if (key == "log") {
      logMember = &m;
    } else if (key == "stream") {
      if (const auto stream = stringValue(text, m)) line.stream = streamNamed(*stream);
    } else if (key == "time") {
      if (const auto time = stringValue(text, m)) line.time = parseRfc3339(*time);
    }
  }
  if (logMember == nullptr || logMember->value(text).front() != '"') return std::nullopt;
  const std::size_t mark = log.size();
  std::size_t pos = logMember->valueAt + 1;
  base::decodeJsonString(text, pos, log);
  finishLog(log, mark, line);
  return line;
}

constexpr std::string_view kLogKey = R"({"log":")";
constexpr std::string_view kStdout = R"(,"stream":"stdout")";
constexpr std::string_view kStderr = R"(,"stream":"stderr")";
constexpr std::string_view kTimeKey = R"(,"time":")";

// The part after the log string in docker's own key order: `,"stream":"stdout"`; nullopt otherwise.
std::optional<base::Stream> fastStream(std::string_view& rest) {
  if (rest.starts_with(kStdout)) {
    rest.remove_prefix(kStdout.size());
    return base::Stream::Stdout;
  }
  if (rest.starts_with(kStderr)) {
    rest.remove_prefix(kStderr.size());
    return base::Stream::Stderr;
  }
  return std::nullopt;
}

}  // namespace

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
    out.stream = base::Stream::Stdout;
  } else if (rest.starts_with("stderr ")) {
    out.stream = base::Stream::Stderr;
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
  std::optional<base::Stream> stream;
  if (base::decodeJsonString(line, pos, log) == base::StringEnd::Closed) {
    rest = line.substr(pos);
    stream = fastStream(rest);
  }
  std::size_t timeEnd = std::string_view::npos;
  if (stream && rest.starts_with(kTimeKey)) {
    rest.remove_prefix(kTimeKey.size());
    timeEnd = rest.find('"');
  }
  bool fast = timeEnd != std::string_view::npos && timeEnd + 1 < rest.size() && rest[timeEnd + 1] == '}';
  for (std::size_t i = 0; fast && i < timeEnd; ++i) fast = !isStringSpecial(rest[i]);
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
  if (base::decodeJsonString(line, pos, log) == base::StringEnd::Closed && log.size() > mark && log.back() == '\n') {
    log.pop_back();
  }
  return true;
}

bool isJsonObject(std::string_view text) { return base::checkJsonObject(text) == base::JsonVerdict::Object; }

}  // namespace logcapture::agent::decode
