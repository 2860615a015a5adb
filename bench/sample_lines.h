#pragma once

// Sample log lines for the benchmarks: a mix of access logs, JSON objects and application logs of
// about 200 bytes, the same for every benchmark so their figures compare.

#include <cstdint>
#include <string>
#include <string_view>

namespace logcapture::bench {

// xorshift64*: deterministic, fast, good enough to vary the content.
class Rng {
 public:
  explicit Rng(std::uint64_t seed) : s_(seed) {}
  std::uint64_t next() {
    s_ ^= s_ >> 12;
    s_ ^= s_ << 25;
    s_ ^= s_ >> 27;
    return s_ * 2685821657736338717ull;
  }
  std::uint64_t below(std::uint64_t n) { return next() % n; }

 private:
  std::uint64_t s_;
};

// One line of 150..250 bytes (about 200 on average): an access log line, a JSON object (with quotes
// the json encoding has to escape), or an application log line, in equal shares. Deterministic per seed.
void makeSampleLine(Rng& r, std::uint64_t seq, std::string& out);

// The same lines as JSON objects, for `format: json` inputs: the JSON third as it is, the others as
// {"time":...,"level":...,"message":"<the line>"}.
void makeSampleJsonLine(Rng& r, std::uint64_t seq, std::string& out);

// Appends `text` as the body of a JSON string (no quotes): escapes quotes, backslashes and control bytes.
void appendJsonEscaped(std::string& out, std::string_view text);

}  // namespace logcapture::bench
