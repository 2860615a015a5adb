#include "agent/inputs/line_splitter.h"

#include <doctest/doctest.h>

#include <string>
#include <vector>

namespace {

using logcapture::agent::LineSplitter;

struct Line {
  std::string text;
  std::uint64_t end;
  bool truncated;
  bool operator==(const Line&) const = default;
};

struct Collector {
  std::vector<Line> lines;
  auto sink() {
    return [this](std::string_view t, std::uint64_t e, bool tr) { lines.push_back({std::string(t), e, tr}); };
  }
};

}  // namespace

TEST_CASE("lines are cut at newlines with the offset past each newline") {
  LineSplitter s(100);
  Collector c;
  s.feed("ab\ncd\n", 10, c.sink());
  CHECK(c.lines == std::vector<Line>{{"ab", 13, false}, {"cd", 16, false}});
  CHECK_FALSE(s.holding());
}

TEST_CASE("an incomplete line is held until its newline arrives") {
  LineSplitter s(100);
  Collector c;
  s.feed("hel", 0, c.sink());
  CHECK(c.lines.empty());
  CHECK(s.holding());
  s.feed("lo\nx", 3, c.sink());
  CHECK(c.lines == std::vector<Line>{{"hello", 6, false}});
  s.flush(7, c.sink());
  CHECK(c.lines.back() == Line{"x", 7, false});
}

TEST_CASE("a long line is cut at the limit, flagged, and the rest of it skipped") {
  LineSplitter s(4);
  Collector c;
  s.feed("abcdefgh\nij\n", 0, c.sink());
  CHECK(c.lines == std::vector<Line>{{"abcd", 9, true}, {"ij", 12, false}});
}

TEST_CASE("a long line spread over several reads is cut once and goes out at its newline") {
  LineSplitter s(4);
  Collector c;
  s.feed("abc", 0, c.sink());
  s.feed("defg", 3, c.sink());
  CHECK(c.lines.empty());  // its end is not known yet: a checkpoint must not fall inside it
  CHECK(s.holding());
  s.feed("hij\nok\n", 7, c.sink());
  CHECK(c.lines == std::vector<Line>{{"abcd", 11, true}, {"ok", 14, false}});
}

TEST_CASE("a flushed head of a long line is not followed by the rest of that line") {
  LineSplitter s(4);
  Collector c;
  s.feed("abcdefg", 0, c.sink());
  s.flush(7, c.sink());
  CHECK(c.lines == std::vector<Line>{{"abcd", 7, true}});
  CHECK_FALSE(s.holding());
  s.feed("hij\nok\n", 7, c.sink());
  CHECK(c.lines == std::vector<Line>{{"abcd", 7, true}, {"ok", 14, false}});
}

TEST_CASE("a multi-megabyte line read in pieces comes out as its cut head, then the next line") {
  LineSplitter s(1024);
  Collector c;
  const std::string block(256 * 1024, 'x');
  std::uint64_t offset = 0;
  for (int i = 0; i < 20; ++i, offset += block.size()) s.feed(block, offset, c.sink());
  s.feed("\ngood\n", offset, c.sink());
  REQUIRE(c.lines.size() == 2);
  CHECK(c.lines[0] == Line{std::string(1024, 'x'), offset + 1, true});
  CHECK(c.lines[1] == Line{"good", offset + 6, false});
}

TEST_CASE("cutting a long line never splits a UTF-8 sequence") {
  LineSplitter s(5);
  Collector c;
  s.feed("ab\xE2\x82\xAC\xE2\x82\xAC\n", 0, c.sink());  // "ab€€": the cut at 5 would split the first €
  REQUIRE(c.lines.size() == 1);
  CHECK(c.lines[0].text == "ab\xE2\x82\xAC");
  CHECK(c.lines[0].truncated);
}

TEST_CASE("reset forgets a held line") {
  LineSplitter s(100);
  Collector c;
  s.feed("partial", 0, c.sink());
  s.reset();
  s.feed("new\n", 0, c.sink());
  CHECK(c.lines == std::vector<Line>{{"new", 4, false}});
}

TEST_CASE("a long line of bytes that are not UTF-8 keeps max_line_bytes of them, not nothing") {
  // Continuation bytes only: no character boundary to step back to, and a sequence is 4 bytes at most.
  LineSplitter s(8);
  Collector c;
  s.feed(std::string(20, '\x80') + "\n", 0, c.sink());
  REQUIRE(c.lines.size() == 1);
  CHECK(c.lines[0].text.size() >= 5);
  CHECK(c.lines[0].text.size() <= 8);
  CHECK(c.lines[0].truncated);
}
