#include "base/line_pattern.h"

#include <algorithm>
#include <limits>
#include <memory>

namespace logcapture::base {
namespace {

using Op = LinePattern::Op;
using ByteSet = LinePattern::ByteSet;
using Instruction = LinePattern::Instruction;

// Bounds that keep a hostile or mistyped pattern from costing much: counted repetitions are expanded,
// so `(a{1000}){1000}` would otherwise be a million instructions; nesting is parsed recursively.
constexpr std::size_t kMaxInstructions = 20000;
constexpr int kMaxNesting = 100;
constexpr std::uint32_t kMaxCount = 1000;
constexpr std::uint32_t kUnbounded = std::numeric_limits<std::uint32_t>::max();

void addByte(ByteSet& s, unsigned char c) { s[c >> 6] |= std::uint64_t{1} << (c & 63); }
bool hasByte(const ByteSet& s, unsigned char c) { return (s[c >> 6] >> (c & 63)) & 1; }
void addRange(ByteSet& s, unsigned char lo, unsigned char hi) {
  for (unsigned c = lo; c <= hi; ++c) addByte(s, static_cast<unsigned char>(c));
}
ByteSet complement(ByteSet s) {
  for (auto& word : s) word = ~word;
  return s;
}
void addAll(ByteSet& to, const ByteSet& from) {
  for (std::size_t i = 0; i < to.size(); ++i) to[i] |= from[i];
}

bool isWordByte(unsigned char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

ByteSet classOf(char letter) {  // d w s, lower case; the upper case is the complement
  ByteSet s{};
  switch (letter) {
    case 'd':
      addRange(s, '0', '9');
      break;
    case 'w':
      for (unsigned c = 0; c < 256; ++c) {
        if (isWordByte(static_cast<unsigned char>(c))) addByte(s, static_cast<unsigned char>(c));
      }
      break;
    case 's':
      for (char c : std::string_view(" \t\n\v\f\r")) addByte(s, static_cast<unsigned char>(c));
      break;
    default:
      break;
  }
  return s;
}

struct Node {
  enum class Kind { Empty, Bytes, Concat, Alternate, Repeat, Assert } kind = Kind::Empty;
  ByteSet set{};
  Op assertion = Op::Match;
  std::uint32_t min = 0, max = 0;
  std::vector<std::unique_ptr<Node>> children;
};
using NodePtr = std::unique_ptr<Node>;

NodePtr makeNode(Node::Kind kind) {
  auto n = std::make_unique<Node>();
  n->kind = kind;
  return n;
}

class Parser {
 public:
  explicit Parser(std::string_view pattern) : p_(pattern) {}

  NodePtr parse(std::string& error) {
    NodePtr root = alternation(0);
    if (root && i_ != p_.size()) fail("unmatched ')'");
    if (!error_.empty()) {
      error = error_ + " at character " + std::to_string(errorAt_ + 1);
      return nullptr;
    }
    return root;
  }

 private:
  bool more() const { return i_ < p_.size(); }
  char peek() const { return p_[i_]; }
  NodePtr fail(std::string message) {
    if (error_.empty()) {
      error_ = std::move(message);
      errorAt_ = std::min(i_, p_.size() > 0 ? p_.size() - 1 : 0);
    }
    return nullptr;
  }

  NodePtr alternation(int depth) {
    if (depth > kMaxNesting) return fail("groups nested too deeply");
    auto alt = makeNode(Node::Kind::Alternate);
    while (true) {
      NodePtr branch = concatenation(depth);
      if (!branch) return nullptr;
      alt->children.push_back(std::move(branch));
      if (!more() || peek() != '|') break;
      ++i_;
    }
    if (alt->children.size() == 1) return std::move(alt->children.front());
    return alt;
  }

  NodePtr concatenation(int depth) {
    auto cat = makeNode(Node::Kind::Concat);
    while (more() && peek() != '|' && peek() != ')') {
      NodePtr a = atom(depth);
      if (!a) return nullptr;
      a = quantified(std::move(a));
      if (!a) return nullptr;
      cat->children.push_back(std::move(a));
    }
    return cat;
  }

  // `{n}`, `{n,}` or `{n,m}` at i_; false (i_ unchanged) when the brace is a literal one.
  bool counted(std::uint32_t& min, std::uint32_t& max) {
    std::size_t j = i_ + 1;
    auto number = [&](std::uint32_t& out) {
      const std::size_t start = j;
      std::uint64_t v = 0;
      while (j < p_.size() && p_[j] >= '0' && p_[j] <= '9') {
        v = std::min<std::uint64_t>(v * 10 + static_cast<std::uint64_t>(p_[j] - '0'), kUnbounded - 1);
        ++j;
      }
      out = static_cast<std::uint32_t>(v);
      return j > start;
    };
    if (!number(min)) return false;
    max = min;
    if (j < p_.size() && p_[j] == ',') {
      ++j;
      if (!number(max)) max = kUnbounded;
    }
    if (j >= p_.size() || p_[j] != '}') return false;
    i_ = j + 1;
    return true;
  }

  NodePtr quantified(NodePtr a) {
    if (!more()) return a;
    std::uint32_t min = 0, max = 0;
    const std::size_t at = i_;
    switch (peek()) {
      case '*':
        max = kUnbounded;
        ++i_;
        break;
      case '+':
        min = 1;
        max = kUnbounded;
        ++i_;
        break;
      case '?':
        max = 1;
        ++i_;
        break;
      case '{':
        if (!counted(min, max)) return a;  // a literal brace, as ECMAScript's Annex B reads it
        break;
      default:
        return a;
    }
    if (a->kind == Node::Kind::Assert) {
      i_ = at;
      return fail("nothing to repeat");
    }
    if (min > max) {
      i_ = at;
      return fail("numbers out of order in {} quantifier");
    }
    if (min > kMaxCount || (max != kUnbounded && max > kMaxCount)) {
      i_ = at;
      return fail("repetition count above " + std::to_string(kMaxCount));
    }
    if (more() && peek() == '?') ++i_;  // lazy: the same answer to "is there a match"
    if (more() && (peek() == '*' || peek() == '+' || peek() == '?')) return fail("nothing to repeat");
    if (more() && peek() == '{') {
      // A count on a count ("a{2}{3}") is an error in ECMAScript too; taken, a long run of them would
      // nest the tree as deep as the pattern is long.
      const std::size_t brace = i_;
      std::uint32_t ignoredMin = 0, ignoredMax = 0;
      if (counted(ignoredMin, ignoredMax)) {
        i_ = brace;
        return fail("nothing to repeat");
      }
    }
    auto r = makeNode(Node::Kind::Repeat);
    r->min = min;
    r->max = max;
    r->children.push_back(std::move(a));
    return r;
  }

  NodePtr bytes(ByteSet set) {
    auto n = makeNode(Node::Kind::Bytes);
    n->set = set;
    return n;
  }
  NodePtr assertion(Op op) {
    auto n = makeNode(Node::Kind::Assert);
    n->assertion = op;
    return n;
  }

  NodePtr atom(int depth) {
    const char c = p_[i_++];
    switch (c) {
      case '(': {
        if (more() && peek() == '?') {
          if (i_ + 1 < p_.size() && p_[i_ + 1] == ':') {
            i_ += 2;
          } else {
            --i_;
            return fail("lookahead, lookbehind and named groups are not supported");
          }
        }
        NodePtr inner = alternation(depth + 1);
        if (!inner) return nullptr;
        if (!more() || peek() != ')') return fail("missing ')'");
        ++i_;
        return inner;
      }
      case ')':
        --i_;
        return fail("unmatched ')'");
      case '*':
      case '+':
      case '?':
        --i_;
        return fail("nothing to repeat");
      case '[':
        return bracket();
      case '.': {
        ByteSet s{};
        addByte(s, '\n');
        addByte(s, '\r');
        return bytes(complement(s));
      }
      case '^':
        return assertion(Op::LineStart);
      case '$':
        return assertion(Op::LineEnd);
      case '\\':
        return escape();
      default: {
        ByteSet s{};
        addByte(s, static_cast<unsigned char>(c));
        return bytes(s);
      }
    }
  }

  bool hex(std::size_t digits, unsigned& out) {
    if (i_ + digits > p_.size()) return false;
    out = 0;
    for (std::size_t k = 0; k < digits; ++k) {
      const char h = p_[i_ + k];
      unsigned v = 0;
      if (h >= '0' && h <= '9') {
        v = static_cast<unsigned>(h - '0');
      } else if (h >= 'a' && h <= 'f') {
        v = static_cast<unsigned>(h - 'a' + 10);
      } else if (h >= 'A' && h <= 'F') {
        v = static_cast<unsigned>(h - 'A' + 10);
      } else {
        return false;
      }
      out = out * 16 + v;
    }
    i_ += digits;
    return true;
  }

  // The escape after a backslash that stands for bytes (in or out of a bracket expression); false
  // with the error set when it is not one.
  bool escapedBytes(ByteSet& s, bool inBracket) {
    if (!more()) {
      fail("trailing backslash");
      return false;
    }
    const char e = p_[i_++];
    unsigned value = 0;
    switch (e) {
      case 'd':
      case 'w':
      case 's':
        addAll(s, classOf(e));
        return true;
      case 'D':
      case 'W':
      case 'S':
        addAll(s, complement(classOf(static_cast<char>(e - 'A' + 'a'))));
        return true;
      case 't':
        value = '\t';
        break;
      case 'n':
        value = '\n';
        break;
      case 'r':
        value = '\r';
        break;
      case 'f':
        value = '\f';
        break;
      case 'v':
        value = '\v';
        break;
      case 'b':  // reached only inside brackets, where it is a backspace
        value = '\b';
        break;
      case '0':
        value = 0;
        break;
      case 'x':
        if (!hex(2, value)) {
          fail("\\x needs two hex digits");
          return false;
        }
        break;
      case 'u':
        if (!hex(4, value)) {
          fail("\\u needs four hex digits");
          return false;
        }
        if (value > 0xFF) {
          fail("\\u above \\u00FF is not supported; write the character itself");
          return false;
        }
        break;
      default:
        if (e >= '1' && e <= '9') {
          --i_;
          fail(inBracket ? "invalid escape in brackets" : "backreferences are not supported");
          return false;
        }
        if ((e >= 'a' && e <= 'z') || (e >= 'A' && e <= 'Z')) {
          --i_;
          fail(std::string("unknown escape \\") + e);
          return false;
        }
        value = static_cast<unsigned char>(e);  // \ before punctuation: the character itself
    }
    addByte(s, static_cast<unsigned char>(value));
    return true;
  }

  NodePtr escape() {
    if (more() && peek() == 'b') {
      ++i_;
      return assertion(Op::WordBoundary);
    }
    if (more() && peek() == 'B') {
      ++i_;
      return assertion(Op::NotWordBoundary);
    }
    ByteSet s{};
    if (!escapedBytes(s, false)) return nullptr;
    return bytes(s);
  }

  // One member of a bracket expression: a byte (`single` set) or a class such as \d (false).
  bool member(ByteSet& s, unsigned char& single) {
    if (peek() != '\\') {
      single = static_cast<unsigned char>(p_[i_++]);
      addByte(s, single);
      return true;
    }
    ++i_;
    if (more() && std::string_view("dwsDWS").find(peek()) != std::string_view::npos) {
      escapedBytes(s, true);
      return false;
    }
    ByteSet one{};
    if (!escapedBytes(one, true)) return false;
    for (unsigned c = 0; c < 256; ++c) {
      if (hasByte(one, static_cast<unsigned char>(c))) single = static_cast<unsigned char>(c);
    }
    addAll(s, one);
    return true;
  }

  NodePtr bracket() {
    const std::size_t open = i_ - 1;
    bool negated = false;
    if (more() && peek() == '^') {
      negated = true;
      ++i_;
    }
    ByteSet s{};
    while (more() && peek() != ']') {
      unsigned char lo = 0;
      const std::size_t from = i_;
      const bool isByte = member(s, lo);
      if (!error_.empty()) return nullptr;
      if (isByte && i_ + 1 < p_.size() && peek() == '-' && p_[i_ + 1] != ']') {
        ++i_;
        unsigned char hi = 0;
        ByteSet upper{};
        if (!member(upper, hi)) {
          if (error_.empty()) fail("a class cannot end a range");
          return nullptr;
        }
        if (hi < lo) {
          i_ = from;
          return fail("range out of order in brackets");
        }
        addRange(s, lo, hi);
      }
    }
    if (!more()) {
      i_ = open;
      return fail("missing ']'");
    }
    ++i_;
    return bytes(negated ? complement(s) : s);
  }

  std::string_view p_;
  std::size_t i_ = 0;
  std::string error_;
  std::size_t errorAt_ = 0;
};

class Compiler {
 public:
  Compiler(std::vector<Instruction>& program, std::vector<ByteSet>& sets) : program_(program), sets_(sets) {}

  bool emit(const Node& n) {
    if (program_.size() > kMaxInstructions) return false;
    switch (n.kind) {
      case Node::Kind::Empty:
        return true;
      case Node::Kind::Bytes:
        sets_.push_back(n.set);
        add({Op::Bytes, 0, 0, static_cast<std::uint32_t>(sets_.size() - 1)});
        return true;
      case Node::Kind::Assert:
        add({n.assertion});
        return true;
      case Node::Kind::Concat:
        for (const auto& c : n.children) {
          if (!emit(*c)) return false;
        }
        return true;
      case Node::Kind::Alternate: {
        // split L1, next; L1: a; jump end; next: split L2, ... ; last branch falls through to end
        std::vector<std::size_t> jumps;
        for (std::size_t k = 0; k < n.children.size(); ++k) {
          const bool last = k + 1 == n.children.size();
          std::size_t split = 0;
          if (!last) split = add({Op::Split, here() + 1, 0});
          if (!emit(*n.children[k])) return false;
          if (!last) {
            jumps.push_back(add({Op::Jump}));
            program_[split].y = here();
          }
        }
        for (std::size_t j : jumps) program_[j].x = here();
        return true;
      }
      case Node::Kind::Repeat: {
        const Node& body = *n.children.front();
        for (std::uint32_t k = 0; k < n.min; ++k) {
          if (!emit(body)) return false;
        }
        if (n.max == kUnbounded) {
          // loop: split body, out; body; jump loop
          const std::size_t loop = add({Op::Split, here() + 1, 0});
          if (!emit(body)) return false;
          add({Op::Jump, static_cast<std::uint32_t>(loop)});
          program_[loop].y = here();
          return true;
        }
        std::vector<std::size_t> exits;
        for (std::uint32_t k = n.min; k < n.max; ++k) {
          exits.push_back(add({Op::Split, here() + 1, 0}));
          if (!emit(body)) return false;
        }
        for (std::size_t e : exits) program_[e].y = here();
        return true;
      }
    }
    return true;
  }

 private:
  std::uint32_t here() const { return static_cast<std::uint32_t>(program_.size()); }
  std::size_t add(Instruction i) {
    program_.push_back(i);
    return program_.size() - 1;
  }

  std::vector<Instruction>& program_;
  std::vector<ByteSet>& sets_;
};

// True when every match of `n` must begin at the start of the line.
bool anchoredAtStart(const Node& n) {
  switch (n.kind) {
    case Node::Kind::Assert:
      return n.assertion == Op::LineStart;
    case Node::Kind::Concat:
      for (const auto& c : n.children) {
        if (anchoredAtStart(*c)) return true;
        // Only zero-width items may come before the anchor.
        if (c->kind != Node::Kind::Assert) return false;
      }
      return false;
    case Node::Kind::Alternate:
      return std::all_of(n.children.begin(), n.children.end(), [](const auto& c) { return anchoredAtStart(*c); });
    case Node::Kind::Repeat:
      return n.min > 0 && anchoredAtStart(*n.children.front());
    case Node::Kind::Empty:
    case Node::Kind::Bytes:
      return false;
  }
  return false;
}

}  // namespace

std::optional<LinePattern> LinePattern::compile(std::string_view pattern, std::string& error) {
  Parser parser(pattern);
  NodePtr root = parser.parse(error);
  if (!root) return std::nullopt;
  LinePattern p;
  Compiler compiler(p.program_, p.sets_);
  if (!compiler.emit(*root) || p.program_.size() > kMaxInstructions) {
    error =
        "pattern too large once its repetitions are expanded (at most " + std::to_string(kMaxInstructions) + " steps)";
    return std::nullopt;
  }
  p.program_.push_back({Op::Match});
  p.anchored_ = anchoredAtStart(*root);
  p.seen_.assign(p.program_.size(), 0);
  return p;
}

bool LinePattern::add(std::vector<std::uint32_t>& list, std::uint32_t pc, std::size_t pos,
                      std::string_view line) const {
  // An explicit stack: the closure is as deep as the program, never the line.
  stack_.clear();
  stack_.push_back(pc);
  while (!stack_.empty()) {
    const std::uint32_t at = stack_.back();
    stack_.pop_back();
    if (seen_[at] == step_) continue;
    seen_[at] = step_;
    const Instruction& in = program_[at];
    const auto wordBoundary = [&] {
      const bool before = pos > 0 && isWordByte(static_cast<unsigned char>(line[pos - 1]));
      const bool after = pos < line.size() && isWordByte(static_cast<unsigned char>(line[pos]));
      return before != after;
    };
    switch (in.op) {
      case Op::Match:
        return true;
      case Op::Bytes:
        list.push_back(at);
        break;
      case Op::Jump:
        stack_.push_back(in.x);
        break;
      case Op::Split:
        stack_.push_back(in.y);
        stack_.push_back(in.x);
        break;
      case Op::LineStart:
        if (pos == 0) stack_.push_back(at + 1);
        break;
      case Op::LineEnd:
        if (pos == line.size()) stack_.push_back(at + 1);
        break;
      case Op::WordBoundary:
        if (wordBoundary()) stack_.push_back(at + 1);
        break;
      case Op::NotWordBoundary:
        if (!wordBoundary()) stack_.push_back(at + 1);
        break;
    }
  }
  return false;
}

bool LinePattern::search(std::string_view line) const {
  // current_: the threads waiting for the byte at `pos`, closed over splits and assertions there.
  ++step_;
  current_.clear();
  if (add(current_, 0, 0, line)) return true;
  for (std::size_t pos = 0; pos < line.size(); ++pos) {
    if (current_.empty() && anchored_) return false;
    const auto c = static_cast<unsigned char>(line[pos]);
    ++step_;
    next_.clear();
    for (std::uint32_t pc : current_) {
      if (hasByte(sets_[program_[pc].set], c) && add(next_, pc + 1, pos + 1, line)) return true;
    }
    // A match may also begin after this byte.
    if (!anchored_ && add(next_, 0, pos + 1, line)) return true;
    current_.swap(next_);
  }
  return false;
}

}  // namespace logcapture::base
