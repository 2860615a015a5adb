// The multiline start pattern's matcher: the same answers as std::regex (ECMAScript) on the syntax it
// accepts, a clear error on the syntax it leaves out, and linear time on long lines.

#include "base/line_pattern.h"

#include <doctest/doctest.h>

#include <chrono>
#include <regex>
#include <string>
#include <vector>

namespace {

using logcapture::base::LinePattern;

LinePattern compiled(const std::string& pattern) {
  std::string error;
  auto p = LinePattern::compile(pattern, error);
  REQUIRE_MESSAGE(p, pattern << ": " << error);
  return std::move(*p);
}

std::string errorOf(const std::string& pattern) {
  std::string error;
  CHECK_FALSE(LinePattern::compile(pattern, error));
  return error;
}

}  // namespace

TEST_CASE("start patterns answer as std::regex_search does on short lines") {
  const std::vector<std::string> patterns = {
      R"(^\S)",
      R"(^\s)",
      R"(^\d{4}-\d{2}-\d{2})",
      R"(^[A-Z][a-z]+ \d)",
      R"(Exception)",
      R"(^(INFO|WARN|ERROR)\b)",
      R"(^\[\d+\])",
      R"(a+b*c?$)",
      R"(^(?:ab|a)*c)",
      R"(x{2,3}y)",
      R"(^.{3}$)",
      R"([^a-c]+z)",
      R"(\bword\b)",
      R"(\Bor\B)",
      R"(^$)",
      R"(a|^b|c$)",
      R"([\d\s]x)",
      R"([-a]q)",
      R"([a-]q)",
      R"(\.\*\+)",
      R"(\x41\u0042)",
      R"(^\t)",
      R"((a*)*b)",
      R"(a{0}b)",
      R"(a{2,}$)",
      R"([\]x]+)",
      R"([^\W_]+_)",
      R"(^\D\W)",
      R"(a+?b)",
      R"(^ab{1}?c)",
  };
  const std::vector<std::string> lines = {
      "",
      " ",
      "x",
      "2024-01-01 12:00 start",
      "Error: x",
      "  at com.Foo",
      "INFO ok",
      "INFOS",
      "[12] thing",
      "aabc",
      "abc",
      "ababc",
      "xxy",
      "xy",
      "xxxxy",
      "abc",
      "zz",
      "dz",
      "a word.",
      "words",
      "sword",
      "b",
      "ac",
      "1x",
      " x",
      "-q",
      "aq",
      ".*+",
      "AB",
      "\tx",
      "aaab",
      "b",
      "aaa",
      "]x",
      "ab_",
      "a.",
      "abc",
      "abbc",
      "}x{",
      "x{1,2",
      "\xC3\xA9t\xC3\xA9",
      "a\rb",
  };
  for (const auto& pattern : patterns) {
    const LinePattern p = compiled(pattern);
    const std::regex re(pattern, std::regex::ECMAScript);
    for (const auto& line : lines) {
      CHECK_MESSAGE(p.search(line) == std::regex_search(line, re), "pattern " << pattern << " on \"" << line << '"');
    }
  }
}

TEST_CASE("a brace that does not make a quantifier is a literal brace") {
  CHECK(compiled("x{1,2").search("ax{1,2"));
  CHECK_FALSE(compiled("x{1,2").search("xx"));
  CHECK(compiled("}x{").search("}x{"));
}

TEST_CASE("start patterns that need backtracking are refused with the reason") {
  CHECK(errorOf(R"((a)\1)").find("backreferences are not supported") != std::string::npos);
  CHECK(errorOf(R"(a(?=b))").find("lookahead") != std::string::npos);
  CHECK(errorOf(R"((?<=a)b)").find("lookahead") != std::string::npos);
}

TEST_CASE("malformed start patterns are refused with the place of the fault") {
  CHECK(errorOf("([a-z") == "missing ']' at character 2");
  CHECK(errorOf("(ab") == "missing ')' at character 3");
  CHECK(errorOf("ab)") == "unmatched ')' at character 3");
  CHECK(errorOf("*a") == "nothing to repeat at character 1");
  CHECK(errorOf("a{3,1}") == "numbers out of order in {} quantifier at character 2");
  CHECK(errorOf(R"([z-a])") == "range out of order in brackets at character 2");
  CHECK(errorOf(R"(\q)") == "unknown escape \\q at character 2");
  CHECK(errorOf("a\\") == "trailing backslash at character 2");
  CHECK(errorOf("(((a{1000}){1000}){1000})").find("pattern too large") != std::string::npos);
  CHECK(errorOf(std::string(500, '(') + std::string(500, ')')).find("nested too deeply") != std::string::npos);
}

TEST_CASE("a count on a count is refused, however many are stacked") {
  CHECK(errorOf("a{2}{3}") == "nothing to repeat at character 5");
  CHECK(errorOf("a*{2}") == "nothing to repeat at character 3");
  CHECK(errorOf("a{2}?{3}") == "nothing to repeat at character 6");
  std::string stacked = "a";
  for (int i = 0; i < 100'000; ++i) stacked += "{1}";
  CHECK(errorOf(stacked) == "nothing to repeat at character 5");
  CHECK(compiled("a{2}{").search("aa{"));  // a brace that is no count stays a literal one
}

TEST_CASE("a start pattern matches anywhere in a 100 KiB line, not only its first 4 KiB") {
  std::string line(100 * 1024, 'x');
  line.replace(90 * 1024, 9, "Exception");
  CHECK(compiled("Exception").search(line));
  CHECK(compiled(R"(x\sy|Exc[a-z]+nx|^y)").search(line));
  CHECK_FALSE(compiled("Exception!").search(line));
}

TEST_CASE("pathological start patterns take linear time on a 1 MiB line") {
  const std::string line(1024 * 1024, 'a');
  const auto start = std::chrono::steady_clock::now();
  // Each of these makes a backtracking matcher (and glibc's regexec) run for minutes, or overflow
  // the stack.
  CHECK_FALSE(compiled("(a|aa)*b").search(line));
  CHECK_FALSE(compiled("(a+a+)+b").search(line));
  CHECK_FALSE(compiled("[ab]+c").search(line));
  CHECK(compiled("(a*)*$").search(line));
  CHECK(compiled("^(a|a)*$").search(line));
  const auto took = std::chrono::steady_clock::now() - start;
  CHECK(took < std::chrono::seconds(20));  // about 0.2 s in an optimised build
  MESSAGE("five patterns on 1 MiB took " << std::chrono::duration_cast<std::chrono::milliseconds>(took).count()
                                         << " ms");
}
