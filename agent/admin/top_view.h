#pragma once

// What `logcapture top` shows, without a terminal: samples of the admin API read into figures, and the
// screen drawn from two samples as rows of text with colour classes. top_command.cc puts the rows on
// the terminal; everything it shows is decided here, so it is tested without one.
//
// Thread-safety: pure functions of their arguments.

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "agent/admin/breaker_view.h"

namespace logcapture::agent::admin {

// One sample of the Prometheus text format: a name, its labels as written, its value.
struct MetricSample {
  std::string name;
  std::vector<std::pair<std::string, std::string>> labels;
  double value = 0;

  // The value of label `key`; empty when absent.
  std::string_view label(std::string_view key) const;
};

// The samples of a text exposition (version 0.0.4); comments and lines that do not parse are skipped.
std::vector<MetricSample> parsePrometheusText(std::string_view text);

struct InputFigures {
  std::string name;
  std::uint64_t records = 0;
  std::uint64_t bytes = 0;
  std::uint64_t lagBytes = 0;
};

struct QueueFigures {
  std::uint64_t records = 0;
  std::uint64_t bytes = 0;
  std::uint64_t maxRecords = 0;  // 0: not known (an agent without the bound's metric)
  std::uint64_t maxBytes = 0;
  bool blocked = false;
};

struct SinkFigures {
  std::string name;
  std::string state;  // the breaker's: closed, open, half_open, forced_open, disabled (forced closed)
  double timeInStateSeconds = 0;
  std::optional<std::chrono::system_clock::time_point> nextRetryAt;
  std::optional<double> windowFailureRatePercent;  // with a sliding window only
  std::uint64_t calls = 0;
  std::uint64_t failures = 0;
  std::uint64_t delivered = 0;
  std::uint64_t inFlight = 0;                     // batches
  std::optional<std::uint64_t> concurrencyLimit;  // batches the sink may have in flight now
  bool ramping = false;                           // its breaker closed lately: the limit is growing
  std::uint64_t bufferRecords = 0;
  std::uint64_t bufferBytes = 0;
  std::optional<std::uint64_t> bufferMaxBytes;
  std::uint64_t deadLettered = 0;
  std::vector<std::pair<std::string, std::uint64_t>> dropped;  // by reason, in the API's order
};

// What one turn read: the breakers always; the inputs and the queue when /metrics answered.
struct TopSample {
  std::chrono::steady_clock::time_point at;
  std::chrono::system_clock::time_point wallAt;
  std::vector<SinkFigures> sinks;
  std::optional<std::vector<InputFigures>> inputs;
  std::optional<QueueFigures> queue;
};

// The sinks' figures from GET /api/v1/breakers's "breakers" (breaker_view.h).
std::vector<SinkFigures> sinkFigures(const Json& breakers);
// The inputs' and the queue's figures from GET /metrics (metrics.h).
std::vector<InputFigures> inputFigures(const std::vector<MetricSample>& metrics);
std::optional<QueueFigures> queueFigures(const std::vector<MetricSample>& metrics);

// "2026-11-23T14:15:42.123456789Z" (rfc3339()'s form, fraction optional); empty when malformed.
std::optional<std::chrono::system_clock::time_point> parseRfc3339(std::string_view text);

// A colour class; top_command.cc maps each to a colour pair and attributes.
enum class Tone {
  Plain,
  Title,
  Heading,   // a section's name and its column heads
  Closed,    // green
  HalfOpen,  // yellow
  Open,      // red
  ForcedClosed,
  ForcedOpen,
  Warning,  // a drop, a dead letter, a blocked queue
  Status,   // the bottom line
  Error,    // the bottom line when the agent cannot be read
};

struct Span {
  std::string text;
  Tone tone = Tone::Plain;
};

struct ScreenRow {
  std::vector<Span> spans;
  bool selected = false;  // the selected sink's rows, shown in reverse
};

struct TopScreen {
  std::string adminUrl = "";
  std::chrono::milliseconds interval{1000};
  const TopSample* previous = nullptr;  // rates need two samples; "-" without
  const TopSample* current = nullptr;   // null before the first answer
  std::size_t selected = 0;             // index into current->sinks
  std::string status = "";              // the bottom line; empty: the keys
  bool statusIsError = false;
  int width = 80;
  int height = 24;
};

// The screen: at most `height` rows, none wider than `width` columns (cut, never wrapped); the last row
// is the status line. Rows past the height are left out, but the selected sink's rows are kept.
std::vector<ScreenRow> renderTop(const TopScreen& screen);

// The row's text, spans joined.
std::string rowText(const ScreenRow& row);

}  // namespace logcapture::agent::admin
