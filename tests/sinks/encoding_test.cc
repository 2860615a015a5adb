#include "sinks/encoding.h"
#include "base/json_text.h"
#include "base/utf8.h"

#include <doctest/doctest.h>

#include <ctime>
#include <nlohmann/json.hpp>
#include <random>
#include <thread>

#include "agent/inputs/decode/formats.h"

#include "tests/support/records.h"

namespace {

using namespace logcapture;
using base::Record;
using base::Source;

Record record(std::string message) {
  Record r;
  r.message = testing::keptText(message);
  r.time = std::chrono::system_clock::time_point(std::chrono::nanoseconds(1704067200123456789));
  auto s = std::make_shared<Source>();
  s->input = "app";
  s->path = "/var/log/a.log";
  s->fields = std::make_shared<const std::map<std::string, std::string>>(
      std::map<std::string, std::string>{{"env", "prod"}, {"input", "not this"}});
  r.source = testing::keptSource(s);
  return r;
}

// A record of a format: json input whose line is `object`.
Record jsonRecord(std::string_view object) {
  Record r = record("");
  REQUIRE(testing::keepJson(r, object) == base::JsonVerdict::Object);
  return r;
}

nlohmann::json encode(const Record& r) {
  std::string out;
  sinks::appendJsonRecord(out, r);
  return nlohmann::json::parse(out);
}

// The straightforward formatters the fast ones replaced, kept as the specification they must match
// byte for byte.
std::string referenceJsonString(std::string_view text) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out = "\"";
  for (std::size_t i = 0; i < text.size();) {
    const auto c = static_cast<unsigned char>(text[i]);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\t') {
      out += "\\t";
    } else if (c == '\r') {
      out += "\\r";
    } else if (c < 0x20) {
      out += "\\u00";
      out += kHex[c >> 4];
      out += kHex[c & 0xF];
    } else if (c < 0x80) {
      out += static_cast<char>(c);
    } else {
      const std::size_t n = base::utf8SequenceLength(text, i);
      if (n == 0) {
        out += "\xEF\xBF\xBD";
        ++i;
        continue;
      }
      out.append(text.substr(i, n));
      i += n;
      continue;
    }
    ++i;
  }
  out += '"';
  return out;
}

std::string referenceTimestamp(std::chrono::system_clock::time_point t) {
  const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
  std::time_t secs = static_cast<std::time_t>(ns / 1000000000);
  long frac = static_cast<long>(ns % 1000000000);
  if (frac < 0) {
    frac += 1000000000;
    --secs;
  }
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[48];
  const int n = std::snprintf(buf, sizeof buf, "\"%04d-%02d-%02dT%02d:%02d:%02d.%09ldZ\"", tm.tm_year + 1900,
                              tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, frac);
  return std::string(buf, static_cast<std::size_t>(n));
}

// The string as the agent encodes it here, checked against the loop a CPU without SSSE3 takes.
std::string jsonString(std::string_view text) {
  std::string out;
  base::appendJsonString(out, text);
  std::string portable;
  base::appendJsonStringSse2(portable, text);
  CHECK(out == portable);
  return out;
}

std::string timestamp(std::int64_t nanos) {
  std::string out;
  base::appendJsonTimestamp(out, std::chrono::system_clock::time_point(std::chrono::nanoseconds(nanos)));
  return out;
}

std::string referenceTimestamp(std::int64_t nanos) {
  return referenceTimestamp(std::chrono::system_clock::time_point(std::chrono::nanoseconds(nanos)));
}

}  // namespace

TEST_CASE("a json record carries @timestamp, message, source and static fields") {
  const auto j = encode(record("hello \"world\"\n\ttab"));
  CHECK(j["@timestamp"] == "2024-01-01T00:00:00.123456789Z");
  CHECK(j["message"] == "hello \"world\"\n\ttab");
  CHECK(j["input"] == "app");
  CHECK(j["path"] == "/var/log/a.log");
  CHECK(j["env"] == "prod");
  CHECK_FALSE(j.contains("truncated"));
}

TEST_CASE("the record's own keys win over static fields of the same name") {
  CHECK(encode(record("x"))["input"] == "app");
}

TEST_CASE("invalid UTF-8 and control bytes still give valid JSON") {
  const auto j =
      encode(record(std::string("a\xff"
                                "b\x01",
                                4)));
  CHECK(j["message"] ==
        "a\xEF\xBF\xBD"
        "b\x01");
}

TEST_CASE("kubernetes fields, stream and truncation are encoded") {
  auto r = record("x");
  auto s = std::make_shared<Source>(*r.source);
  s->kubeNamespace = "ns";
  s->pod = "web-1";
  s->podUid = "uid";
  s->container = "nginx";
  s->containerId = "abc";
  r.source = testing::keptSource(s);
  r.stream = base::Stream::Stderr;
  r.truncated = true;
  const auto j = encode(r);
  CHECK(j["kubernetes"]["pod"] == "web-1");
  CHECK(j["kubernetes"]["namespace"] == "ns");
  CHECK(j["stream"] == "stderr");
  CHECK(j["truncated"] == true);
}

TEST_CASE("a json input record's keys join the object and its message becomes the message") {
  const auto r = jsonRecord(R"({"message":"from app","level":"warn","env":"ignored","n":3})");
  const auto j = encode(r);
  CHECK(j["message"] == "from app");
  CHECK(j["level"] == "warn");
  CHECK(j["n"] == 3);
  CHECK(j["env"] == "prod");
}

TEST_CASE("records encoded one after another into one buffer stay separate") {
  const auto a = jsonRecord(R"({"message":"first"})");
  const auto b = jsonRecord(R"({"message":"second"})");
  std::string out;
  sinks::appendJsonRecord(out, a);
  out += '\n';
  sinks::appendJsonRecord(out, b);
  const auto nl = out.find('\n');
  CHECK(nlohmann::json::parse(out.substr(0, nl))["message"] == "first");
  CHECK(nlohmann::json::parse(out.substr(nl + 1))["message"] == "second");
}

TEST_CASE("raw encoding is the line alone") {
  std::string out;
  sinks::appendRecord(out, record("just the line"), config::Encoding::Raw);
  CHECK(out == "just the line");
}

TEST_CASE("every byte alone, at every position of a block, escapes as the plain formatter does") {
  for (int c = 0; c < 256; ++c) {
    for (std::size_t at : {0, 1, 7, 15, 16, 17, 31, 40}) {
      std::string text(41, 'a');
      text[at] = static_cast<char>(c);
      CHECK_MESSAGE(jsonString(text) == referenceJsonString(text), "byte ", c, " at ", at);
    }
  }
}

TEST_CASE("every control byte has its JSON escape") {
  for (int c = 0; c < 0x20; ++c) {
    const std::string text(1, static_cast<char>(c));
    const auto parsed = nlohmann::json::parse(jsonString(text));
    CHECK(parsed.get<std::string>() == text);
  }
  CHECK(jsonString("\n\t\r\x01\x1f") == R"("\n\t\r\u0001\u001f")");
  CHECK(jsonString("q\"b\\") == R"("q\"b\\")");
}

TEST_CASE("valid UTF-8 passes through unchanged, also across block boundaries") {
  const std::string text =
      "caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80 \xE6\x97\xA5\xE6\x9C\xAC "
      "long enough to span blocks \xC3\xA9\xC3\xA9\xC3\xA9";
  CHECK(jsonString(text) == "\"" + text + "\"");
  for (std::size_t shift = 0; shift < 16; ++shift) {
    const std::string shifted = std::string(shift, 'x') + text;
    CHECK(jsonString(shifted) == "\"" + shifted + "\"");
  }
}

TEST_CASE("invalid UTF-8 becomes U+FFFD exactly as the plain formatter does") {
  for (const std::string& text : {std::string("\xC3"), std::string("\xC3("), std::string("\xE2\x82"),
                                  std::string("\xED\xA0\x80"), std::string("\xC0\xAF"), std::string("\xF5\x80\x80\x80"),
                                  std::string("\x80\x80"
                                              "abc"),
                                  std::string("ok\xFFok\xFE"), std::string("\xF0\x9F\x98") + std::string(20, 'z')}) {
    CHECK(jsonString(text) == referenceJsonString(text));
  }
}

TEST_CASE("long runs and long stretches of escapes escape as the plain formatter does") {
  // Around and past the encoder's local buffer: runs longer than it, and escapes filling it.
  for (std::size_t length : {0, 1, 250, 505, 506, 507, 511, 512, 513, 1000, 3000}) {
    for (const std::string& unit : {std::string("a"), std::string("\""), std::string("\x01"), std::string("ab\\"),
                                    std::string("\xC3\xA9"), std::string("\xFF"), std::string("abcdefgh\n")}) {
      std::string text;
      while (text.size() < length) text += unit;
      REQUIRE(jsonString(text) == referenceJsonString(text));
      const std::string mixed = std::string(length, 'x') + text + std::string(length / 2, '"');
      REQUIRE(jsonString(mixed) == referenceJsonString(mixed));
    }
  }
}

TEST_CASE("random byte strings escape as the plain formatter does") {
  std::mt19937 random(7);
  std::uniform_int_distribution<int> length(0, 1500);
  // Mostly printable ASCII, as log lines are, with the bytes that need care mixed in.
  const std::string alphabet =
      std::string("abcdefghijklmnopqrstuvwxyz0123456789 {}:,.") + "\"\\\n\t\x01\x7f\xC3\xA9\xE2\x82\xAC\xFF";
  std::uniform_int_distribution<std::size_t> pick(0, alphabet.size() - 1);
  for (int i = 0; i < 2000; ++i) {
    std::string text(static_cast<std::size_t>(length(random)), ' ');
    for (auto& ch : text) ch = alphabet[pick(random)];
    REQUIRE(jsonString(text) == referenceJsonString(text));
  }
}

TEST_CASE("a CPU with SSSE3 escapes with its byte shuffle") {
#if defined(__x86_64__)
  __builtin_cpu_init();
  CHECK(base::jsonStringShuffles() == (__builtin_cpu_supports("ssse3") != 0));
#else
  CHECK_FALSE(base::jsonStringShuffles());
#endif
}

TEST_CASE("random text dense with quotes and backslashes escapes as the plain formatter does") {
  // JSON lines shipped as text: every mix of quotes and backslashes in a block, none of the rarer bytes.
  std::mt19937 random(11);
  std::uniform_int_distribution<int> length(0, 700);
  const std::string alphabet = "\"\"\"\\\\abc:{} 0";
  std::uniform_int_distribution<std::size_t> pick(0, alphabet.size() - 1);
  for (int i = 0; i < 3000; ++i) {
    std::string text(static_cast<std::size_t>(length(random)), ' ');
    for (auto& ch : text) ch = alphabet[pick(random)];
    REQUIRE(jsonString(text) == referenceJsonString(text));
  }
}

TEST_CASE("timestamps across second, day, month, year and leap-day boundaries match the plain formatter") {
  constexpr std::int64_t kSecond = 1000000000;
  const std::int64_t instants[] = {
      0,                                 // the epoch
      1704067199 * kSecond + 999999999,  // 2023-12-31T23:59:59.999999999
      1704067200 * kSecond,              // 2024-01-01T00:00:00
      1709164799 * kSecond + 1,          // 2024-02-28T23:59:59
      1709164800 * kSecond + 5,          // 2024-02-29 (leap day)
      1709251200 * kSecond,              // 2024-03-01
      951782400 * kSecond,               // 2000-02-29
      4102444800 * kSecond - 1,          // 2099-12-31T23:59:59.999999999
      -1,                                // 1969-12-31T23:59:59.999999999
      -86400 * kSecond,                  // 1969-12-31T00:00:00
      -2208988800 * kSecond + 123,       // 1900-01-01
      9223372036 * kSecond + 854775807,  // 2262-04-11, the last instant nanoseconds in int64 hold
  };
  for (const std::int64_t at : instants) CHECK(timestamp(at) == referenceTimestamp(at));
  // Consecutive records within one second and across the next reuse the cached prefix correctly, and
  // records of one read (one instant, written again whole) too.
  for (std::int64_t at = 1704153599 * kSecond; at < 1704153601 * kSecond; at += kSecond / 7) {
    CHECK(timestamp(at) == referenceTimestamp(at));
    CHECK(timestamp(at) == referenceTimestamp(at));
  }
  CHECK(timestamp(-1) == referenceTimestamp(-1));
  CHECK(timestamp(-1) == referenceTimestamp(-1));
  // The earliest instant is a time like any other, not a mark of "nothing written yet".
  std::thread([] {
    const auto first = std::chrono::system_clock::time_point::min();
    std::string out;
    base::appendJsonTimestamp(out, first);
    CHECK(out == referenceTimestamp(first));
  }).join();
  std::mt19937_64 random(11);
  // In microseconds: from 1843 to 2223.
  std::uniform_int_distribution<std::int64_t> any(-4000000000000000LL, 8000000000000000LL);
  for (int i = 0; i < 5000; ++i) {
    const std::int64_t at = any(random) * 1000 + i;
    REQUIRE(timestamp(at) == referenceTimestamp(at));
  }
}

TEST_CASE("a static field named like a missing record key is written, and a json key never twice") {
  auto r = jsonRecord(R"({"path":"from json","env":"from json","stream":"from json","level":"x"})");
  auto s = std::make_shared<Source>(*r.source);
  s->path.clear();
  s->fields = std::make_shared<const std::map<std::string, std::string>>(
      std::map<std::string, std::string>{{"path", "static"}, {"empty", ""}, {"message", "no"}});
  r.source = testing::keptSource(s);
  std::string out;
  sinks::appendJsonRecord(out, r);
  CHECK(out == R"({"@timestamp":"2024-01-01T00:00:00.123456789Z","message":null,"input":"app","path":"static",)"
               R"("env":"from json","stream":"from json","level":"x"})");
}

namespace {

// The top-level keys of the encoded object `out` as written, in order: a key written twice shows twice
// (a JSON reader would keep one of them and hide the fault).
std::vector<std::string> encodedKeys(const std::string& out) {
  std::vector<std::string> keys;
  std::size_t depth = 0;
  bool inString = false;
  bool keyNext = false;
  std::string current;
  for (std::size_t i = 0; i < out.size(); ++i) {
    const char c = out[i];
    if (inString) {
      if (c == '\\') {
        current += c;
        current += out[++i];
      } else if (c == '"') {
        inString = false;
        if (keyNext) keys.push_back(current);
        keyNext = false;
      } else {
        current += c;
      }
      continue;
    }
    if (c == '"') {
      inString = true;
      current.clear();
    } else if (c == '{' || c == '[') {
      ++depth;
      keyNext = c == '{' && depth == 1;
    } else if (c == '}' || c == ']') {
      --depth;
    } else if (c == ',' && depth == 1) {
      keyNext = true;
    }
  }
  return keys;
}

}  // namespace

TEST_CASE("json keys named like the record's own keys never repeat them, and message goes to its place") {
  auto s = std::make_shared<Source>(*record("").source);
  s->kubeNamespace = "ns";
  s->pod = "web-1";
  auto r = jsonRecord(R"({"@timestamp":"2000-01-01","message":"from app","input":"json","path":"json","stream":"json",)"
                      R"("kubernetes":{"pod":"json"},"truncated":false,"env":"json","time":"12:00","level":"warn"})");
  r.source = testing::keptSource(s);
  r.stream = base::Stream::Stdout;
  r.truncated = true;
  std::string out;
  sinks::appendJsonRecord(out, r);
  CHECK(encodedKeys(out) == std::vector<std::string>{"@timestamp", "message", "input", "path", "stream", "kubernetes",
                                                     "truncated", "env", "time", "level"});
  const auto j = nlohmann::json::parse(out);
  CHECK(j["@timestamp"] == "2024-01-01T00:00:00.123456789Z");
  CHECK(j["message"] == "from app");
  CHECK(j["input"] == "app");
  CHECK(j["path"] == "/var/log/a.log");
  CHECK(j["stream"] == "stdout");
  CHECK(j["kubernetes"]["pod"] == "web-1");
  CHECK(j["truncated"] == true);
  CHECK(j["env"] == "prod");
  CHECK(j["time"] == "12:00");  // not a key of the record's own: the object's shows
  CHECK(j["level"] == "warn");
}

TEST_CASE("json keys are compared decoded, so an escaped own key is not written twice") {
  const auto r = jsonRecord(R"({"mess\u0061ge":"hi","p\u0061th":"json","lev\u0065l":"x"})");
  std::string out;
  sinks::appendJsonRecord(out, r);
  CHECK(out == R"({"@timestamp":"2024-01-01T00:00:00.123456789Z","message":"hi","input":"app",)"
               R"("path":"/var/log/a.log","env":"prod","lev\u0065l":"x"})");
}

TEST_CASE("a json key written twice is encoded once, with its last value") {
  const auto r = jsonRecord(R"({"a":1,"b":2,"a":3,"message":"one","message":"two"})");
  std::string out;
  sinks::appendJsonRecord(out, r);
  CHECK(out == R"({"@timestamp":"2024-01-01T00:00:00.123456789Z","message":"two","input":"app",)"
               R"("path":"/var/log/a.log","env":"prod","b":2,"a":3})");
}

TEST_CASE("json values are copied as written, on one line, numbers and escapes untouched") {
  const auto r = jsonRecord(
      "{ \"big\" : 18446744073709551616 ,\"f\":1.7976931348623157e308, \"tiny\":1e-400,\"z\":-0,\n"
      "  \"s\":\"caf\\u00e9 \\\"q\\\" \\/\",\n  \"nested\" : [ 1 ,\n { \"k\" : \"two  spaces\" } ],\n"
      "  \"message\" : { \"m\" : [ ] } }");
  std::string out;
  sinks::appendJsonRecord(out, r);
  CHECK(out == R"({"@timestamp":"2024-01-01T00:00:00.123456789Z","message":{"m":[]},"input":"app",)"
               R"("path":"/var/log/a.log","env":"prod","big":18446744073709551616,"f":1.7976931348623157e308,)"
               R"("tiny":1e-400,"z":-0,"s":"caf\u00e9 \"q\" \/","nested":[1,{"k":"two  spaces"}]})");
}

TEST_CASE("a json record without a message has a null one, and an empty object adds nothing") {
  std::string out;
  sinks::appendJsonRecord(out, jsonRecord("{}"));
  CHECK(out == R"({"@timestamp":"2024-01-01T00:00:00.123456789Z","message":null,"input":"app",)"
               R"("path":"/var/log/a.log","env":"prod"})");
}

TEST_CASE("a json record nested at the depth bound is copied, not parsed, into the encoding") {
  const std::size_t depth = logcapture::base::kMaxJsonDepth;
  const std::string nested = std::string(depth - 1, '[') + std::string(depth - 1, ']');
  const auto r = jsonRecord("{\"a\":" + nested + "}");
  std::string out;
  sinks::appendJsonRecord(out, r);
  CHECK(out.ends_with(",\"a\":" + nested + "}"));
}

TEST_CASE("a json line too deep to decode is encoded as text with json_error too_deep") {
  Record r = record("");
  const std::string deep = "{\"a\":" + std::string(120'000, '[') + std::string(120'000, ']') + "}";
  REQUIRE(testing::keepJson(r, deep) == logcapture::base::JsonVerdict::TooDeep);
  std::string out;
  sinks::appendJsonRecord(out, r);
  CHECK(out.starts_with(R"({"@timestamp":"2024-01-01T00:00:00.123456789Z","message":"{\"a\":[[[)"));
  CHECK(out.ends_with(R"(]]]}","input":"app","path":"/var/log/a.log","json_error":"too_deep","env":"prod"})"));
  const auto j = nlohmann::json::parse(out);  // the message is one string: no depth to follow
  CHECK(j["message"] == deep);
  CHECK(j["json_error"] == "too_deep");
}

TEST_CASE("a record flagged too large is encoded with json_error too_large") {
  Record r = record("{\"k\":0}");
  r.jsonError = base::JsonError::TooLarge;
  std::string out;
  sinks::appendJsonRecord(out, r);
  CHECK(out == R"({"@timestamp":"2024-01-01T00:00:00.123456789Z","message":"{\"k\":0}","input":"app",)"
               R"("path":"/var/log/a.log","json_error":"too_large","env":"prod"})");
}

TEST_CASE("records of sources that share every string but their path carry each its own path") {
  Record a = record("one");
  Record b = record("two");
  auto other = std::make_shared<Source>(*a.source);
  other->path = "/var/log/b.log";
  b.source = testing::keptSource(other);
  for (int i = 0; i < 3; ++i) {
    CHECK(encode(a)["path"] == "/var/log/a.log");
    CHECK(encode(b)["path"] == "/var/log/b.log");
  }
}

TEST_CASE("a path with invalid UTF-8 counts once for every record encoded from it") {
  Record r = record("line");
  auto s = std::make_shared<Source>(*r.source);
  s->path = "/var/log/\xff.log";
  r.source = testing::keptSource(s);
  const std::uint64_t before = base::invalidUtf8Replaced();
  for (int i = 0; i < 3; ++i) CHECK(encode(r)["path"] == "/var/log/\xEF\xBF\xBD.log");
  CHECK(base::invalidUtf8Replaced() - before == 3);
}
