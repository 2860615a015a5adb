// The Prometheus text writer, without a network: families, labels and their escaping; and the
// counters of a running pipeline that only /metrics shows.

#include "agent/admin/metrics.h"

#include <doctest/doctest.h>

#include <limits>
#include <memory>
#include <string>

#include "agent/admin/breaker_view.h"
#include "agent/pipeline/pipeline.h"
#include "agent/runner/sink_runner.h"
#include "base/log.h"
#include "config/loader.h"
#include "tests/support/fixtures.h"

using logcapture::agent::admin::Family;
using logcapture::agent::admin::MetricType;
using logcapture::agent::admin::PrometheusText;
using logcapture::agent::admin::renderMetrics;

TEST_CASE("a family is written as HELP, TYPE, then its samples") {
  PrometheusText out;
  constexpr Family kRecords{"x_records_total", MetricType::Counter, "Records read."};
  out.family(kRecords);
  out.sample({{"input", "a"}}, std::uint64_t{3});
  out.sample({{"input", "b"}}, std::uint64_t{18446744073709551615ull});
  out.single(Family{"x_seconds", MetricType::Gauge, "Time."}, 0.25);
  CHECK(out.text() ==
        "# HELP x_records_total Records read.\n"
        "# TYPE x_records_total counter\n"
        "x_records_total{input=\"a\"} 3\n"
        "x_records_total{input=\"b\"} 18446744073709551615\n"
        "# HELP x_seconds Time.\n"
        "# TYPE x_seconds gauge\n"
        "x_seconds 0.25\n");
}

TEST_CASE("label values escape backslash, double quote and newline, and help escapes backslash and newline") {
  PrometheusText out;
  out.family(Family{"x", MetricType::Gauge, "a \\ \"b\"\nc"});
  out.sample({{"path", "C:\\logs\\\"a\"\nb"}, {"k", "v"}}, 1.5);
  CHECK(out.text() ==
        "# HELP x a \\\\ \"b\"\\nc\n"
        "# TYPE x gauge\n"
        "x{path=\"C:\\\\logs\\\\\\\"a\\\"\\nb\",k=\"v\"} 1.5\n");
}

TEST_CASE("non-finite values use the format's spellings") {
  PrometheusText out;
  out.family(Family{"x", MetricType::Gauge, "h"});
  out.sample({}, std::numeric_limits<double>::infinity());
  out.sample({{"a", "b"}}, -std::numeric_limits<double>::infinity());
  out.sample({{"a", "c"}}, std::numeric_limits<double>::quiet_NaN());
  CHECK(out.text() == "# HELP x h\n# TYPE x gauge\nx +Inf\nx{a=\"b\"} -Inf\nx{a=\"c\"} NaN\n");
}

// The counters of a running pipeline that only /metrics shows.
namespace {

using logcapture::agent::Pipeline;
using logcapture::testing::appendFile;
using logcapture::testing::TempDir;
using logcapture::testing::waitUntil;
using namespace std::chrono_literals;

// A pipeline built from `inputs` and `sinks` (list items; {dir} stands for the test's directory) and
// started; stopped at the end of the test.
struct Running {
  TempDir dir{"logcapture-metrics"};
  std::unique_ptr<Pipeline> pipeline;
  bool stopped = false;

  Running(const std::string& inputs, const std::string& sinks) {
    const auto expand = [&](std::string text) {
      for (std::size_t at; (at = text.find("{dir}")) != std::string::npos;) text.replace(at, 5, dir.path.string());
      return text;
    };
    const std::string text =
        "agent: {state_dir: " + (dir / "state").string() + "}\ninputs:\n" + expand(inputs) + "sinks:\n" + expand(sinks);
    const auto config = logcapture::config::loadString(text, "test.yaml", dir.path).config;
    pipeline = Pipeline::build(config);
    REQUIRE(pipeline);
    REQUIRE(pipeline->start());
  }
  ~Running() { stop(5s); }
  void stop(std::chrono::milliseconds within) {
    if (stopped) return;
    stopped = true;
    pipeline->stop(std::chrono::steady_clock::now() + within);
  }
  // The value of one series, such as `x_total{input="a"}`; -1 when it is not exported.
  double sample(const std::string& series) const { return valueOf(renderMetrics(*pipeline), series); }

  static double valueOf(const std::string& text, const std::string& series) {
    const auto at = text.find("\n" + series + " ");
    if (at == std::string::npos) return -1;
    return std::stod(text.substr(at + series.size() + 2));
  }
};

}  // namespace

TEST_CASE("metrics count the records of an input routed to no sink") {
  Running run(
      "  - {name: app, type: file, start_at: beginning, paths: ['{dir}/app.log']}\n"
      "  - {name: orphan, type: file, start_at: beginning, paths: ['{dir}/orphan.log']}\n",
      "  - {name: out, type: console, inputs: [app], path: '{dir}/out'}\n");
  appendFile(run.dir / "orphan.log", "a\nb\nc\n");
  CHECK(waitUntil([&] { return run.sample("logcapture_unrouted_records_total") == 3; }, 10s));
}

TEST_CASE("metrics count the lines a json input could not decode, by input") {
  Running run("  - {name: app, type: file, start_at: beginning, format: json, paths: ['{dir}/app.log']}\n",
              "  - {name: out, type: console, path: '{dir}/out'}\n");
  appendFile(run.dir / "app.log", "{\"a\":1}\nnot json\n{\"b\":\n");
  CHECK(waitUntil(
      [&] { return run.sample("logcapture_input_invalid_records_total{input=\"app\",reason=\"invalid_json\"}") == 2; },
      10s));
  CHECK(run.sample("logcapture_input_invalid_records_total{input=\"app\",reason=\"invalid_cri\"}") == 0);
}

TEST_CASE("metrics count the multiline records sent before they were complete") {
  Running run(
      "  - {name: app, type: file, start_at: beginning, paths: ['{dir}/app.log'], "
      "multiline: {start_pattern: '^S', max_lines: 2}}\n",
      "  - {name: out, type: console, path: '{dir}/out'}\n");
  appendFile(run.dir / "app.log", "S1\n x\n y\nS2\n");
  CHECK(waitUntil(
      [&] {
        return run.sample("logcapture_input_flushed_incomplete_records_total{input=\"app\",reason=\"multiline\"}") >= 1;
      },
      10s));
}

TEST_CASE("metrics count the strings whose invalid UTF-8 was replaced in JSON") {
  Running run("  - {name: app, type: file, start_at: beginning, paths: ['{dir}/app.log']}\n",
              "  - {name: out, type: console, path: '{dir}/out', batch: {linger: 1ms}}\n");
  const double before = run.sample("logcapture_invalid_utf8_replaced_total");
  REQUIRE(before >= 0);
  appendFile(run.dir / "app.log", "bad \xff byte\n");
  CHECK(waitUntil([&] { return run.sample("logcapture_invalid_utf8_replaced_total") >= before + 1; }, 10s));
}

TEST_CASE("metrics count the exceptions that reached the top of a thread") {
  Running run("  - {name: app, type: file, paths: ['{dir}/app.log']}\n",
              "  - {name: out, type: console, path: '{dir}/out'}\n");
  const double before = run.sample("logcapture_thread_failures_total");
  REQUIRE(before >= 0);
  logcapture::log::noteThreadFailure("metrics-test", "a test's exception", false);
  CHECK(run.sample("logcapture_thread_failures_total") == before + 1);
}

TEST_CASE("metrics show the records a sink left unsent at the shutdown deadline") {
  const std::uint16_t closed = logcapture::testing::freePort();
  Running run("  - {name: app, type: file, start_at: beginning, paths: ['{dir}/app.log']}\n",
              "  - {name: web, type: http, url: 'http://127.0.0.1:" + std::to_string(closed) +
                  "/', batch: {linger: 1ms}, retry: {initial_backoff: 10ms}}\n");
  appendFile(run.dir / "app.log", "a\nb\nc\nd\ne\n");
  REQUIRE(waitUntil([&] { return run.sample("logcapture_sink_received_records_total{sink=\"web\"}") == 5; }, 10s));
  run.stop(200ms);
  CHECK(run.sample("logcapture_sink_unsent_at_shutdown_records_total{sink=\"web\"}") == 5);
}

TEST_CASE("metrics and the breaker view show each breaker's mode and its time in each state up to the read") {
  Running run("  - {name: app, type: stdin}\n",
              "  - {name: out, type: console, path: '{dir}/out'}\n"
              "  - {name: tuned, type: console, path: '{dir}/tuned', breaker: {mode: metrics_only}}\n");
  CHECK(run.sample("logcapture_breaker_mode{sink=\"out\",mode=\"enforce\"}") == 1);
  CHECK(run.sample("logcapture_breaker_mode{sink=\"out\",mode=\"metrics_only\"}") == 0);
  CHECK(run.sample("logcapture_breaker_mode{sink=\"tuned\",mode=\"metrics_only\"}") == 1);
  CHECK(run.sample("logcapture_breaker_bypassed_total{sink=\"tuned\"}") == 0);
  const std::string closed = "logcapture_breaker_state_seconds_total{sink=\"tuned\",state=\"closed\"}";
  const double first = run.sample(closed);
  CHECK(first >= 0);
  for (const char* state : {"open", "half_open", "forced_open", "disabled"}) {
    CHECK(run.sample(std::string("logcapture_breaker_state_seconds_total{sink=\"tuned\",state=\"") + state + "\"}") ==
          0);
  }
  // No transition happens meanwhile: the closed time still grows from one read to the next.
  CHECK(waitUntil([&] { return run.sample(closed) > first + 0.01; }));

  for (const auto& runner : run.pipeline->runners()) {
    if (runner->name() != "tuned") continue;
    runner->breaker().forceOpen();
    const auto view = logcapture::agent::admin::breakerView(*runner);
    CHECK(view["mode"] == "metrics_only");
    CHECK(view["state"] == "forced_open");
    CHECK(view["state_seconds"]["closed"].get<double>() > first);
    CHECK(view["state_seconds"].contains("forced_open"));
    CHECK(view["state_seconds"]["open"].get<double>() == 0);
    CHECK(view["totals"]["bypassed"] == 0);
  }
}
