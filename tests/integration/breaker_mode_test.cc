// breaker.mode against the in-tree HTTP receiver told to fail: an enforcing breaker holds the sink's
// batches back while open, a metrics-only one reports the same open state while every batch still goes.

#include <doctest/doctest.h>

#include <memory>
#include <string>

#include "agent/runner/sink_runner.h"
#include "circuit/clock.h"
#include "config/loader.h"
#include "sinks/registry.h"
#include "tests/support/fixtures.h"
#include "tests/support/http_receiver.h"
#include "tests/support/scripted_sink.h"

namespace {

using namespace logcapture;
using namespace std::chrono_literals;
using circuit::State;
using testing::DestinationRunner;
using testing::Feed;
using testing::HttpReceiver;
using testing::waitUntil;

// An http sink on `receiver` whose breaker opens after 3 failures and stays open far beyond the test,
// so that an enforcing breaker sends no trial meanwhile.
config::SinkConfig httpSink(const HttpReceiver& receiver, const std::string& mode) {
  const std::string yaml =
      "inputs: [{name: app, type: stdin}]\n"
      "sinks:\n"
      "  - {name: search, type: http, url: \"" +
      receiver.base() +
      "/ingest\", format: ndjson, encoding: raw,\n"
      "     batch: {max_records: 5, linger: 1ms}, timeout: 2s,\n"
      "     retry: {max_attempts: 2, initial_backoff: 1ms, max_backoff: 5ms},\n"
      "     breaker: {mode: " +
      mode +
      ", failure_threshold: 3, success_threshold: 1, half_open_max_calls: 1,\n"
      "               open_timeout: 1h, max_open_timeout: 1h, jitter: 0}}\n";
  return config::loadString(yaml, "mode.yaml", ".").config.sinks.at(0);
}

std::uint64_t requests(const HttpReceiver& receiver) { return receiver.stats()["requests"].get<std::uint64_t>(); }

}  // namespace

TEST_CASE("a metrics-only breaker reports open while every batch still reaches the failing endpoint") {
  HttpReceiver receiver;
  receiver.control({{"status", 503}});
  DestinationRunner r(httpSink(receiver, "metrics_only"));
  Feed feed;
  feed.offer(*r.runner, 0, 50);
  REQUIRE(waitUntil([&] { return r.state() == State::Open; }, 10s));
  const std::uint64_t atOpen = requests(receiver);
  // The batches keep going, retried as with a closed breaker, while the state still says open.
  CHECK(waitUntil([&] { return requests(receiver) >= atOpen + 20; }, 10s));
  CHECK(r.state() == State::Open);
  const circuit::Snapshot s = r.runner->breaker().snapshot();
  CHECK(s.totals.rejected == 0);
  CHECK(s.totals.bypassed >= 20);
  CHECK(r.runner->stats().droppedFor(agent::DropReason::BreakerOpen) == 0);

  // Once the endpoint takes them, every record arrives, though the breaker waits out its open time.
  receiver.control({{"status", 200}});
  CHECK(waitUntil([&] { return r.runner->stats().delivered.load() == 50; }, 10s));
  CHECK(receiver.records() == feed.expected(0, 50));
  CHECK(r.state() == State::Open);
}

TEST_CASE("an enforcing breaker open on a failing endpoint sends it nothing more") {
  HttpReceiver receiver;
  receiver.control({{"status", 503}});
  DestinationRunner r(httpSink(receiver, "enforce"));
  Feed feed;
  feed.offer(*r.runner, 0, 50);
  REQUIRE(waitUntil([&] { return r.state() == State::Open; }, 10s));
  const std::uint64_t atOpen = requests(receiver);
  // Waiting for something that must not happen: a second is many retries' worth at these timings.
  CHECK_FALSE(waitUntil([&] { return requests(receiver) > atOpen; }, 1s));
  CHECK(r.runner->breaker().snapshot().totals.rejected > 0);
  CHECK(r.runner->stats().delivered.load() == 0);
}

TEST_CASE("an operator's force-open holds back a metrics-only sink's batches") {
  HttpReceiver receiver;
  DestinationRunner r(httpSink(receiver, "metrics_only"));
  r.runner->breaker().forceOpen();
  Feed feed;
  feed.offer(*r.runner, 0, 20);
  CHECK_FALSE(waitUntil([&] { return requests(receiver) > 0; }, 1s));
  CHECK(r.runner->breaker().snapshot().totals.rejected > 0);
  r.runner->breaker().resumeAuto();
  CHECK(waitUntil([&] { return r.runner->stats().delivered.load() == 20; }, 10s));
}
