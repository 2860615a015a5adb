// The hand-written parsers of the decode path: RFC 3339 times, CRI lines, docker json-file lines.

#include "agent/inputs/decode/formats.h"
#include "base/utf8.h"

#include <doctest/doctest.h>

#include <chrono>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

namespace {

using namespace logcapture::agent;
namespace base = logcapture::base;
using namespace logcapture::base;
using namespace logcapture::agent::decode;
using namespace std::chrono;
using namespace std::chrono_literals;

system_clock::time_point at(sys_days day, nanoseconds sinceMidnight) {
  return system_clock::time_point(duration_cast<system_clock::duration>(day.time_since_epoch() + sinceMidnight));
}

TEST_CASE("an RFC 3339 time keeps its nanoseconds") {
  CHECK(parseRfc3339("2024-01-01T00:00:00.123456789Z") == at(2024y / January / 1, 123456789ns));
  CHECK(parseRfc3339("2024-03-05T12:34:56Z") == at(2024y / March / 5, 12h + 34min + 56s));
}

TEST_CASE("an RFC 3339 fraction shorter than nine digits is scaled and a longer one cut") {
  CHECK(parseRfc3339("2024-01-01T00:00:00.5Z") == at(2024y / January / 1, 500ms));
  CHECK(parseRfc3339("2024-01-01T00:00:00.000123Z") == at(2024y / January / 1, 123us));
  CHECK(parseRfc3339("2024-01-01T00:00:00.1234567891234Z") == at(2024y / January / 1, 123456789ns));
}

TEST_CASE("an RFC 3339 offset is taken off to give UTC") {
  CHECK(parseRfc3339("2024-01-01T02:30:00.25+02:30") == at(2024y / January / 1, 250ms));
  CHECK(parseRfc3339("2023-12-31T19:00:00-05:00") == at(2024y / January / 1, 0ns));
  CHECK(parseRfc3339("2024-01-01T00:00:00+00:00") == parseRfc3339("2024-01-01T00:00:00Z"));
}

TEST_CASE("RFC 3339 accepts lower-case t and z, a space separator, a leap day and a leap second") {
  CHECK(parseRfc3339("2024-01-01t00:00:01z") == at(2024y / January / 1, 1s));
  CHECK(parseRfc3339("2024-01-01 00:00:01Z") == at(2024y / January / 1, 1s));
  CHECK(parseRfc3339("2024-02-29T00:00:00Z") == at(2024y / February / 29, 0ns));
  CHECK(parseRfc3339("2016-12-31T23:59:60Z") == at(2017y / January / 1, 0ns));
}

TEST_CASE("malformed RFC 3339 times are rejected") {
  for (const char* bad :
       {"", "2024-01-01", "2024-01-01T00:00:00", "2024-01-01T00:00:00.Z", "2024-13-01T00:00:00Z",
        "2023-02-29T00:00:00Z", "2024-01-32T00:00:00Z", "2024-01-01T24:00:00Z", "2024-01-01T00:60:00Z",
        "2024-01-01T00:00:61Z", "2024-01-01X00:00:00Z", "2024-01-01T00:00:00+0200", "2024-01-01T00:00:00+02:00x",
        "2024-01-01T00:00:00ZZ", "2024-01-01T00:00:00+24:00", "20a4-01-01T00:00:00Z", "9999-01-01T00:00:00Z"}) {
    CAPTURE(bad);
    CHECK_FALSE(parseRfc3339(bad));
  }
}

TEST_CASE("a CRI line gives its time, stream, tag and message") {
  const auto line = parseCri("2024-01-01T00:00:00.000000001Z stderr F hello world");
  REQUIRE(line);
  CHECK(line->time == at(2024y / January / 1, 1ns));
  CHECK(line->stream == Stream::Stderr);
  CHECK_FALSE(line->partial);
  CHECK(line->message == "hello world");

  const auto partial = parseCri("2024-01-01T00:00:00Z stdout P  two spaces kept ");
  REQUIRE(partial);
  CHECK(partial->stream == Stream::Stdout);
  CHECK(partial->partial);
  CHECK(partial->message == " two spaces kept ");
}

TEST_CASE("a CRI tag may carry more tags after a colon, and the message may be empty") {
  const auto tagged = parseCri("2024-01-01T00:00:00Z stdout F:x:y msg");
  REQUIRE(tagged);
  CHECK(tagged->message == "msg");
  const auto empty = parseCri("2024-01-01T00:00:00Z stdout F ");
  REQUIRE(empty);
  CHECK(empty->message.empty());
  const auto bare = parseCri("2024-01-01T00:00:00Z stdout F");
  REQUIRE(bare);
  CHECK(bare->message.empty());
}

TEST_CASE("lines that are not CRI are rejected") {
  for (const char* bad : {"", "hello world", "2024-01-01T00:00:00Z", "2024-01-01T00:00:00Z stdout",
                          "2024-01-01T00:00:00Z stdin F msg", "2024-01-01T00:00:00Z stdout X msg",
                          "2024-01-01T00:00:00Z stdout FF msg", "2024-01-01 stdout F msg", "not-a-time stdout F msg"}) {
    CAPTURE(bad);
    CHECK_FALSE(parseCri(bad));
  }
}

TEST_CASE("a docker line in docker's own shape gives its log without the newline, stream and time") {
  std::string log;
  const auto line = parseDocker(R"({"log":"hello\n","stream":"stderr","time":"2024-01-01T00:00:00.5Z"})", log);
  REQUIRE(line);
  CHECK(log == "hello");
  CHECK(line->stream == Stream::Stderr);
  CHECK(line->time == at(2024y / January / 1, 500ms));
  CHECK_FALSE(line->partial);
}

TEST_CASE("a docker log without a trailing newline is a partial line") {
  std::string log = "kept ";
  const auto line = parseDocker(R"({"log":"first half","stream":"stdout","time":"2024-01-01T00:00:00Z"})", log);
  REQUIRE(line);
  CHECK(line->partial);
  CHECK(log == "kept first half");
}

TEST_CASE("docker log escapes are decoded, surrogate pairs included") {
  std::string log;
  const auto line = parseDocker(
      R"({"log":"a\tb \"q\" \\ \/ \b\f\r \u00e9 \u20AC \ud83d\ude00 \u0000end\n","stream":"stdout","time":"2024-01-01T00:00:00Z"})",
      log);
  REQUIRE(line);
  CHECK(log == std::string("a\tb \"q\" \\ / \b\f\r \xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80 \0end", 32));
}

TEST_CASE("docker lines in other shapes are decoded by the general parser") {
  std::string log;
  const auto attrs =
      parseDocker(R"({"log":"x\n","stream":"stdout","attrs":{"tag":"a"},"time":"2024-01-01T00:00:00Z"})", log);
  REQUIRE(attrs);
  CHECK(log == "x");
  CHECK(attrs->stream == Stream::Stdout);
  CHECK(attrs->time == at(2024y / January / 1, 0ns));

  log.clear();
  const auto reordered = parseDocker(R"( { "time" : "2024-01-01T00:00:01Z", "stream":"stderr", "log":"y\n" } )", log);
  REQUIRE(reordered);
  CHECK(log == "y");
  CHECK(reordered->stream == Stream::Stderr);
  CHECK(reordered->time == at(2024y / January / 1, 1s));

  log.clear();
  const auto bare = parseDocker(R"({"log":"z"})", log);
  REQUIRE(bare);
  CHECK(log == "z");
  CHECK(bare->partial);
  CHECK(bare->stream == Stream::None);
  CHECK_FALSE(bare->time);
}

TEST_CASE("a docker line with a bad time still gives its log, without a time") {
  std::string log;
  const auto line = parseDocker(R"({"log":"x\n","stream":"stdout","time":"yesterday"})", log);
  REQUIRE(line);
  CHECK(log == "x");
  CHECK_FALSE(line->time);
}

TEST_CASE("lines that are not docker json-file are rejected and leave the log as it was") {
  for (const char* bad : {"", "plain text", R"({"log":"unterminated)", R"({"log":"x\n","stream":"stdout")",
                          R"({"log":"bad \q escape\n","stream":"stdout","time":"2024-01-01T00:00:00Z"})",
                          R"({"log":"lone \ud83d surrogate","stream":"stdout","time":"2024-01-01T00:00:00Z"})",
                          R"({"log":"lone \ude00 low","stream":"stdout","time":"2024-01-01T00:00:00Z"})",
                          "{\"log\":\"raw\ttab\",\"stream\":\"stdout\",\"time\":\"2024-01-01T00:00:00Z\"}",
                          R"({"log":"x\n","stream":"stdout","time":"2024-01-01T00:00:00Z"} trailing)", R"({"log":42})",
                          R"({"message":"x"})", R"(["log"])"}) {
    CAPTURE(bad);
    std::string log = "before";
    CHECK_FALSE(parseDocker(bad, log));
    CHECK(log == "before");
  }
}

TEST_CASE("a docker line with attrs nested 120,000 levels deep is rejected, not parsed recursively") {
  const std::string deep = R"({"log":"x\n","stream":"stdout","attrs":)" + std::string(120'000, '[') +
                           std::string(120'000, ']') + R"(,"time":"2024-01-01T00:00:00Z"})";
  std::string log = "before";
  CHECK_FALSE(parseDocker(deep, log));
  CHECK(log == "before");
}

TEST_CASE("a docker line with escaped or repeated keys is read as JSON reads it") {
  std::string log;
  const auto line = parseDocker(R"({"\u006cog":"first\n","stre\u0061m":"stderr","log":"second\n"})", log);
  REQUIRE(line);
  CHECK(log == "second");
  CHECK(line->stream == Stream::Stderr);
}

TEST_CASE("the log of a docker line cut short is salvaged up to the cut") {
  std::string log;
  CHECK(salvageDocker(R"({"log":"a\tlong line cut \u00e9 in the mid)", log));
  CHECK(log == "a\tlong line cut \xC3\xA9 in the mid");
  log.clear();
  CHECK(salvageDocker(R"({"log":"stops inside an escape \u00)", log));
  CHECK(log == "stops inside an escape ");
  log.clear();
  CHECK(salvageDocker(R"({"log":"whole\n","stream":"std)", log));
  CHECK(log == "whole");
  CHECK_FALSE(salvageDocker(R"({"stream":"stdout","log":"x)", log));
}

TEST_CASE("a JSON object is recognised and other JSON values or broken JSON are not") {
  CHECK(isJsonObject(R"({"a":1,"b":[true,null,"x"]})"));
  CHECK(isJsonObject(R"(  {"a":{}}  )"));
  CHECK_FALSE(isJsonObject("[1,2]"));
  CHECK_FALSE(isJsonObject("\"text\""));
  CHECK_FALSE(isJsonObject("42"));
  CHECK_FALSE(isJsonObject(""));
  CHECK_FALSE(isJsonObject(R"({"a":1)"));
  CHECK_FALSE(isJsonObject(R"({"a":1} {"b":2})"));
  CHECK_FALSE(isJsonObject("{'a':1}"));
}

TEST_CASE("the JSON object check rejects bad numbers, bad UTF-8, bad escapes and raw control bytes") {
  for (const char* bad : {R"({"n":01})",
                          R"({"n":1.})",
                          R"({"n":-})",
                          R"({"n":.5})",
                          R"({"n":+1})",
                          R"({"n":1e})",
                          R"({"n":0x1})",
                          R"({"t":tru})",
                          R"({"t":True})",
                          R"({"a":1,})",
                          R"({,"a":1})",
                          R"({"a" 1})",
                          R"({1:2})",
                          R"({"a":[1,]})",
                          R"({"a":[1 2]})",
                          R"({"a":1]})",
                          R"({"s":"\x"})",
                          R"({"s":"\u12G4"})",
                          R"({"s":"\udc00"})",
                          R"({"s":"\ud800"})",
                          R"({"s":"\ud800\u0041"})",
                          "{\"s\":\"tab\there\"}",
                          "{\"s\":\"\xC0\x80\"}",
                          "{\"s\":\"\xED\xA0\x80\"}",
                          "{\"s\":\"\xF4\x90\x80\x80\"}",
                          "{\"s\":\"\xE2\x82\"}",
                          "{\"s\":\"\xFF\"}",
                          "{\"s\":\"\x80\"}",
                          R"({"n":1e309})",
                          R"({"n":-2e308})",
                          R"({"n":0.01e311})"}) {
    CAPTURE(std::string(bad));
    CHECK_FALSE(isJsonObject(bad));
  }
  // nlohmann::json::accept stops reading at a NUL byte; a record flagged as JSON must not carry one.
  CHECK_FALSE(isJsonObject(std::string("{\"a\":1}\0", 8)));
  CHECK_FALSE(isJsonObject(std::string("{\"a\":1}\0garbage", 15)));
  CHECK_FALSE(isJsonObject("{\"deep\":" + std::string(100, '[') + std::string(100, ']') + std::string("}\0", 2)));
  CHECK(isJsonObject(R"({"n":[0,-0,-0.0e-0,1E+2,123.456e78],"s":"\ud83d\ude00\u0000\/","t":true,"f":false,"z":null})"));
  CHECK(isJsonObject("{\"s\":\"\x7F caf\xC3\xA9 \xED\x9F\xBF \xEF\xBF\xBF \xF4\x8F\xBF\xBF\"}"));
  CHECK(isJsonObject("{\"deep\":" + std::string(200, '[') + std::string(200, ']') + "}"));
  CHECK_FALSE(isJsonObject("{\"deep\":" + std::string(200, '[') + std::string(199, ']') + "}"));
}

TEST_CASE("the JSON object check rejects what overflows a double, as nlohmann::json does") {
  CHECK(isJsonObject(R"({"n":[1e308,1.7976931348623157e308,-1e308,1e-400,0.1e309,0e99999,0.000e400]})"));
  CHECK_FALSE(isJsonObject(R"({"n":1.797693134862316e308})"));
  CHECK(isJsonObject("{\"n\":" + std::string(308, '9') + "}"));
  CHECK_FALSE(isJsonObject("{\"n\":" + std::string(309, '9') + "}"));
}

TEST_CASE("the JSON object check agrees with nlohmann::json on many mutated documents") {
  const auto reference = [](std::string_view text) {
    std::size_t i = 0;
    while (i < text.size() && (text[i] == ' ' || text[i] == '\t' || text[i] == '\r' || text[i] == '\n')) ++i;
    // A NUL byte ends nlohmann's input: it would accept `{}` followed by a NUL and anything.
    return i < text.size() && text[i] == '{' && text.find('\0') == std::string_view::npos &&
           nlohmann::json::accept(text.substr(i));
  };
  const std::vector<std::string> seeds = {
      R"({"a":1,"b":[true,false,null],"c":{"d":"e\u00e9\ud83d\ude00\n"},"n":-0.5e+10})",
      "{\"s\":\"caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80 \xED\x9F\xBF \xEF\xBF\xBF \xF4\x8F\xBF\xBF\"}",
      R"({"x":[[[[{}]]]],"y":[],"z":{},"w":"\"\\\/\b\f\n\r\t"})",
      R"( { "num" : [0, -0, 1.0, 1e5, 1E-5, 12.34e+56, 0.0, 0.001e310, 17.976931348623157e307] } )",
      "{\"deep\":" + std::string(70, '[') + std::string(70, ']') + "}",
  };
  const std::string alphabet = std::string("{}[]\":,\\ \t\r\n0129-+.eEtrufalsnDd8CcF/bx") +
                               "\xC2\xC3\xA9\x80\xBF\xE0\xED\xA0\x9F\xF0\xF4\x90\x8F\xFF\xC0\x01\x1F\x7F" +
                               std::string(1, '\0');
  std::mt19937 rng(20240101);
  const auto pick = [&](std::size_t n) { return static_cast<std::size_t>(rng() % n); };
  int checked = 0;
  for (const auto& seed : seeds) {
    REQUIRE(isJsonObject(seed) == reference(seed));
    for (int round = 0; round < 4000; ++round) {
      std::string text = seed;
      for (std::size_t edits = 1 + pick(3); edits > 0; --edits) {
        const std::size_t at = pick(text.size() + 1);
        switch (pick(4)) {
          case 0:
            if (at < text.size()) text[at] = alphabet[pick(alphabet.size())];
            break;
          case 1:
            text.insert(text.begin() + static_cast<std::ptrdiff_t>(at), alphabet[pick(alphabet.size())]);
            break;
          case 2:
            if (at < text.size()) text.erase(at, 1 + pick(3));
            break;
          default:
            text.insert(at, text.substr(pick(text.size()), 1 + pick(8)));
        }
      }
      if (isJsonObject(text) != reference(text)) {
        FAIL_CHECK("disagrees with nlohmann::json on: " << text);
        break;
      }
      ++checked;
    }
  }
  CHECK(checked == 5 * 4000);
}

TEST_CASE("a UTF-8 cut never ends inside a character") {
  const std::string text = "ab\xC3\xA9\xE2\x82\xAC";  // a b é €
  CHECK(utf8Cut(text, 100) == text.size());
  CHECK(utf8Cut(text, 2) == 2);
  CHECK(utf8Cut(text, 3) == 2);
  CHECK(utf8Cut(text, 4) == 4);
  CHECK(utf8Cut(text, 5) == 4);
  CHECK(utf8Cut(text, 6) == 4);
  CHECK(utf8Cut(text, 7) == 7);
}

}  // namespace
