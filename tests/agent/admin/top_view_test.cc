// What `logcapture top` draws, from samples of the admin API, without a terminal.

#include "agent/admin/top_view.h"

#include <doctest/doctest.h>

#include <algorithm>

namespace {

using namespace logcapture::agent::admin;
using namespace std::chrono_literals;

const auto kT0 = std::chrono::steady_clock::time_point(100s);
const auto kWall = std::chrono::system_clock::time_point(std::chrono::seconds(1795000000));

Json breakerJson(const std::string& sink, const std::string& state, std::uint64_t delivered, std::uint64_t calls,
                 std::uint64_t failures) {
  return Json{{"sink", sink},
              {"state", state},
              {"time_in_state_seconds", 75.0},
              {"next_retry_at", nullptr},
              {"totals", {{"calls", calls}, {"failures", failures}}},
              {"window", nullptr},
              {"sink_stats",
               {{"delivered", delivered},
                {"dead_lettered", 0},
                {"dropped", {{"breaker_open", 0}, {"buffer_full", 0}, {"total", 0}}},
                {"buffer", {{"records", 40}, {"bytes", 4096}, {"max_bytes", 16384}}},
                {"batches_in_flight", 2}}}};
}

TopSample sample(std::chrono::steady_clock::time_point at, const Json& breakers, const std::string& metrics) {
  TopSample s;
  s.at = at;
  s.wallAt = kWall + (at - kT0);
  s.sinks = sinkFigures(breakers);
  const auto parsed = parsePrometheusText(metrics);
  s.inputs = inputFigures(parsed);
  s.queue = queueFigures(parsed);
  return s;
}

std::string metricsText(std::uint64_t records, std::uint64_t bytes) {
  return "# HELP logcapture_input_records_total Records read by the input.\n"
         "# TYPE logcapture_input_records_total counter\n"
         "logcapture_input_records_total{input=\"app\"} " +
         std::to_string(records) +
         "\n"
         "logcapture_input_bytes_total{input=\"app\"} " +
         std::to_string(bytes) +
         "\n"
         "logcapture_input_lag_bytes{input=\"app\"} 2048\n"
         "logcapture_queue_records 12\n"
         "logcapture_queue_bytes 1536\n"
         "logcapture_queue_max_records 100\n"
         "logcapture_queue_max_bytes 65536\n"
         "logcapture_queue_blocked 0\n";
}

std::vector<std::string> texts(const std::vector<ScreenRow>& rows) {
  std::vector<std::string> out;
  for (const auto& r : rows) out.push_back(rowText(r));
  return out;
}

// The first row whose text starts with `name` (after the selection mark) and holds `holding`.
const ScreenRow* rowOf(const std::vector<ScreenRow>& rows, const std::string& name, const std::string& holding = "") {
  for (const auto& r : rows) {
    std::string t = rowText(r);
    if (t.starts_with("> ") || t.starts_with("  ")) t = t.substr(2);
    if (t.starts_with(name + " ") && t.find(holding) != std::string::npos) return &r;
  }
  MESSAGE("no row of " << name << " holding '" << holding << "' in:\n"
                       << [&] {
                            std::string all;
                            for (const auto& r : rows) all += "|" + rowText(r) + "|\n";
                            return all;
                          }());
  return nullptr;
}

std::string textOf(const std::vector<ScreenRow>& rows, const std::string& name, const std::string& holding = "") {
  const ScreenRow* r = rowOf(rows, name, holding);
  return r ? rowText(*r) : "";
}

const Span* spanWith(const ScreenRow& row, const std::string& text) {
  for (const auto& s : row.spans) {
    if (s.text.find(text) != std::string::npos) return &s;
  }
  return nullptr;
}

}  // namespace

TEST_CASE("the Prometheus text parser reads names, escaped label values and values") {
  const auto samples = parsePrometheusText(
      "# HELP x y\n"
      "a_total 3\n"
      "b{input=\"we \\\"ird\\\\\",kind=\"open\"} 1.5e3\n"
      "c{x=\"1\"} NaN\n"
      "not a sample\n");
  REQUIRE(samples.size() == 3);
  CHECK(samples[0].name == "a_total");
  CHECK(samples[0].value == 3);
  CHECK(samples[1].label("input") == "we \"ird\\");
  CHECK(samples[1].label("kind") == "open");
  CHECK(samples[1].value == 1500);
  CHECK(samples[2].name == "c");
}

TEST_CASE("top computes an input's lines and bytes per second from two samples and shows its lag") {
  const Json breakers = Json::array({breakerJson("search", "closed", 0, 0, 0)});
  const TopSample before = sample(kT0, breakers, metricsText(1000, 100000));
  const TopSample after = sample(kT0 + 2s, breakers, metricsText(1500, 100000 + 2 * 10240));
  TopScreen screen{.adminUrl = "http://127.0.0.1:9880", .previous = &before, .current = &after, .width = 100};
  const auto rows = renderTop(screen);
  const ScreenRow* app = rowOf(rows, "app");
  REQUIRE(app != nullptr);
  CHECK(rowText(*app) == "app    250      10.0KiB/s  2.0KiB");
  const ScreenRow* queue = rowOf(rows, "QUEUE");
  REQUIRE(queue != nullptr);
  // 12 of 100 records is nearer its bound than 1.5KiB of 64KiB.
  CHECK(rowText(*queue) == "QUEUE  12 records, 1.5KiB  12% full");
}

TEST_CASE("top shows a dash for rates until it has two samples") {
  const TopSample only = sample(kT0, Json::array({breakerJson("search", "closed", 10, 0, 0)}), metricsText(5, 50));
  const auto rows = renderTop(TopScreen{.current = &only, .width = 120});
  CHECK(textOf(rows, "app").starts_with("app    -        -        2.0KiB"));
  CHECK(rowText(*rowOf(rows, "search", "(4.0KiB)")).find("2          40 (4.0KiB)  25%") != std::string::npos);
}

TEST_CASE("top shows per sink delivered per second, in flight, buffer fill, dead letters and drops by reason") {
  Json b1 = breakerJson("search", "closed", 1000, 0, 0);
  Json b2 = breakerJson("search", "closed", 1300, 0, 0);
  b2["sink_stats"]["dropped"]["buffer_full"] = 7;
  b2["sink_stats"]["dead_lettered"] = 3;
  const TopSample before = sample(kT0, Json::array({b1}), "");
  const TopSample after = sample(kT0 + 3s, Json::array({b2}), "");
  const auto rows = renderTop(TopScreen{.previous = &before, .current = &after, .width = 200});
  const auto all = texts(rows);
  CHECK(std::find(all.begin(), all.end(), "  SINK    DELIVERED/S  IN FLIGHT  BUFFER       FILL  DEAD LETTERS  DROPS") !=
        all.end());
  const ScreenRow* search = rowOf(rows, "search", "(4.0KiB)");
  REQUIRE(search != nullptr);
  CHECK(rowText(*search) == "> search  100          2          40 (4.0KiB)  25%   3             buffer_full=7");
  CHECK(spanWith(*search, "buffer_full=7")->tone == Tone::Warning);
  CHECK(search->selected);
}

TEST_CASE("top shows batches in flight against the sink's concurrency limit, and a ramp under way") {
  Json steady = breakerJson("search", "closed", 0, 0, 0);
  steady["sink_stats"]["concurrency_limit"] = 4;
  steady["sink_stats"]["ramping"] = false;
  Json ramping = breakerJson("logs", "closed", 0, 0, 0);
  ramping["sink_stats"]["concurrency_limit"] = 1;
  ramping["sink_stats"]["ramping"] = true;
  ramping["sink_stats"]["batches_in_flight"] = 1;
  const TopSample s = sample(kT0, Json::array({steady, ramping}), "");
  const auto rows = renderTop(TopScreen{.current = &s, .width = 200});
  const ScreenRow* search = rowOf(rows, "search", "(4.0KiB)");
  const ScreenRow* logs = rowOf(rows, "logs", "(4.0KiB)");
  REQUIRE(search != nullptr);
  REQUIRE(logs != nullptr);
  CHECK(spanWith(*search, "2/4")->tone == Tone::Plain);
  CHECK(spanWith(*logs, "1/1 ramping")->tone == Tone::Warning);
}

TEST_CASE("top colours each breaker by its state and marks the forced states") {
  const TopSample s = sample(kT0,
                             Json::array({breakerJson("a", "closed", 0, 0, 0), breakerJson("b", "half_open", 0, 0, 0),
                                          breakerJson("c", "open", 0, 0, 0), breakerJson("d", "forced_open", 0, 0, 0),
                                          breakerJson("e", "disabled", 0, 0, 0)}),
                             "");
  const auto rows = renderTop(TopScreen{.current = &s, .width = 120, .height = 40});
  const auto toneOf = [&](const std::string& sink, const std::string& state) {
    const ScreenRow* r = rowOf(rows, sink, state);
    REQUIRE(r != nullptr);
    return spanWith(*r, state)->tone;
  };
  CHECK(toneOf("a", "closed") == Tone::Closed);
  CHECK(toneOf("b", "half_open") == Tone::HalfOpen);
  CHECK(toneOf("c", "open") == Tone::Open);
  CHECK(toneOf("d", "forced_open") == Tone::ForcedOpen);
  CHECK(toneOf("e", "disabled") == Tone::ForcedClosed);
}

TEST_CASE("top shows a breaker's time in state, failure rate between samples and time to its next retry") {
  Json b1 = breakerJson("search", "closed", 0, 100, 10);
  Json b2 = breakerJson("search", "open", 0, 120, 25);
  b2["next_retry_at"] = rfc3339(kWall + 1s + 7s);
  const TopSample before = sample(kT0, Json::array({b1}), "");
  const TopSample after = sample(kT0 + 1s, Json::array({b2}), "");
  const auto rows = renderTop(TopScreen{.previous = &before, .current = &after, .width = 120});
  const ScreenRow* breaker = rowOf(rows, "search", "open");
  REQUIRE(breaker != nullptr);
  CHECK(rowText(*breaker) == "> search   open   1m15s     75%       in 7s");
}

TEST_CASE("top shows the window's failure rate when the breaker has a window") {
  Json b = breakerJson("search", "closed", 0, 100, 10);
  b["window"] = {{"calls", 20}, {"failures", 5}, {"failure_rate", 25.0}};
  const TopSample s = sample(kT0, Json::array({b}), "");
  const auto rows = renderTop(TopScreen{.current = &s, .width = 120});
  CHECK(textOf(rows, "search", "closed").find("25% (window)") != std::string::npos);
}

TEST_CASE("top cuts every row to a narrow terminal and fills its height with the status line last") {
  const TopSample s = sample(kT0, Json::array({breakerJson("search", "closed", 0, 0, 0)}), metricsText(1, 1));
  const auto rows = renderTop(TopScreen{.adminUrl = "http://127.0.0.1:9880", .current = &s, .width = 20, .height = 30});
  CHECK(rows.size() == 30);
  for (const auto& r : rows) CHECK(rowText(r).size() <= 20);
  CHECK(rowText(rows.front()) == "logcapture top  http");
  CHECK(rows.back().spans.at(0).tone == Tone::Status);
}

TEST_CASE("top keeps the selected sink's rows on a short terminal") {
  Json breakers = Json::array();
  for (int i = 0; i < 10; ++i) breakers.push_back(breakerJson("sink" + std::to_string(i), "closed", 0, 0, 0));
  const TopSample s = sample(kT0, breakers, "");
  const auto rows = renderTop(TopScreen{.current = &s, .selected = 8, .width = 100, .height = 10});
  CHECK(rows.size() == 10);
  int selected = 0;
  for (const auto& r : rows) selected += r.selected ? 1 : 0;
  CHECK(selected == 2);  // its sink row and its breaker row
  CHECK(rowOf(rows, "sink8", "(4.0KiB)") != nullptr);
  CHECK(rowOf(rows, "sink8", "closed") != nullptr);
}

TEST_CASE("top shows an error status line in the error tone") {
  const auto rows =
      renderTop(TopScreen{.status = "cannot reach http://127.0.0.1:1: Connection", .statusIsError = true, .height = 5});
  CHECK(rows.size() == 5);
  CHECK(rowText(rows.back()) == "cannot reach http://127.0.0.1:1: Connection");
  CHECK(rows.back().spans.at(0).tone == Tone::Error);
}

TEST_CASE("an RFC 3339 time reads back to the instant rfc3339 wrote") {
  const auto t = kWall + 123456789ns;
  CHECK(parseRfc3339(rfc3339(t)) == t);
  CHECK(parseRfc3339("2026-11-23T14:15:42Z").has_value());
  CHECK_FALSE(parseRfc3339("2026-11-23 14:15:42").has_value());
}
