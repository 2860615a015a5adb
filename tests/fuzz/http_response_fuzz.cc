// How the HTTP sink reads an answer, on arbitrary answers: the status, a Retry-After value (delay-seconds
// or an HTTP-date) and an Elasticsearch bulk body. The input is four parts, each up to a newline but the
// last: the status as decimal digits, the Retry-After value, the number of records sent, the body.
// Checked besides the sanitizers: a delay lies within [0, 1 day]; per-item failures name records of the
// batch, in order, each with an outcome other than Success.

#include <charconv>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string_view>

#include "sinks/http/http_body.h"

namespace {

void require(bool condition, const char* what) {
  if (condition) return;
  std::fprintf(stderr, "http response invariant broken: %s\n", what);
  std::abort();
}

// The part of `input` up to the next newline, which is consumed.
std::string_view nextLine(std::string_view& input) {
  const auto end = input.find('\n');
  const std::string_view line = input.substr(0, end);
  input.remove_prefix(end == std::string_view::npos ? input.size() : end + 1);
  return line;
}

template <class T>
T number(std::string_view text) {
  T value{};
  std::from_chars(text.data(), text.data() + text.size(), value);
  return value;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace logcapture;
  using namespace std::chrono_literals;
  std::string_view input(reinterpret_cast<const char*>(data), size);
  const long status = number<long>(nextLine(input));
  const std::string_view retryAfter = nextLine(input);
  // A batch holds at most a few thousand records; more would only make the fuzzer allocate.
  const std::size_t records = number<std::size_t>(nextLine(input)) % 100000;
  const std::string_view body = input;

  (void)sinks::http::classifyStatus(status);

  const auto now = std::chrono::system_clock::time_point(1704067200s);  // 2024-01-01T00:00:00Z
  if (const auto delay = sinks::http::parseRetryAfter(retryAfter, now)) {
    require(*delay >= 0ms && *delay <= std::chrono::milliseconds(24h), "a Retry-After delay lies within a day");
  }

  const auto result = sinks::http::readBulkResponse(body, records);
  std::uint32_t next = 0;
  for (const auto& failure : result.failures) {
    require(failure.index >= next && failure.index < records, "failures name records of the batch, in order");
    require(failure.outcome != sinks::Outcome::Success, "a failure is no success");
    next = failure.index + 1;
  }
  return 0;
}
