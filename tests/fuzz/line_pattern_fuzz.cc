// The multiline start pattern compiler and matcher: the input is a pattern, a newline, then lines to
// search. Compiling either succeeds or says why; searching takes time linear in the line's length
// whatever the pattern (libFuzzer's -timeout catches one that does not).

#include <cstdint>
#include <string>
#include <string_view>

#include "base/line_pattern.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using logcapture::base::LinePattern;
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  const auto newline = input.find('\n');
  std::string error;
  const auto pattern = LinePattern::compile(input.substr(0, newline), error);
  if (!pattern || newline == std::string_view::npos) return 0;
  std::string_view lines = input.substr(newline + 1);
  // Each line alone, then all of them as one line (a line may hold any byte but the newline).
  while (!lines.empty()) {
    const auto end = lines.find('\n');
    (void)pattern->search(lines.substr(0, end));
    if (end == std::string_view::npos) break;
    lines.remove_prefix(end + 1);
  }
  (void)pattern->search(input.substr(newline + 1));
  return 0;
}
