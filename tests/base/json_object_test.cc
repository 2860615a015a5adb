// Reading JSON objects from lines: the verdict, the bounds on depth and size, and the member table
// sinks copy from.

#include "base/json_object.h"

#include <doctest/doctest.h>

#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <utility>
#include <vector>

namespace {

namespace base = logcapture::base;
using namespace logcapture::base;

// "{"a":" + depth-1 nested containers + "}": `depth` open containers counting the line's own object.
std::string nestedArrays(std::size_t depth) {
  return "{\"a\":" + std::string(depth - 1, '[') + std::string(depth - 1, ']') + "}";
}
std::string nestedObjects(std::size_t depth) {
  std::string text;
  for (std::size_t i = 0; i < depth; ++i) text += i + 1 < depth ? "{\"a\":" : "{\"a\":1";
  text += std::string(depth, '}');
  return text;
}

// The members read from `text` as (decoded key, value as written).
std::vector<std::pair<std::string, std::string>> membersOf(std::string_view text) {
  JsonObjectReader reader;
  REQUIRE(reader.read(text) == JsonVerdict::Object);
  std::vector<std::pair<std::string, std::string>> out;
  std::string scratch;
  for (const JsonMember& m : reader.members()) {
    out.emplace_back(std::string(jsonKey(text, m, scratch)), std::string(m.value(text)));
  }
  return out;
}

using Members = std::vector<std::pair<std::string, std::string>>;

TEST_CASE("an object nested 120,000 levels deep in arrays is refused as too deep, without recursion") {
  const std::string line = nestedArrays(120'000);
  CHECK(line.size() > 239'000);
  JsonObjectReader reader;
  CHECK(reader.read(line) == JsonVerdict::TooDeep);
  CHECK(checkJsonObject(line) == JsonVerdict::TooDeep);
}

TEST_CASE("an object nested 120,000 levels deep in objects is refused as too deep") {
  JsonObjectReader reader;
  CHECK(reader.read(nestedObjects(120'000)) == JsonVerdict::TooDeep);
}

TEST_CASE("nesting exactly at the depth bound is read, one level more is too deep") {
  JsonObjectReader reader;
  CHECK(reader.read(nestedArrays(kMaxJsonDepth)) == JsonVerdict::Object);
  CHECK(reader.read(nestedObjects(kMaxJsonDepth)) == JsonVerdict::Object);
  CHECK(reader.read(nestedArrays(kMaxJsonDepth + 1)) == JsonVerdict::TooDeep);
  CHECK(reader.read(nestedObjects(kMaxJsonDepth + 1)) == JsonVerdict::TooDeep);
  // Depth is what is open at once, not how many containers a line holds.
  std::string wide = "{\"a\":[";
  for (int i = 0; i < 10'000; ++i) wide += std::string(i ? "," : "") + "[[[]]]";
  wide += "]}";
  CHECK(reader.read(wide) == JsonVerdict::Object);
}

TEST_CASE("a line deeper than the bound is too deep even when it is broken further on") {
  CHECK(checkJsonObject(nestedArrays(kMaxJsonDepth + 1).substr(0, kMaxJsonDepth + 10)) == JsonVerdict::TooDeep);
}

TEST_CASE("more top-level members than the bound is too large") {
  std::string line = "{";
  for (std::size_t i = 0; i <= kMaxJsonMembers; ++i) line += std::string(i ? "," : "") + "\"k\":0";
  line += "}";
  JsonObjectReader reader;
  CHECK(reader.read(line) == JsonVerdict::TooLarge);
  line.resize(line.rfind(','));
  line += "}";
  REQUIRE(reader.read(line) == JsonVerdict::Object);
  CHECK(reader.members().size() == 1);  // one key written kMaxJsonMembers times: its last place
}

TEST_CASE("a very long string value is one member whose range covers it") {
  const std::string body(8 << 20, 'x');
  const std::string line = R"({"level":"info","message":")" + body + R"(","n":1})";
  const auto members = membersOf(line);
  REQUIRE(members.size() == 3);
  CHECK(members[1].first == "message");
  CHECK(members[1].second == "\"" + body + "\"");
  CHECK(members[2] == std::pair<std::string, std::string>{"n", "1"});
}

TEST_CASE("invalid UTF-8 in a key or a value makes the line invalid") {
  for (const std::string bad : {"\x80", "\xC0\x80", "\xC1\xBF", "\xE0\x80\xAF", "\xED\xA0\x80", "\xF4\x90\x80\x80",
                                "\xF5\x80\x80\x80", "\xFF", "\xE2\x82", "\xF0\x9F\x98"}) {
    CAPTURE(bad);
    CHECK(checkJsonObject("{\"k" + bad + "\":1}") == JsonVerdict::Invalid);
    CHECK(checkJsonObject("{\"k\":\"v" + bad + "\"}") == JsonVerdict::Invalid);
    CHECK(checkJsonObject("{\"k\":[\"v" + bad + "\"]}") == JsonVerdict::Invalid);
  }
  CHECK(checkJsonObject("{\"caf\xC3\xA9\":\"\xF0\x9F\x98\x80 \xEF\xBF\xBF \xF4\x8F\xBF\xBF\"}") == JsonVerdict::Object);
}

TEST_CASE("a key written twice is kept once, at its last place with its last value") {
  CHECK(membersOf(R"({"a":1,"b":2,"a":3})") == Members{{"b", "2"}, {"a", "3"}});
  CHECK(membersOf(R"({"a":1,"a":2,"a":3})") == Members{{"a", "3"}});
  // Keys are compared decoded: an escaped spelling is the same key.
  CHECK(membersOf(R"({"a":1,"\u0061":2,"b\n":3,"b\u000a":4})") == Members{{"a", "2"}, {"b\n", "4"}});
  // Many keys take another way; the result is the same.
  std::string many = "{";
  Members expected;
  for (int i = 0; i < 40; ++i) many += "\"k" + std::to_string(i) + "\":" + std::to_string(i) + ",";
  many += R"("k3":"again","k39":"last"})";
  for (int i = 0; i < 39; ++i) {
    if (i != 3) expected.emplace_back("k" + std::to_string(i), std::to_string(i));
  }
  expected.emplace_back("k3", "\"again\"");
  expected.emplace_back("k39", "\"last\"");
  CHECK(membersOf(many) == expected);
}

TEST_CASE("a line whose top level is not an object is invalid") {
  for (const std::string text : {"[1,2]", "[{\"a\":1}]", "\"text\"", "42", "-1.5", "true", "false", "null", "", "   ",
                                 "{\"a\":1} {\"b\":2}", "{\"a\":1},", "{\"a\":1", "{", "}", "\xEF\xBB\xBF{}"}) {
    CAPTURE(text);
    CHECK(checkJsonObject(text) == JsonVerdict::Invalid);
  }
  CHECK(checkJsonObject(" \t{}\r\n") == JsonVerdict::Object);
}

TEST_CASE("numbers at the edges of a double are read, past them refused, and kept as written") {
  for (const std::string& good : std::vector<std::string>{
           "0", "-0", "-0.0e-0", "1.7976931348623157e308", "-1.7976931348623157e308", "1e308", "9.9e307",
           "17.976931348623157e307", "0.0017976931348623157e311", "4.9e-324", "2.4e-324", "1e-400", "0e99999",
           "-1e-99999999999999999999", "18446744073709551616", "-9223372036854775809", "123456789012345678901234567890",
           std::string(308, '9'), "0." + std::string(400, '0') + "1"}) {
    CAPTURE(good);
    const std::string line = "{\"n\":" + good + "}";
    CHECK(membersOf(line) == Members{{"n", good}});
  }
  for (const std::string& bad : std::vector<std::string>{
           "1.797693134862316e308", "1.8e308", "1e309", "-2e308", "0.01e311", "1e99999", std::string(309, '9'), "01",
           "1.", ".5", "-", "+1", "1e", "1e+", "0x1", "NaN", "Infinity", "-Infinity", "1_000"}) {
    CAPTURE(bad);
    CHECK(checkJsonObject("{\"n\":" + bad + "}") == JsonVerdict::Invalid);
  }
}

TEST_CASE("members are the keys and values as written, in order, with whitespace between tokens noted") {
  const std::string line = R"( { "a" : 1 , "b":"x \"y\"" ,"c" : [ 1 , { "d" : null } ] , "e":{},"f":true } )";
  JsonObjectReader reader;
  REQUIRE(reader.read(line) == JsonVerdict::Object);
  const auto m = reader.members();
  REQUIRE(m.size() == 5);
  CHECK(m[0].key(line) == "a");
  CHECK(m[0].value(line) == "1");
  CHECK(m[1].value(line) == R"("x \"y\"")");
  CHECK_FALSE(m[1].valueSpaced);
  CHECK(m[2].value(line) == R"([ 1 , { "d" : null } ])");
  CHECK(m[2].valueSpaced);
  CHECK(m[3].value(line) == "{}");
  CHECK(m[4].value(line) == "true");
  std::string compact;
  appendCompactJson(compact, line, m[2]);
  CHECK(compact == R"([1,{"d":null}])");
  compact.clear();
  appendCompactJson(compact, line, m[1]);
  CHECK(compact == R"("x \"y\"")");
}

TEST_CASE("a compacted value keeps the spaces and escapes inside its strings") {
  const std::string line = "{\"a\":[ \"  two  spaces \\\\\" , \"tab\\t\\\" quote\" ]}";
  JsonObjectReader reader;
  REQUIRE(reader.read(line) == JsonVerdict::Object);
  std::string compact;
  appendCompactJson(compact, line, reader.members()[0]);
  CHECK(compact == "[\"  two  spaces \\\\\",\"tab\\t\\\" quote\"]");
}

TEST_CASE("members read from mutated documents are what nlohmann::json reads") {
  const std::vector<std::string> seeds = {
      R"({"a":1,"b":[true,false,null],"c":{"d":"e\u00e9\ud83d\ude00\n"},"n":-0.5e+10})",
      R"( { "x" : [ [ [ { } ] ] ] , "y":[] ,"z":{}, "w":"\"\\\/\b\f\n\r\t", "x":2 } )",
      R"({"message":"m","k\u0065y":{"a":[1,2,{"b":"c"}]},"key":3})",
  };
  const std::string alphabet = "{}[]\":, \n0129-.etrufalsn\\u";
  std::mt19937 rng(7);
  const auto pick = [&](std::size_t n) { return static_cast<std::size_t>(rng() % n); };
  JsonObjectReader reader;
  int objects = 0;
  for (const auto& seed : seeds) {
    for (int round = 0; round < 3000; ++round) {
      std::string text = seed;
      for (std::size_t edits = round == 0 ? 0 : 1 + pick(2); edits > 0; --edits) {
        const std::size_t at = pick(text.size() + 1);
        if (pick(2) == 0 && at < text.size()) {
          text[at] = alphabet[pick(alphabet.size())];
        } else {
          text.insert(text.begin() + static_cast<std::ptrdiff_t>(at), alphabet[pick(alphabet.size())]);
        }
      }
      if (reader.read(text) != JsonVerdict::Object) continue;
      ++objects;
      const auto expected = nlohmann::json::parse(text);
      nlohmann::json got = nlohmann::json::object();
      std::string scratch;
      for (const JsonMember& m : reader.members()) {
        std::string compact;
        appendCompactJson(compact, text, m);
        CHECK(compact.find('\n') == std::string::npos);  // no raw newline may stay in a string either
        got[std::string(jsonKey(text, m, scratch))] = nlohmann::json::parse(m.value(text));
        CHECK(nlohmann::json::parse(compact) == nlohmann::json::parse(m.value(text)));
      }
      CHECK(got == expected);
      CHECK(got.size() == reader.members().size());
    }
  }
  CHECK(objects > 1000);
}

}  // namespace
