// The hand-written parsers of the decode path: RFC 3339 times, CRI lines, docker json-file lines.

#include "agent/decode/formats.h"

#include <doctest/doctest.h>

#include <chrono>
#include <string>

namespace {

using namespace logcapture::agent;
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
