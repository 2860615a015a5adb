#pragma once

// The regular expressions of multiline start_pattern: ECMAScript syntax without the features that need
// backtracking (backreferences, lookahead, lookbehind), as RE2 and Vector's regex crate also leave
// them out. That is what makes matching linear: a pattern is compiled once into a small automaton
// (Thompson NFA) and a line is searched in one pass, with no recursion and no backtracking, so a
// megabyte line costs milliseconds and cannot overflow the stack whatever the pattern.
//
// Supported: literals and escapes (\t \n \r \f \v \0 \xHH \uHHHH up to \u00FF, \ before punctuation),
// `.`, classes [a-z] [^...] with \d \w \s \D \W \S inside or outside them, groups (...) and (?:...),
// alternation |, quantifiers * + ? {n} {n,} {n,m} (greedy or lazy: the same for "does it match"),
// anchors ^ $ (start and end of the line) and \b \B. Matching is by bytes, as std::regex<char> does:
// `.` is one byte other than \n and \r, and \w, \d, \s are ASCII.
//
// Why not RE2 (libre2-dev, a Debian 12 package with the same linear-time guarantee): its syntax is
// RE2's, not the ECMAScript subset capture.yaml documents (no \uHHHH, counted repeats capped at 1000,
// other class and escape rules), so configs that check today would change meaning or fail; the line
// patterns belong in base/, which depends on std and spdlog only; and start patterns are short and
// nearly always anchored, where this matcher looks at a few bytes per line and a DFA would gain nothing
// worth a second regex dialect and a shared library in every package.
//
// NOTE on threads: compile() is a pure function. search() uses the pattern's scratch space, so one
// thread at a time searches a LinePattern (each Decoder owns its own).

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace logcapture::base {

class LinePattern {
 public:
  // Compiles `pattern`; nullopt with `error` saying what is wrong and at which character.
  static std::optional<LinePattern> compile(std::string_view pattern, std::string& error);

  // True when the pattern matches somewhere in `line`. Time is linear in the line's length (times the
  // pattern's size); an anchored pattern (^...) stops as soon as no match can begin at the start.
  bool search(std::string_view line) const;

  // Operations of the automaton. Public for the compiler in line_pattern.cc only.
  enum class Op : std::uint8_t { Bytes, Split, Jump, LineStart, LineEnd, WordBoundary, NotWordBoundary, Match };
  struct Instruction {
    Op op = Op::Match;
    std::uint32_t x = 0;    // Split: first branch; Jump: target
    std::uint32_t y = 0;    // Split: second branch
    std::uint32_t set = 0;  // Bytes: index into sets_
  };
  using ByteSet = std::array<std::uint64_t, 4>;

 private:
  LinePattern() = default;
  // Adds the threads reachable from `pc` at `pos` (following splits, jumps and assertions) to `list`;
  // true when one of them reaches Match.
  bool add(std::vector<std::uint32_t>& list, std::uint32_t pc, std::size_t pos, std::string_view line) const;

  std::vector<Instruction> program_;
  std::vector<ByteSet> sets_;
  bool anchored_ = false;  // every match begins at the start of the line

  // Scratch of search(), kept to avoid allocating per line.
  mutable std::vector<std::uint32_t> current_;
  mutable std::vector<std::uint32_t> next_;
  mutable std::vector<std::uint32_t> stack_;
  mutable std::vector<std::uint64_t> seen_;  // per instruction: the step that last added it
  mutable std::uint64_t step_ = 0;
};

}  // namespace logcapture::base
